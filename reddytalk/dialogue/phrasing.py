"""The receptionist's sentences. Words only: times and dates are spelled out the
way the text-to-speech should say them (and a caller's recognizer can hear them).
"""

from __future__ import annotations

import datetime as dt
import itertools

from reddytalk.dialogue.spoken import say_date, say_time
from reddytalk.scheduling.model import Appointment, AppointmentType, Clinic, Slot

__all__ = [
    "say_address",
    "say_appointment",
    "say_hours",
    "say_offers",
    "say_type_choices",
]

_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _join(items: list[str], last: str = "or") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f", {last} " + items[-1]


def say_hours(clinic: Clinic) -> str:
    """Opening hours, consecutive days with the same hours grouped."""
    parts = []
    by_hours = itertools.groupby(
        sorted(clinic.hours, key=lambda h: h.weekday), key=lambda h: (h.opens, h.closes)
    )
    for (opens, closes), group in by_hours:
        days = [h.weekday for h in group]
        span = (
            _DAY_NAMES[days[0]]
            if len(days) == 1
            else f"{_DAY_NAMES[days[0]]} to {_DAY_NAMES[days[-1]]}"
        )
        parts.append(f"{span} from {say_time(opens)} to {say_time(closes)}")
    return f"We are open {_join(parts, 'and')}."


def say_address(clinic: Clinic) -> str:
    """Where the clinic is."""
    return f"We are at {clinic.address}."


def say_type_choices(types: tuple[AppointmentType, ...]) -> str:
    """The question for the kind of visit."""
    names = [f"a {t.display_name}" for t in types]
    return f"What kind of appointment do you need: {_join(names)}?"


def _local(at: dt.datetime, clinic: Clinic) -> dt.datetime:
    return at.astimezone(clinic.tz)


def say_offers(offers: list[Slot], clinic: Clinic) -> str:
    """The free slots on offer, grouped by day: "On Tuesday, December first, I have ..."."""
    sentences = []
    for day, group in itertools.groupby(offers, key=lambda s: _local(s.start, clinic).date()):
        items = [
            f"{say_time(_local(s.start, clinic).time())} with "
            f"{clinic.provider(s.provider_id).display_name}"
            for s in group
        ]
        sentences.append(f"On {say_date(day)}, I have {_join(items)}.")
    return " ".join(sentences) + " Which one would you like?"


def say_appointment(
    *, type_name: str, provider_name: str, start: dt.datetime, clinic: Clinic
) -> str:
    """ "a check-up with Doctor Patel on Tuesday, December first at nine thirty A M"."""
    local = _local(start, clinic)
    return (
        f"a {type_name} with {provider_name} on {say_date(local.date())} "
        f"at {say_time(local.time())}"
    )


def describe(appointment: Appointment, clinic: Clinic) -> str:
    """An existing appointment, as the receptionist says it."""
    return say_appointment(
        type_name=clinic.appointment_type(appointment.appointment_type).display_name,
        provider_name=clinic.provider(appointment.provider_id).display_name,
        start=appointment.start,
        clinic=clinic,
    )
