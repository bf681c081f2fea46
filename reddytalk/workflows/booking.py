"""Booking, moving and cancelling an appointment: short sequences of activities.

Each runs as its own workflow instance whose id is derived from the call and the
request (:func:`instance_id`), so a retried request finds the first instance's
result and never books twice; the EHR's idempotency key (the instance id) makes
each write safe to repeat as well. Domain refusals ("that time was just taken")
come back from activities as data and end the workflow with ``refused``; only
provider failures raise, are retried, and trigger compensation.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from reddytalk.workflows.steps import TRANSIENT, Steps

__all__ = [
    "BOOK_APPOINTMENT",
    "CANCEL_APPOINTMENT",
    "RESCHEDULE_APPOINTMENT",
    "book_appointment",
    "cancel_appointment",
    "instance_id",
    "reschedule_appointment",
]

BOOK_APPOINTMENT = "book_appointment"
RESCHEDULE_APPOINTMENT = "reschedule_appointment"
CANCEL_APPOINTMENT = "cancel_appointment"

# Activity names (registered under these names in orchestrations/ and in the runner).
HOLD_SLOT = "hold_slot"
RELEASE_HOLD = "release_hold"
WRITE_APPOINTMENT = "write_appointment"
CANCEL_IN_EHR = "cancel_in_ehr"
RECORD_CHANGE = "record_change"

_SORRY = "I'm sorry, I couldn't complete that just now."


def instance_id(workflow: str, call_id: str, target: str) -> str:
    """The instance id of ``workflow`` for ``target`` (a slot or appointment) in a call."""
    return f"{call_id}:{workflow}:{target}"


def _refused(result: dict[str, Any]) -> dict[str, Any] | None:
    reason = result.get("refused")
    return {"status": "refused", "reason": reason} if reason else None


def book_appointment(steps: Steps) -> Generator[Any, Any, dict[str, Any]]:
    """Hold the slot, write the appointment (releasing the hold if that fails), record it.

    Input: ``call_id``, ``clinic_id``, ``slot_id``, ``patient_id``, ``appointment_type``.
    Output: ``{"status": "booked", "appointment": {...}}``, or ``refused``/``failed``
    with a ``reason`` the caller can hear.
    """
    request = {**steps.input(), "key": steps.instance_id()}
    written = yield from _hold_and_write(steps, request)
    if "appointment" not in written:
        return written
    appointment = written["appointment"]
    yield from _record(steps, request, "booked", appointment)
    return {"status": "booked", "appointment": appointment}


def reschedule_appointment(steps: Steps) -> Generator[Any, Any, dict[str, Any]]:
    """Book the new slot first, then cancel the old appointment.

    The caller never loses the old time if the new one was just taken. If the old
    one cannot be cancelled, the new one is cancelled again (compensation), so
    the patient never holds both.

    Input: as :func:`book_appointment` plus ``appointment_id`` (the old one).
    """
    request = {**steps.input(), "key": steps.instance_id()}
    written = yield from _hold_and_write(steps, request)
    if "appointment" not in written:
        return written
    moved = written["appointment"]
    try:
        yield steps.activity(CANCEL_IN_EHR, request, retry=TRANSIENT)
    except Exception:
        undo = {**request, "appointment_id": moved["appointment_id"]}
        yield steps.activity(CANCEL_IN_EHR, undo, retry=TRANSIENT)
        return {"status": "failed", "reason": _SORRY}
    yield from _record(steps, request, "moved", moved)
    return {"status": "rescheduled", "appointment": moved}


def cancel_appointment(steps: Steps) -> Generator[Any, Any, dict[str, Any]]:
    """Cancel the appointment in the EHR and record it.

    Input: ``call_id``, ``clinic_id``, ``appointment_id``.
    """
    request = {**steps.input(), "key": steps.instance_id()}
    cancelled = yield steps.activity(CANCEL_IN_EHR, request, retry=TRANSIENT)
    if (refusal := _refused(cancelled)) is not None:
        return refusal
    yield from _record(steps, request, "cancelled", cancelled["appointment"])
    return {"status": "cancelled", "appointment": cancelled["appointment"]}


def _hold_and_write(
    steps: Steps, request: dict[str, Any]
) -> Generator[Any, Any, dict[str, Any]]:
    """Hold the slot and write the appointment: ``{"appointment": ...}``, or the
    workflow's end (refused or failed) with the hold given back."""
    held = yield steps.activity(HOLD_SLOT, request, retry=TRANSIENT)
    if (refusal := _refused(held)) is not None:
        return refusal
    try:
        written: dict[str, Any] = yield steps.activity(
            WRITE_APPOINTMENT, request, retry=TRANSIENT
        )
    except Exception:  # a provider failure outlived its retries: give the slot back
        yield steps.activity(RELEASE_HOLD, request, retry=TRANSIENT)
        return {"status": "failed", "reason": _SORRY}
    if (refusal := _refused(written)) is not None:
        yield steps.activity(RELEASE_HOLD, request, retry=TRANSIENT)
        return refusal
    return written


def _record(
    steps: Steps, request: dict[str, Any], change: str, appointment: dict[str, Any]
) -> Generator[Any, Any, None]:
    """Audit the change. The EHR already holds it, so a failure here undoes nothing."""
    try:
        yield steps.activity(
            RECORD_CHANGE, {**request, "change": change, "appointment": appointment},
            retry=TRANSIENT,
        )  # fmt: skip
    except Exception:
        pass  # the activity logged it; the appointment stands
