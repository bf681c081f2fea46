"""The tools API the media worker calls during a call: the writes, and ending the call.

``POST /api/calls/{call_id}/tools/{tool}`` with the per-call token ``incoming_call``
issued (``Authorization: Bearer``). The call and the clinic come from the token,
never from the body. ``book``, ``reschedule`` and ``cancel`` start their workflow
as an orchestration whose instance id is derived from the call and the request,
and wait a bounded time for its result: 200 with the result, or 202 with the
instance id while it is still running. A retried request finds the same instance
and returns its first result; it never books twice. ``end_call`` and
``transfer_to_staff`` ask the call's session orchestration to hang up or to
transfer (closing the media stream does not end a telephone call).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import azure.durable_functions as df
import azure.functions as func

from functions.runtime import runtime
from reddytalk.errors import Unauthorized
from reddytalk.workflows import booking
from reddytalk.workflows.call_session import HANG_UP_REQUESTED, TRANSFER_REQUESTED

__all__ = ["CALL_TOOLS", "WRITE_TOOLS", "bp"]

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
    "cancel": (booking.CANCEL_APPOINTMENT, ("appointment_id",), "appointment_id"),
}
CALL_TOOLS: dict[str, tuple[str, tuple[str, ...]]] = {
    # tool: (event raised on the call's session, required fields)
    "end_call": (HANG_UP_REQUESTED, ()),
    "transfer_to_staff": (TRANSFER_REQUESTED, ("reason",)),
}
WAIT_MS = 8_000
"""How long a write waits for its orchestration before answering 202 (a caller is waiting)."""


def _json(status: int, body: dict[str, Any]) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def _fields(req: func.HttpRequest, names: tuple[str, ...]) -> dict[str, str] | str:
    """The request's named string fields, or what is wrong with the body."""
    try:
        body = req.get_json()
    except ValueError:
        return "the body is not JSON"
    if not isinstance(body, dict):
        return "the body is not a JSON object"
    missing = [n for n in names if not isinstance(body.get(n), str) or not body[n]]
    if missing:
        return f"missing or not a string: {', '.join(missing)}"
    return {n: body[n] for n in names}


@bp.function_name("tools")
@bp.route(route="calls/{call_id}/tools/{tool}", methods=["POST"],
          auth_level=func.AuthLevel.ANONYMOUS)  # fmt: skip
@bp.durable_client_input(client_name="client")
async def tools(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Run one tool for the call the token names."""
    rt = runtime()
    if rt.tokens is None:
        return _json(503, {"error": "the tools API has no call token secret configured"})
    try:
        grant = rt.tokens.verify(req.headers.get("Authorization"))
    except Unauthorized as error:
        log.warning("tools refused a request: %s", error)
        return _json(401, {"error": "unauthorized"})
    if grant.call_id != req.route_params.get("call_id"):
        return _json(403, {"error": "the token is for another call"})
    tool = req.route_params.get("tool", "")
    if tool in CALL_TOOLS:
        return await _ask_session(req, client, grant.call_id, *CALL_TOOLS[tool])
    if tool not in WRITE_TOOLS:
        return _json(404, {"error": f"no tool named {tool[:32]!r}"})
    workflow, names, target = WRITE_TOOLS[tool]
    fields = _fields(req, names)
    if isinstance(fields, str):
        return _json(400, {"error": fields})
    instance = booking.instance_id(workflow, grant.call_id, fields[target])
    status = await client.get_status(instance)
    if getattr(status, "runtime_status", None) is None:  # a new request, not a retry
        data = {"call_id": grant.call_id, "clinic_id": grant.clinic_id, **fields}
        await client.start_new(workflow, instance_id=instance, client_input=data)
    response: func.HttpResponse = await client.wait_for_completion_or_create_check_status_response(
        req, instance, timeout_in_milliseconds=WAIT_MS, retry_interval_in_milliseconds=50
    )
    return response


async def _ask_session(
    req: func.HttpRequest,
    client: df.DurableOrchestrationClient,
    call_id: str,
    event: str,
    names: tuple[str, ...],
) -> func.HttpResponse:
    """Raise ``event`` on the call's session; 409 if the call has no running session."""
    fields = _fields(req, names) if names else {}
    if isinstance(fields, str):
        return _json(400, {"error": fields})
    try:
        await client.raise_event(call_id, event, fields)
    except Exception:  # the client raises a bare Exception for 404 and 410
        return _json(409, {"error": "the call has no running session"})
    return _json(200, {"status": "requested"})
