"""What the admin API does for a principal: clinics, their calls and their messages.

Every function takes the store and the :class:`~reddytalk.admin.auth.Principal`, checks
what the principal may do before touching anything, and returns JSON-ready data.

Who sees what: an Operator sees every clinic; a ClinicAdmin sees the clinics that
list them in ``admins``. A clinic a ClinicAdmin may not see is reported as not found
(:class:`NotFound`, 404), like one that does not exist: answering "forbidden" would
confirm that the clinic id exists, and clinic ids name practices. A principal
without any admin role gets :class:`~reddytalk.errors.Forbidden` (403) everywhere.

PHI: a call's transcript, tool calls and caller number, and the messages, are PHI;
each view records an :class:`~reddytalk.ports.AuditEvent` naming the actor before the
data is returned. A message list is audited as one event whose ``call_id`` is the
clinic id (the messages span many calls, and the clinic's id keeps these events in
one retrievable trail, ``audit_trail(clinic_id)``, and one Cosmos DB partition per
clinic rather than one shared by all). The call list opens nothing sealed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any
from urllib.parse import quote, urlencode

from reddytalk.admin.auth import Principal
from reddytalk.clinics.admin import (
    ClinicExists,
    ClinicNotFound,
    DeploymentEhr,
    add_clinic,
    embedded_schedule,
    remove_clinic,
    update_clinic,
)
from reddytalk.clinics.config import ClinicConfigError, clinic_to_yaml, parse_clinic_yaml
from reddytalk.errors import ReddyTalkError
from reddytalk.ports import AuditEvent, CallListing, CallRecord, CallStore, Ehr, Message
from reddytalk.scheduling.model import Clinic

__all__ = [
    "CALLER_HIDDEN",
    "MAX_CALLS",
    "SOFTPHONE_RAW_ID",
    "NoPhoneLine",
    "NotFound",
    "NumberTaken",
    "appointment_changes",
    "call_audit_trail",
    "clinic_yaml",
    "delete_clinic",
    "list_calls",
    "list_messages",
    "list_visible_clinics",
    "mark_message_done",
    "put_clinic",
    "softphone_call",
    "view_call",
]

MAX_CALLS = 200
"""The most calls one page lists (the store's limit)."""
CALLER_HIDDEN = "hidden"
"""The caller number in a call list: opening the call reveals (and audits) it."""
SOFTPHONE_RAW_ID = "softphone"
"""The ``participantRawID`` the browser softphone puts in its audio."""


class NotFound(LookupError):
    """No such clinic, call or message for this principal (or it is another clinic's)."""


class NoPhoneLine(NotFound):
    """The softphone has no phone line to dial here (only the local stack has one)."""


class NumberTaken(ReddyTalkError):
    """A clinic was not saved: one of its numbers rings another clinic (nothing changed)."""


async def list_visible_clinics(store: CallStore, principal: Principal) -> list[dict[str, Any]]:
    """The clinics the principal may see: id, name, numbers, time zone (not PHI)."""
    principal.check_has_role()
    return [
        {
            "id": c.clinic_id,
            "name": c.name,
            "phone_numbers": list(c.phone_numbers),
            "time_zone": c.time_zone,
        }
        for c in await store.list_clinics()
        if principal.may_see(c)
    ]


async def softphone_call(
    store: CallStore, principal: Principal, clinic_id: str, *, line_url: str, now: dt.datetime
) -> dict[str, Any]:
    """Where the browser softphone dials the clinic: a new call on the phone line.

    ``line_url`` is the local ACS's phone line (``ws://127.0.0.1:<port>``); the call
    takes the path of any call to the clinic's number (IncomingCall, answer, media
    stream), with ``transcript=1`` for the live transcript. Who placed it is audited
    under the call's id, so the call's trail names them.

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic, or not the principal's.
        NoPhoneLine: No phone line here (in Azure, call the clinic's number).
    """
    clinic = await _visible_clinic(store, principal, clinic_id)
    if not line_url:
        raise NoPhoneLine(
            "the softphone needs the local stack's phone line (scripts/demo --serve); "
            "in Azure, call the clinic's number"
        )
    call_id = f"softphone-{uuid.uuid4().hex}"
    query = urlencode({"to": clinic.phone_number, "transcript": "1"})
    await store.record_audit(
        AuditEvent(call_id, clinic_id, "call.placed", "softphone", now, {"actor": principal.actor})
    )
    return {
        "call_id": call_id,
        "line_url": f"{line_url.rstrip('/')}/calls/{quote(call_id, safe='')}?{query}",
        "dialled": clinic.phone_number,
        "sample_rate_hz": clinic.stream_sample_rate_hz,
        "participant_raw_id": SOFTPHONE_RAW_ID,
    }


async def clinic_yaml(store: CallStore, principal: Principal, clinic_id: str) -> str:
    """The clinic's file (``clinics/example.yaml``'s format).

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic, or not the principal's.
    """
    return clinic_to_yaml(await _visible_clinic(store, principal, clinic_id))


async def put_clinic(
    store: CallStore,
    principal: Principal,
    clinic_id: str,
    text: str,
    *,
    ehr: Ehr | None,
    deployment: DeploymentEhr,
    now: dt.datetime,
) -> bool:
    """Add or replace a clinic from its file; True if it was added.

    Args:
        ehr: The deployment's EHR; the embedded one gets the clinic's schedule.
        deployment: Which EHR that is (a clinic that names another is refused).

    Raises:
        Forbidden: Not an Operator.
        ClinicConfigError: The file's problems (an ``id`` other than ``clinic_id`` too).
        NumberTaken: One of its numbers rings another clinic.
    """
    principal.check_operator()
    clinic = parse_clinic_yaml(text)
    if clinic.clinic_id != clinic_id:
        raise ClinicConfigError(
            [("id", f"is {clinic.clinic_id!r}; expected {clinic_id!r}, the URL's")]
        )
    schedule = embedded_schedule(ehr)
    try:
        try:
            await add_clinic(store, clinic, ehr=schedule, deployment=deployment, now=now)
            return True
        except ClinicExists:
            await update_clinic(store, clinic, ehr=schedule, deployment=deployment, now=now)
            return False
    except ClinicConfigError:  # an EHR this deployment does not serve
        raise
    except ValueError as error:  # the file is valid, so the store refused a number
        raise NumberTaken(str(error)) from None


async def delete_clinic(store: CallStore, principal: Principal, clinic_id: str) -> None:
    """Remove a clinic (its records stay).

    Raises:
        Forbidden: Not an Operator.
        NotFound: No such clinic.
        ClinicBusy: Calls to it are in progress (nothing changed).
    """
    principal.check_operator()
    try:
        await remove_clinic(store, clinic_id)
    except ClinicNotFound as error:
        raise NotFound(str(error)) from None


async def list_calls(
    store: CallStore,
    principal: Principal,
    clinic_id: str,
    *,
    limit: int = 50,
    before: dt.datetime | None = None,
) -> list[dict[str, Any]]:
    """The clinic's calls, newest first, without PHI (nothing is opened or audited).

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic, or not the principal's.
        ValueError: ``limit`` not 1 to :data:`MAX_CALLS`, or ``before`` naive.
    """
    if not 1 <= limit <= MAX_CALLS or (before is not None and before.tzinfo is None):
        raise ValueError(f"limit must be 1 to {MAX_CALLS} and before an aware time")
    await _visible_clinic(store, principal, clinic_id)
    calls = await store.list_calls(clinic_id, limit=limit, before=before)
    return [{**_call_summary(c), "caller_number": CALLER_HIDDEN} for c in calls]


async def view_call(
    store: CallStore, principal: Principal, clinic_id: str, call_id: str, *, now: dt.datetime
) -> dict[str, Any]:
    """One call with its transcript, tool calls and caller number (PHI: audited first).

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic or call, or the call is another clinic's.
    """
    await _visible_clinic(store, principal, clinic_id)
    record = await store.get_call(call_id, clinic_id=clinic_id)  # another's: never opened
    if record is None or record.clinic_id != clinic_id:
        raise NotFound(f"clinic {clinic_id!r} has no call {call_id!r}")
    await store.record_audit(
        AuditEvent(call_id, clinic_id, "call.viewed", "call", now, {"actor": principal.actor})
    )
    caller = await store.get_call_number(call_id, clinic_id, party="caller")
    return {
        **_call_summary(record),
        "caller_number": caller,
        "transcript": [{"speaker": who, "text": text} for who, text in record.transcript],
        "tool_calls": list(record.tool_calls),
    }


async def call_audit_trail(
    store: CallStore, principal: Principal, clinic_id: str, call_id: str
) -> list[dict[str, Any]]:
    """The clinic's audit records of one call (ids only), oldest first.

    Only records of this clinic are shown, so another clinic's call has none here.

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic, or no audit record of the call in it.
    """
    await _visible_clinic(store, principal, clinic_id)
    events = [e for e in await store.audit_trail(call_id) if e.clinic_id == clinic_id]
    if not events:
        raise NotFound(f"clinic {clinic_id!r} has no audit trail of call {call_id!r}")
    return [
        {
            "action": e.action,
            "resource": e.resource,
            "at": e.at.isoformat(),
            "details": dict(e.details),
        }
        for e in events
    ]


async def appointment_changes(
    store: CallStore, principal: Principal, clinic_id: str, *, since: dt.datetime
) -> list[dict[str, Any]]:
    """The appointments the clinic's calls booked, moved or cancelled since ``since``,
    newest first, each with its call (ids only: opens no PHI; the call's view has the
    details).

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic, or not the principal's.
    """
    await _visible_clinic(store, principal, clinic_id)
    return [
        {
            "at": e.at.isoformat(),
            "change": e.details["change"],
            "appointment_id": e.resource.removeprefix("Appointment/"),
            "moved_to": e.details.get("moved_to", "").removeprefix("Appointment/") or None,
            "call_id": e.call_id,
        }
        for e in await store.appointment_changes(clinic_id, since=since)
    ]


async def list_messages(
    store: CallStore, principal: Principal, clinic_id: str, *, now: dt.datetime
) -> list[dict[str, Any]]:
    """The clinic's messages for staff, oldest first (PHI: the view is audited first).

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic, or not the principal's.
    """
    await _visible_clinic(store, principal, clinic_id)
    await store.record_audit(
        AuditEvent(
            clinic_id, clinic_id, "messages.viewed", "messages", now, {"actor": principal.actor}
        )
    )
    return [_message(m) for m in await store.list_messages(clinic_id)]


async def mark_message_done(
    store: CallStore, principal: Principal, clinic_id: str, message_id: str
) -> None:
    """Mark one of the clinic's messages done (opens no PHI).

    Raises:
        Forbidden: No admin role.
        NotFound: No such clinic or message, or not the principal's.
    """
    await _visible_clinic(store, principal, clinic_id)
    if not await store.set_message_status(clinic_id, message_id, status="done"):
        raise NotFound(f"clinic {clinic_id!r} has no message {message_id!r}")


async def _visible_clinic(store: CallStore, principal: Principal, clinic_id: str) -> Clinic:
    principal.check_has_role()
    clinic = await store.get_clinic(clinic_id)
    if clinic is None or not principal.may_see(clinic):
        raise NotFound(f"no clinic {clinic_id!r}")
    return clinic


def _call_summary(call: CallListing | CallRecord) -> dict[str, Any]:
    return {
        "call_id": call.call_id,
        "started_at": call.started_at.isoformat(),
        "ended_at": call.ended_at.isoformat(),
        "duration_s": round((call.ended_at - call.started_at).total_seconds(), 1),
        "outcome": call.outcome,
        "turns": [_turn(t) for t in call.turn_timings],
    }


# Stage timestamps of a TurnTimings record, and the names the API gives their
# durations from the end of the caller's speech.
_STAGES = {
    "end_of_turn_ms": "turn_end_decided_ms",
    "transcript_final_ms": "transcript_final_ms",
    "first_policy_text_ms": "first_policy_text_ms",
    "first_tts_audio_ms": "first_tts_audio_ms",
    "first_frame_ms": "first_frame_sent_ms",
    "first_content_ms": "first_content_sent_ms",
}


def _turn(timings: dict[str, Any]) -> dict[str, Any]:
    """A stored turn (``asdict(TurnTimings)``) as durations from the caller's speech end;
    keys an older record lacks are None."""
    start = timings.get("caller_speech_end_ms")

    def since(key: str) -> float | None:
        at = timings.get(key)
        ok = isinstance(start, int | float) and isinstance(at, int | float)
        return round(at - start, 1) if ok else None  # type: ignore[operator]

    return {
        "turn": timings.get("turn"),
        "tier": timings.get("tier"),
        **{name: since(key) for name, key in _STAGES.items()},
        "tool_wait_ms": timings.get("tool_wait_ms"),
        "interrupted": bool(timings.get("was_interrupted")),
        "early": bool(timings.get("early")),
        "revision": timings.get("revision"),
    }


def _message(message: Message) -> dict[str, Any]:
    return {
        "message_id": message.message_id,
        "call_id": message.call_id,
        "taken_at": message.taken_at.isoformat(),
        "caller_name": message.caller_name,
        "text": message.text,
        "patient_id": message.patient_id,
        "status": message.status,
    }
