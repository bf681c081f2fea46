"""Answering a ringing call: pick the clinic by the dialled number, then answer or reject.

The Event Grid trigger ``incoming_call`` parses the event and calls
:func:`answer_incoming_call`; everything it decides is here, so the embedded
profile's local ACS and the cloud take the same path. Event Grid delivers at
least once, so the decision is claimed once per call in the store: a second
delivery of the same event answers nothing.

The caller's number (PHI) is kept for the call, sealed in the store, once the call is
answered: a text confirmation the caller asks for goes to it when the EHR has no phone
for the patient. It never goes into a workflow's input or a log.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from reddytalk.calls.call_tokens import CallTokens
from reddytalk.calls.confirmations import CALLER
from reddytalk.errors import ProviderError
from reddytalk.ports import AuditEvent, CallControl, CallStore
from reddytalk.telephony.acs_events import IncomingCall

__all__ = ["AlreadyHandled", "Answered", "CallLinks", "Rejected", "answer_incoming_call"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallLinks:
    """Where ACS sends a call's events and its audio.

    Attributes:
        callback_url: The ``call_events`` function's public HTTPS URL.
        media_base_url: The media worker's public ``wss://`` origin.
    """

    callback_url: str
    media_base_url: str

    def media_url(self, *, call_id: str, clinic_id: str, call_token: str | None = None) -> str:
        """The media worker's WebSocket URL for one call (with its tools token, if any)."""
        params = {"clinic": clinic_id} | ({"token": call_token} if call_token else {})
        query = urlencode(params)
        return f"{self.media_base_url.rstrip('/')}/calls/{quote(call_id, safe='')}?{query}"


@dataclass(frozen=True, slots=True)
class Answered:
    """The call was answered with media streaming to the media worker."""

    call_id: str
    clinic_id: str
    call_connection_id: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The call was declined; ``reason`` holds no PHI."""

    call_id: str
    reason: str


@dataclass(frozen=True, slots=True)
class AlreadyHandled:
    """A redelivery of an event already acted on: nothing was done."""

    call_id: str


def _claim_key(call: IncomingCall) -> str:
    return f"incoming-call:{call.correlation_id}"


async def answer_incoming_call(
    call: IncomingCall,
    *,
    store: CallStore,
    control: CallControl,
    links: CallLinks,
    follow_call: Callable[[str, str], Awaitable[None]],
    tokens: CallTokens | None = None,
) -> Answered | Rejected | AlreadyHandled:
    """Answer ``call`` for the clinic that owns the dialled number, or reject it.

    ``follow_call(call_id, clinic_id)`` runs before the answer (it starts the call's
    session orchestration): ACS may send ``CallConnected`` before ``answer``
    returns, and it must find someone waiting for it. With ``tokens``, the media
    URL carries the call's tools token (only ACS sees that URL).

    Raises:
        ProviderError: ACS or the store failed. When it is retryable the claim is
            released, so Event Grid's redelivery tries again.
    """
    key = _claim_key(call)
    if not await store.claim(key):
        return AlreadyHandled(call.correlation_id)
    try:
        clinic = await store.find_clinic_by_number(call.to_number)
        if clinic is None:
            await control.reject(incoming_call_context=call.incoming_call_context)
            await _audit(store, call.correlation_id, "-", "call.rejected", "unknown number")
            return Rejected(call.correlation_id, "no clinic has this number")
        await follow_call(call.correlation_id, clinic.clinic_id)
        token = None
        if tokens is not None:
            now = dt.datetime.now(dt.UTC)
            token = tokens.issue(call_id=call.correlation_id, clinic_id=clinic.clinic_id, now=now)
        media_url = links.media_url(
            call_id=call.correlation_id, clinic_id=clinic.clinic_id, call_token=token
        )
        connection_id = await control.answer(
            incoming_call_context=call.incoming_call_context,
            callback_url=links.callback_url,
            media_url=media_url,
            sample_rate_hz=clinic.stream_sample_rate_hz,
            operation_context=f"answer:{call.correlation_id}",
        )
        await _audit(store, call.correlation_id, clinic.clinic_id, "call.answered", "")
    except ProviderError as error:
        if error.retryable:
            await store.release(key)
        raise
    await _keep_caller_number(store, call, clinic.clinic_id)
    return Answered(call.correlation_id, clinic.clinic_id, connection_id)


async def _keep_caller_number(store: CallStore, call: IncomingCall, clinic_id: str) -> None:
    """Keep the caller's number for the call, after the answer: a text confirmation is
    no reason to keep a caller ringing, nor to fail a call that is answered."""
    if call.from_number is None:  # not a phone (a Teams user, a web caller)
        return
    try:
        await store.save_call_number(
            call.correlation_id, clinic_id, party=CALLER, number=call.from_number
        )
        await _audit(store, call.correlation_id, clinic_id, "create", "",
                     resource=f"CallNumber/{CALLER}")  # fmt: skip
    except (ProviderError, ValueError) as error:  # neither names the number
        log.warning("the caller's number was not kept: %s", error)


async def _audit(
    store: CallStore, call_id: str, clinic_id: str, action: str, why: str, *,
    resource: str = "call",
) -> None:  # fmt: skip
    await store.record_audit(
        AuditEvent(
            call_id=call_id,
            clinic_id=clinic_id,
            action=action,
            resource=resource,
            at=dt.datetime.now(dt.UTC),
            details={"reason": why} if why else {},
        )
    )
