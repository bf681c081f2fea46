"""The activities of the workflows: each one step that touches the world.

Activities run outside the replay (any number of times for one workflow step if
it is retried), so each is safe to repeat: holds and bookings carry the
workflow's instance id as their key, a cancel of a cancelled appointment changes
nothing, the end of a call is recorded once. A scheduling refusal is returned as
``{"refused": reason}`` (a retry would not change it); a provider failure raises
``ProviderError`` and is retried by the workflow.

The same functions run as Durable activities in Azure (``orchestrations/``) and
inline in the embedded profile (:mod:`reddytalk.workflows.runner`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reddytalk.errors import SchedulingError
from reddytalk.ports import AuditEvent, CallControl, CallRecord, CallStore, Ehr
from reddytalk.scheduling.wire import appointment_to_dict
from reddytalk.workflows import booking, call_session

__all__ = ["ACTIVITIES", "ActivityDeps"]

log = logging.getLogger(__name__)

HOLD_FOR = dt.timedelta(minutes=5)
"""Long enough for the write and its retries; an abandoned hold frees itself."""
APOLOGY_VOICE = "en-US-JennyNeural"
_APOLOGIES = {
    "media": "I'm sorry, I'm having trouble hearing you. Let me connect you with our staff.",
    "transfer": "I'm sorry, I couldn't reach our staff. Please call us back in a few minutes.",
}


@dataclass(frozen=True, slots=True)
class ActivityDeps:
    """What activities work with."""

    ehr: Ehr
    store: CallStore
    control: CallControl | None
    clock: Callable[[], dt.datetime]


Activity = Callable[[ActivityDeps, dict[str, Any]], Awaitable[dict[str, Any]]]


async def _hold_slot(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    until = deps.clock() + HOLD_FOR
    try:
        await deps.ehr.hold(
            clinic_id=data["clinic_id"], slot_id=data["slot_id"], hold_key=data["key"],
            until=until,
        )  # fmt: skip
    except SchedulingError as refusal:
        return {"refused": str(refusal)}
    return {"held": True}


async def _release_hold(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    await deps.ehr.release(
        clinic_id=data["clinic_id"], slot_id=data["slot_id"], hold_key=data["key"]
    )
    return {}


async def _write_appointment(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    try:
        appointment = await deps.ehr.book(
            clinic_id=data["clinic_id"],
            slot_id=data["slot_id"],
            patient_id=data["patient_id"],
            appointment_type=data["appointment_type"],
            idempotency_key=data["key"],
        )
    except SchedulingError as refusal:
        return {"refused": str(refusal)}
    return {"appointment": appointment_to_dict(appointment)}


async def _cancel_in_ehr(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    try:
        appointment = await deps.ehr.cancel(
            clinic_id=data["clinic_id"], appointment_id=data["appointment_id"]
        )
    except SchedulingError as refusal:
        return {"refused": str(refusal)}
    return {"appointment": appointment_to_dict(appointment)}


async def _audit(deps: ActivityDeps, data: dict[str, Any], action: str, resource: str,
                 **details: str) -> None:  # fmt: skip
    await deps.store.record_audit(
        AuditEvent(
            call_id=data["call_id"],
            clinic_id=data["clinic_id"],
            action=action,
            resource=resource,
            at=deps.clock(),
            details=details,
        )
    )


async def _record_change(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    appointment = data["appointment"]
    resource = f"Appointment/{appointment['appointment_id']}"
    action = "update" if data["change"] == "cancelled" else "create"
    await _audit(deps, data, action, resource, change=data["change"])
    if data["change"] == "moved":
        old = f"Appointment/{data['appointment_id']}"
        await _audit(deps, data, "update", old, change="cancelled", moved_to=resource)
    return {}


def _control(deps: ActivityDeps) -> CallControl:
    if deps.control is None:
        raise RuntimeError("call control activities need a CallControl")
    return deps.control


async def _hang_up(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    await _control(deps).hang_up(call_connection_id=data["call_connection_id"])
    return {}


async def _play_apology(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    await _control(deps).play_text(
        call_connection_id=data["call_connection_id"],
        text=_APOLOGIES[data["why"]],
        voice_name=APOLOGY_VOICE,
        operation_context=f"apology:{data['why']}",
    )
    return {}


async def _transfer_to_staff(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    clinic = await deps.store.get_clinic(data["clinic_id"])
    # The receptionist already decided a transfer is due (after hours, with messages
    # taken instead, it only transfers an emergency or a failure): a person on call if
    # there is one at this hour, else the staff line (its voicemail).
    number = (
        None
        if clinic is None
        else (clinic.transfer_number_at(deps.clock()) or clinic.staff_phone_number)
    )
    if not number:
        log.warning("no staff number to transfer to: hanging up")
        await _control(deps).hang_up(call_connection_id=data["call_connection_id"])
        return {"transferred": False}
    await _control(deps).transfer(
        call_connection_id=data["call_connection_id"],
        to_phone_number=number,
        operation_context="transfer:staff",
    )
    return {"transferred": True}


async def _finish_call(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
    """Close the call's audit trail; keep a record of a call the media worker never had."""
    call_id, outcome = data["call_id"], data["outcome"]
    now = deps.clock()
    stub = CallRecord(
        call_id=call_id,
        clinic_id=data["clinic_id"],
        started_at=now,
        ended_at=now,
        outcome=outcome,
        transcript=(),
    )
    await deps.store.save_call(stub, replace=False)  # the conversation's own record wins
    if await deps.store.claim(f"call-ended:{call_id}"):
        await _audit(deps, data, "call.ended", "call", outcome=outcome)
    return {}


ACTIVITIES: dict[str, Activity] = {
    booking.HOLD_SLOT: _hold_slot,
    booking.RELEASE_HOLD: _release_hold,
    booking.WRITE_APPOINTMENT: _write_appointment,
    booking.CANCEL_IN_EHR: _cancel_in_ehr,
    booking.RECORD_CHANGE: _record_change,
    call_session.HANG_UP: _hang_up,
    call_session.PLAY_APOLOGY: _play_apology,
    call_session.TRANSFER_TO_STAFF: _transfer_to_staff,
    call_session.FINISH_CALL: _finish_call,
}
"""Every activity by its registered name."""
