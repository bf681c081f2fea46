"""The tools API the media worker calls during a call: the back office of a conversation.

``POST /api/calls/{call_id}/tools/{tool}`` with the per-call token ``incoming_call``
issued (``Authorization: Bearer``). The call and the clinic come from the token,
never from the body.

- Reads answer at once, from the clinic's records (:class:`ClinicRecords`, which
  audits each touch of PHI): ``verify_identity``, ``register_patient`` (find or
  create, so a retry registers nobody twice), ``find_slots``,
  ``upcoming_appointments``. Identifying the caller hands back a patient token;
  every tool that touches a patient's appointments asks for it, so one call
  reaches the appointments of the patient it proved to be and nobody else's.
- ``take_message`` and ``keep_record`` are single idempotent store writes; they
  run here rather than as orchestrations so the message and the transcript (PHI)
  never enter the Durable task hub's history.
- ``book``, ``reschedule`` and ``cancel`` start their workflow as an orchestration
  whose instance id is derived from the call and the request, and wait a bounded
  time for its result: 200 with the result, or 202 while it still runs. A retried
  request finds the same instance and returns its first result; it never books
  twice.
- ``send_confirmation`` texts the caller a confirmation of a write this call made,
  after the caller said yes: ``change`` (book, reschedule or cancel) and the write's
  target field name the orchestration, whose result is the appointment (so the text
  confirms what the EHR said, and only a change of this call for its own patient);
  the back office composes the text and finds the number (the patient's phone in the
  EHR, else the number the call came from), never the body. Once per change: 200
  ``{"status": "sent"}`` or ``"sent_already"``. Not an orchestration step: consent
  comes after the write, and numbers stay out of Durable's history.
- ``end_call`` and ``transfer_to_staff`` ask the call's session orchestration to
  hang up or to transfer (closing the media stream does not end a telephone call).

Errors: 400 for a bad body (naming the field), 401 without a valid call token,
403 for another call's token or a patient the call did not identify, 404 for an
unknown tool, 409 when the call has no session, 422 with a reason the caller can
hear, 503 when the EHR, the store or the SMS service is unavailable.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.runtime import Runtime, runtime
from reddytalk.calls import tool_requests as fields
from reddytalk.calls.back_office import ClinicRecords
from reddytalk.calls.call_tokens import CallGrant, CallTokens
from reddytalk.errors import MalformedMessage, ProviderError, SchedulingError, Unauthorized
from reddytalk.logs import bind_call, remember_phi
from reddytalk.ports import Message
from reddytalk.scheduling.wire import (
    appointment_from_dict,
    appointment_to_dict,
    patient_to_dict,
    slot_to_dict,
)
from reddytalk.workflows import booking
from reddytalk.workflows.call_session import HANG_UP_REQUESTED, TRANSFER_REQUESTED

__all__ = ["CALL_TOOLS", "CONFIRM_TOOL", "READ_TOOLS", "WRITE_TOOLS", "bp"]

log = logging.getLogger(__name__)
bp = df.Blueprint()

WRITE_TOOLS: dict[str, tuple[str, tuple[str, ...], str]] = {
    # tool: (workflow, required fields, the field that names the request's target)
    "book": (booking.BOOK_APPOINTMENT, ("slot_id", "patient_id", "appointment_type"), "slot_id"),
    "reschedule": (
        booking.RESCHEDULE_APPOINTMENT,
        ("slot_id", "patient_id", "appointment_type", "appointment_id"),
        "slot_id",
    ),
    "cancel": (booking.CANCEL_APPOINTMENT, ("patient_id", "appointment_id"), "appointment_id"),
}
CALL_TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    # tool: (event raised on the call's session, required fields)
    "end_call": (HANG_UP_REQUESTED, ()),
    "transfer_to_staff": (TRANSFER_REQUESTED, ("reason",)),
}
CONFIRM_TOOL = "send_confirmation"
"""Texts a confirmation of one of the call's writes (fields: ``change``, the write's
target field, ``patient_token``)."""
_CHANGED = frozenset({"booked", "rescheduled", "cancelled"})
WAIT_MS = 8_000
"""How long a write waits for its orchestration before answering 202 (a caller is waiting)."""
POLL_MS = 10
"""How often it asks for the orchestration's status meanwhile: each poll that finds it
still running costs the caller up to this much (50 ms added ~50 ms to every booking)."""
_MAX_NAME = 100


class _Forbidden(Exception):
    """The token may not do this (another call's patient or appointment)."""


class _Call:
    """One request's view: the grant, its clinic's records, the token maker."""

    def __init__(self, rt: Runtime, tokens: CallTokens, grant: CallGrant) -> None:
        self.rt = rt
        self.tokens = tokens
        self.grant = grant
        self.records = ClinicRecords(
            ehr=rt.ehr, store=rt.store, clock=rt.clock, call_id=grant.call_id,
            clinic_id=grant.clinic_id,
        )  # fmt: skip

    def patient(self, body: dict[str, Any]) -> str:
        """The patient id of the body's patient token (the caller this call identified)."""
        try:
            return self.tokens.verify_patient(body.get("patient_token"), grant=self.grant)
        except Unauthorized as error:
            raise _Forbidden(str(error)) from None

    def identified(self, patient: Any) -> dict[str, Any]:
        if patient is None:
            return {"patient": None}
        token = self.tokens.issue_for_patient(
            grant=self.grant, patient_id=patient.patient_id, now=self.rt.clock()
        )
        return {"patient": patient_to_dict(patient), "patient_token": token}


async def _verify_identity(call: _Call, body: dict[str, Any]) -> dict[str, Any]:
    patient = await call.records.find_patient(**_person(body))
    return call.identified(patient)


async def _register_patient(call: _Call, body: dict[str, Any]) -> dict[str, Any]:
    patient = await call.records.register_patient(**_person(body))
    return call.identified(patient)


def _person(body: dict[str, Any]) -> dict[str, Any]:
    given = fields.text(body, "given_name", limit=_MAX_NAME)
    family = fields.text(body, "family_name", limit=_MAX_NAME)
    remember_phi(given, family)
    return {
        "given_name": given,
        "family_name": family,
        "birth_date": fields.date(body, "birth_date"),
    }


async def _find_slots(call: _Call, body: dict[str, Any]) -> dict[str, Any]:
    start, end = fields.aware_datetime(body, "start"), fields.aware_datetime(body, "end")
    provider_id = fields.optional_text(body, "provider_id")
    try:
        slots = await call.records.find_free_slots(start=start, end=end, provider_id=provider_id)
    except ValueError as error:
        raise MalformedMessage(str(error)) from None
    return {"slots": [slot_to_dict(slot) for slot in slots]}


async def _upcoming_appointments(call: _Call, body: dict[str, Any]) -> dict[str, Any]:
    found = await call.records.upcoming_appointments(patient_id=call.patient(body))
    return {"appointments": [appointment_to_dict(a) for a in found]}


async def _take_message(call: _Call, body: dict[str, Any]) -> dict[str, Any]:
    message_id = fields.text(body, "message_id")
    if not message_id.startswith(f"{call.grant.call_id}:"):
        raise MalformedMessage("message_id does not start with the call id")
    message = Message(
        message_id=message_id,
        call_id=call.grant.call_id,
        clinic_id=call.grant.clinic_id,
        taken_at=call.rt.clock(),
        text=fields.text(body, "text", limit=fields.MAX_TEXT),
        caller_name=fields.optional_text(body, "caller_name", limit=_MAX_NAME) or "",
        patient_id=call.patient(body) if body.get("patient_token") is not None else None,
    )
    kept = await call.records.take_message(message)
    return {"status": "kept" if kept else "kept_already", "message_id": message_id}


async def _keep_record(call: _Call, body: dict[str, Any]) -> dict[str, Any]:
    record = fields.call_record_from_dict(
        body, call_id=call.grant.call_id, clinic_id=call.grant.clinic_id
    )
    await call.records.keep_record(record)
    return {"status": "kept"}


READ_TOOLS: dict[str, Callable[[_Call, dict[str, Any]], Awaitable[dict[str, Any]]]] = {
    "verify_identity": _verify_identity,
    "register_patient": _register_patient,
    "find_slots": _find_slots,
    "upcoming_appointments": _upcoming_appointments,
    "take_message": _take_message,
    "keep_record": _keep_record,
}
"""Tools answered directly (no orchestration), by name."""


def _json(status: int, body: dict[str, Any]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


@bp.function_name("tools")
@bp.route(route="calls/{call_id}/tools/{tool}", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)  # fmt: skip
@bp.durable_client_input(client_name="client")
async def tools(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Run one tool for the call the token names."""
    rt = await runtime()
    if rt.tokens is None:
        return _json(503, {"error": "the tools API has no call token secret configured"})
    try:
        grant = rt.tokens.verify(req.headers.get("Authorization"))
    except Unauthorized as error:
        log.warning("tools refused a request: %s", error)
        return _json(401, {"error": "unauthorized"})
    if grant.call_id != req.route_params.get("call_id"):
        return _json(403, {"error": "the token is for another call"})
    bind_call(call_id=grant.call_id, clinic_id=grant.clinic_id)
    tool = req.route_params.get("tool", "")
    if tool not in (*READ_TOOLS, *WRITE_TOOLS, *CALL_TOOLS, CONFIRM_TOOL):
        return _json(404, {"error": f"no tool named {tool[:32]!r}"})
    call = _Call(rt, rt.tokens, grant)
    try:
        try:
            body = fields.body_object(req.get_json())
        except ValueError:
            raise MalformedMessage("the body is not JSON") from None
        if tool in READ_TOOLS:
            return _json(200, await READ_TOOLS[tool](call, body))
        if tool in CALL_TOOLS:
            return await _ask_session(client, call, body, *CALL_TOOLS[tool])
        if tool == CONFIRM_TOOL:
            return _json(200, await _send_confirmation(client, call, body))
        return await _write(req, client, call, body, *WRITE_TOOLS[tool])
    except MalformedMessage as error:
        return _json(400, {"error": str(error)})
    except _Forbidden as error:
        log.warning("tools refused %s: %s", tool, error)
        return _json(403, {"error": str(error)})
    except SchedulingError as refusal:
        return _json(422, {"error": str(refusal)})
    except ProviderError as error:
        log.warning("tool %s failed: %s", tool, error)
        return _json(503, {"error": "the clinic's records are unavailable"})


async def _write(
    req: func.HttpRequest,
    client: df.DurableOrchestrationClient,
    call: _Call,
    body: dict[str, Any],
    workflow: str,
    names: tuple[str, ...],
    target: str,
) -> func.HttpResponse:
    """Start (or find) the write's orchestration and wait a bounded time for it."""
    request = {name: fields.text(body, name) for name in names}
    if call.patient(body) != request["patient_id"]:
        raise _Forbidden("the patient is not the one this call identified")
    if "appointment_id" in request and not await call.records.owns(
        patient_id=request["patient_id"], appointment_id=request["appointment_id"]
    ):  # cancel and reschedule touch the patient's own appointments only
        raise _Forbidden("the appointment is not one of the patient's upcoming ones")
    instance = booking.instance_id(workflow, call.grant.call_id, request[target])
    status = await client.get_status(instance)
    if getattr(status, "runtime_status", None) is None:  # a new request, not a retry
        data = {"call_id": call.grant.call_id, "clinic_id": call.grant.clinic_id, **request}
        await client.start_new(workflow, instance_id=instance, client_input=data)
    response: func.HttpResponse = await client.wait_for_completion_or_create_check_status_response(
        req, instance, timeout_in_milliseconds=WAIT_MS, retry_interval_in_milliseconds=POLL_MS
    )
    return response


async def _ask_session(
    client: df.DurableOrchestrationClient,
    call: _Call,
    body: dict[str, Any],
    event: str,
    names: tuple[str, ...],
) -> func.HttpResponse:
    """Raise ``event`` on the call's session; 409 if the call has no running session."""
    data = {name: fields.text(body, name) for name in names}
    try:
        await client.raise_event(call.grant.call_id, event, data)
    except Exception:  # the client raises a bare Exception for 404 and 410
        return _json(409, {"error": "the call has no running session"})
    return _json(200, {"status": "requested"})


async def _send_confirmation(
    client: df.DurableOrchestrationClient, call: _Call, body: dict[str, Any]
) -> dict[str, Any]:
    """Text a confirmation of the write the body names, from that orchestration's result."""
    change = fields.text(body, "change")
    if change not in WRITE_TOOLS:
        raise MalformedMessage("change is not one of book, reschedule, cancel")
    workflow, _, target = WRITE_TOOLS[change]
    patient_id = call.patient(body)
    instance = booking.instance_id(workflow, call.grant.call_id, fields.text(body, target))
    status = await client.get_status(instance)
    output = getattr(status, "output", None)
    if (
        getattr(status, "runtime_status", None) != df.OrchestrationRuntimeStatus.Completed
        or not isinstance(output, dict)
        or output.get("status") not in _CHANGED
    ):
        raise SchedulingError("I haven't changed an appointment on this call.")
    try:
        appointment = appointment_from_dict(output["appointment"])
    except (KeyError, TypeError, ValueError):
        raise ProviderError(
            f"{workflow} returned a malformed appointment", retryable=False
        ) from None
    if appointment.patient_id != patient_id:
        raise _Forbidden("the appointment is not the patient's")
    sent = await call.records.send_confirmation(
        workflow=workflow, appointment=appointment, sms=call.rt.sms
    )
    return {"status": "sent" if sent else "sent_already"}
