"""The clinic and its schedule, as the domain sees them (no storage concerns).

Times are timezone-aware datetimes in the clinic's zone; the store keeps them in
UTC ISO 8601.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

__all__ = [
    "Appointment",
    "AppointmentType",
    "Clinic",
    "OpeningHours",
    "Patient",
    "Provider",
    "Slot",
]


@dataclass(frozen=True, slots=True)
class OpeningHours:
    """Hours of one weekday (0 = Monday); closed days are absent."""

    weekday: int
    opens: dt.time
    closes: dt.time


@dataclass(frozen=True, slots=True)
class Provider:
    """A clinician who has a schedule; ``display_name`` is what the receptionist says."""

    provider_id: str
    display_name: str
    family_name: str


@dataclass(frozen=True, slots=True)
class AppointmentType:
    """A kind of visit; ``spoken_names`` are the words callers use for it."""

    code: str
    display_name: str
    duration_min: int
    spoken_names: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Clinic:
    """One clinic: its public facts, its people and its kinds of visits."""

    clinic_id: str
    name: str
    phone_number: str
    address: str
    time_zone: str
    hours: tuple[OpeningHours, ...]
    providers: tuple[Provider, ...]
    appointment_types: tuple[AppointmentType, ...]
    slot_minutes: int = 30
    stream_sample_rate_hz: int = 16_000
    """The rate ACS streams the call's audio at (16 000 or 24 000 Hz)."""
    staff_phone_number: str | None = None
    """Where "speak to staff" and failures transfer the caller (E.164)."""
    languages: tuple[str, ...] = ("en-US",)
    """The languages callers speak (BCP-47); several: the recognizer identifies which at
    the start of the call (Azure Speech; the embedded recognizer is English only)."""
    voice_id: str | None = None
    """The clinic's own cloud voice (an ElevenLabs voice id); None: the deployment's."""

    @property
    def tz(self) -> ZoneInfo:
        """The clinic's time zone."""
        return ZoneInfo(self.time_zone)

    def hours_on(self, day: dt.date) -> OpeningHours | None:
        """Opening hours on ``day``, or None when closed."""
        return next((h for h in self.hours if h.weekday == day.weekday()), None)

    def is_open_at(self, at: dt.datetime) -> bool:
        """Whether ``at`` (any zone) falls inside opening hours."""
        local = at.astimezone(self.tz)
        hours = self.hours_on(local.date())
        return hours is not None and hours.opens <= local.time() < hours.closes

    def provider(self, provider_id: str) -> Provider:
        """The provider with this id."""
        return next(p for p in self.providers if p.provider_id == provider_id)

    def appointment_type(self, code: str) -> AppointmentType:
        """The appointment type with this code."""
        return next(t for t in self.appointment_types if t.code == code)


@dataclass(frozen=True, slots=True)
class Patient:
    """A patient of the clinic. Every field but the id is PHI."""

    patient_id: str
    given_name: str
    family_name: str
    birth_date: dt.date
    phone: str = ""


@dataclass(frozen=True, slots=True)
class Slot:
    """A bookable stretch of one provider's schedule."""

    slot_id: str
    provider_id: str
    start: dt.datetime
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class Appointment:
    """A booked visit, as the EHR confirmed it."""

    appointment_id: str
    patient_id: str
    provider_id: str
    appointment_type: str
    slot_id: str
    start: dt.datetime
    status: str = "booked"
    extra: dict[str, str] = field(default_factory=dict)
