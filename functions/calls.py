"""Call control triggers: ``incoming_call`` (Event Grid) and ``call_events`` (callbacks).

Thin by design: each parses and checks its input, calls one domain function, and
maps the result to what its trigger expects. Orchestration instance ids are the
call's correlation id, so every event of a call reaches the same instance.
"""

from __future__ import annotations

import dataclasses
import logging

import aiohttp
import azure.durable_functions as df
import azure.functions as func

from functions.runtime import runtime
from reddytalk.calls.answering import answer_incoming_call
from reddytalk.errors import MalformedMessage, Unauthorized
from reddytalk.telephony.acs_events import parse_call_events, parse_incoming_call

__all__ = ["CALL_SESSION", "INCOMING_CALL_EVENT", "bp"]

log = logging.getLogger(__name__)
bp = df.Blueprint()

INCOMING_CALL_EVENT = "Microsoft.Communication.IncomingCall"
CALL_SESSION = "call_session"


@bp.function_name("incoming_call")
@bp.event_grid_trigger(arg_name="event")
@bp.durable_client_input(client_name="client")
async def incoming_call(event: func.EventGridEvent, client: df.DurableOrchestrationClient) -> None:
    """Answer a call to a clinic's number (or reject an unknown one), then follow it.

    A malformed event is logged and dropped (a redelivery would be as malformed);
    a retryable provider failure raises, so Event Grid delivers the event again.
    """
    if event.event_type != INCOMING_CALL_EVENT:
        log.warning("incoming_call ignored an event of another type")
        return
    try:
        call = parse_incoming_call(event.get_json())
    except MalformedMessage as error:
        log.warning("incoming_call refused a malformed event: %s", error)
        return
    rt = await runtime()

    async def follow_call(call_id: str, clinic_id: str) -> None:
        session_input = {"call_id": call_id, "clinic_id": clinic_id}
        await client.start_new(CALL_SESSION, instance_id=call_id, client_input=session_input)

    result = await answer_incoming_call(
        call,
        store=rt.store,
        control=rt.control,
        links=rt.links,
        follow_call=follow_call,
        tokens=rt.tokens,
    )
    log.info("incoming call %s: %s", call.correlation_id, type(result).__name__)


@bp.function_name("call_events")
@bp.route(route="call_events", methods=["POST"], auth_level=func.AuthLevel.ANONYMOUS)
@bp.durable_client_input(client_name="client")
async def call_events(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Raise each authenticated Call Automation callback event on its call's orchestration.

    ACS signs every callback (a JWT in ``Authorization``); anything else gets 401
    before the body is read. Anonymous at the Functions level on purpose: the
    JWT is the authentication, and ACS cannot send a function key.
    """
    rt = await runtime()
    try:
        await rt.verifier.verify_async(req.headers.get("Authorization"))
    except Unauthorized as error:
        log.warning("call_events refused a request: %s", error)
        return func.HttpResponse("unauthorized", status_code=401)
    try:
        events = parse_call_events(req.get_body())
    except MalformedMessage as error:
        return func.HttpResponse(str(error), status_code=400)
    for event in events:
        key = f"call-event:{event.event_id}"
        if not await rt.store.claim(key):
            continue  # a redelivery: raised already
        try:
            await client.raise_event(event.correlation_id, event.name, dataclasses.asdict(event))
        except aiohttp.ClientError:
            await rt.store.release(key)  # the Durable host is unreachable: let ACS retry
            log.error("call_events could not reach the Durable host")
            return func.HttpResponse("durable host unavailable", status_code=503)
        except Exception:  # the client raises a bare Exception for 404 and 410
            # An event for a call without a running orchestration (finished, or
            # never started) has nobody to go to; a retry would not change that.
            log.warning("call event %s arrived for no running call", event.name)
    return func.HttpResponse(status_code=200)
