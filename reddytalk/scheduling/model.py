"""The clinic and its schedule, as the domain sees them (no storage concerns).

Times are timezone-aware datetimes in the clinic's zone; the store keeps them in
UTC ISO 8601.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

__all__ = [
    "AfterHours",
    "Appointment",
    "AppointmentType",
    "Clinic",
    "EhrConnection",
    "Holiday",
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
class Holiday:
    """A day the clinic is closed although its weekday has hours."""

    day: dt.date
    name: str = ""


AFTER_HOURS_ACTIONS = ("take_message", "transfer")


@dataclass(frozen=True, slots=True)
class AfterHours:
    """What the receptionist does with a call that comes while the clinic is closed.

    ``take_message``: it still books, moves and cancels, and takes a message for staff
    instead of transferring; ``transfer``: it hands the caller to ``on_call_number``.
    """

    action: str = "take_message"
    on_call_number: str | None = None
    """E.164; required when ``action`` is ``transfer``."""


EHR_KINDS = ("embedded", "fhir")


@dataclass(frozen=True, slots=True)
class EhrConnection:
    """Where the clinic's schedule and patients live.

    ``embedded``: the schedule kept in ReddyTalk's own store (the embedded profile).
    ``fhir``: a FHIR R4 server at ``fhir_base_url``; its client secret is the Key Vault
    secret named ``credentials_secret`` (never the secret itself).
    """

    kind: str = "embedded"
    fhir_base_url: str | None = None
    credentials_secret: str | None = None


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
    other_phone_numbers: tuple[str, ...] = ()
    """More numbers that ring this clinic (E.164); ``phone_number`` is the one texts
    come from."""
    holidays: tuple[Holiday, ...] = ()
    greeting: str | None = None
    """What the receptionist says first; None: the standard greeting with the name."""
    after_hours: AfterHours = field(default_factory=AfterHours)
    ehr: EhrConnection = field(default_factory=EhrConnection)
    admins: tuple[str, ...] = ()
    """Who administers the clinic in the admin API: Entra ID object ids (GUIDs) of
    users or groups holding the ``ReddyTalk.ClinicAdmin`` role."""

    @property
    def phone_numbers(self) -> tuple[str, ...]:
        """Every number that rings this clinic, the main one first."""
        return (self.phone_number, *self.other_phone_numbers)

    @property
    def tz(self) -> ZoneInfo:
        """The clinic's time zone."""
        return ZoneInfo(self.time_zone)

    def hours_on(self, day: dt.date) -> OpeningHours | None:
        """Opening hours on ``day``, or None when closed (its weekday has no hours, or
        it is a holiday)."""
        if any(holiday.day == day for holiday in self.holidays):
            return None
        return next((h for h in self.hours if h.weekday == day.weekday()), None)

    def is_open_at(self, at: dt.datetime) -> bool:
        """Whether ``at`` (any zone) falls inside opening hours."""
        local = at.astimezone(self.tz)
        hours = self.hours_on(local.date())
        return hours is not None and hours.opens <= local.time() < hours.closes

    def transfer_number_at(self, at: dt.datetime) -> str | None:
        """Where a transfer to staff goes at ``at``: the staff line while the clinic is
        open; after hours the on-call number (``after_hours.action`` ``transfer``), or
        None when the clinic takes messages after hours instead."""
        if self.is_open_at(at):
            return self.staff_phone_number
        if self.after_hours.action == "transfer":
            return self.after_hours.on_call_number or self.staff_phone_number
        return None

    def takes_messages_instead_at(self, at: dt.datetime) -> bool:
        """Whether a caller asking for staff at ``at`` is offered a message instead of a
        transfer: after hours, when the clinic asked for that."""
        return not self.is_open_at(at) and self.after_hours.action == "take_message"

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
