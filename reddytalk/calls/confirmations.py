"""Text confirmations of an appointment change: what the text says, where it goes, its key.

Why a separate tool and not a ``notify`` activity at the end of the booking workflows:
the caller is asked for consent after the write succeeded (the workflow has ended by
then), and the number must stay out of Durable's history, which is not encrypted
(workflow inputs and results are kept there). So the back office sends the text when
the caller says yes, from the appointment the write returned, to a number it finds
itself (the patient's phone, read from the EHR when the text is sent, else the number
the call came from), and claims :func:`confirmation_key` in the store
first, so one change of one call is texted once.

SMS is not a secure channel: the text names the clinic, the provider, the day and the
time (in the clinic's zone), and nothing else: no patient name, no visit reason (the
appointment type can be one). The sender is the clinic's number, so a reply or a call
back reaches the clinic.
"""

from __future__ import annotations

import re

from reddytalk.scheduling.model import Appointment, Clinic
from reddytalk.workflows.booking import (
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    RESCHEDULE_APPOINTMENT,
)

__all__ = [
    "CALLER",
    "CALLER_NUMBER",
    "CHANGES",
    "PATIENT_PHONE",
    "as_e164",
    "confirmation_key",
    "confirmation_text",
]

CALLER = "caller"
"""The party of the number the call came from (see ``CallStore.save_call_number``)."""

CHANGES = {
    BOOK_APPOINTMENT: "booked",
    RESCHEDULE_APPOINTMENT: "moved",
    CANCEL_APPOINTMENT: "cancelled",
}
"""What each write workflow did to the appointment, as the text says it."""

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")
_NANP_DIGITS = 10
# English whatever the process's locale (strftime's %a and %b follow LC_TIME).
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


PATIENT_PHONE = "patient_phone"
"""The audit's name for the patient's phone in the EHR (read at send time)."""
CALLER_NUMBER = "caller_number"
"""The audit's name for the number the call came from (kept sealed for the call)."""


def confirmation_key(call_id: str, workflow: str, appointment_id: str) -> str:
    """The store claim, idempotency key and outbox id of one change's text in one call."""
    return f"sms-confirmation:{call_id}:{workflow}:{appointment_id}"


def as_e164(raw: str, *, clinic_number: str) -> str | None:
    """A phone number from an EHR record in E.164, or None if it cannot be one.

    FHIR ``telecom.value`` is free text: "+1 555 010 0100" and "(555) 010-0100" both
    occur. Ten digits are taken as a North American number when the clinic's own
    number is one (+1).
    """
    digits = re.sub(r"[^0-9]", "", raw)
    if raw.strip().startswith("+"):
        candidate = f"+{digits}"
    elif len(digits) == _NANP_DIGITS and clinic_number.startswith("+1"):
        candidate = f"+1{digits}"
    elif len(digits) == _NANP_DIGITS + 1 and digits.startswith("1"):
        candidate = f"+{digits}"
    else:
        return None
    return candidate if _E164.fullmatch(candidate) else None


def confirmation_text(workflow: str, appointment: Appointment, clinic: Clinic) -> str:
    """The text for ``appointment`` after ``workflow`` changed it, in the clinic's time.

    "Reddy Family Clinic: your appointment with Doctor Patel on Tue, Dec 1 at 9:30 AM
    CST is booked."

    Raises:
        KeyError: ``workflow`` is not a write workflow.
    """
    change = CHANGES[workflow]
    names = (p.display_name for p in clinic.providers if p.provider_id == appointment.provider_id)
    with_whom = next((f" with {name}" for name in names), "")
    local = appointment.start.astimezone(clinic.tz)
    day = f"{_DAYS[local.weekday()]}, {_MONTHS[local.month - 1]} {local.day}"
    clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    when = f"{day} at {clock} {local.tzname()}"
    if change == "moved":
        return f"{clinic.name}: your appointment is moved to {when}{with_whom}."
    return f"{clinic.name}: your appointment{with_whom} on {when} is {change}."
