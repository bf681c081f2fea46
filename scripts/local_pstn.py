"""The local ACS's telephone side: a caller rings an ACS number and the call runs as in Azure.

:class:`LocalPstn` is the part of ``LocalAcs`` that a caller dials. A call goes:

1. The caller opens ``ws://127.0.0.1:<pstn port>/calls/{call_id}?to=<E.164>``, the shape
   ``scripts/local_caller.place_call`` speaks. The upgrade is held while the number rings.
2. ``IncomingCall`` (EventGridEvent schema, a one-event JSON array, header
   ``aeg-event-type: Notification``) is POSTed to ``LocalAcs.event_grid_url``: to the dialled
   number, from :data:`LOCAL_CALLER_NUMBER`, correlation id = ``call_id``. Delivered once, not
   retried (Event Grid would retry; the subscription ReddyTalk documents allows 2 attempts).
3. Within ``ring_timeout_s``, ``:reject`` refuses the upgrade with HTTP 403; no answer, with
   504 (8 s by default: under the 10 s open timeout of ``websockets.connect``). ``:answer``
   posts ``CallConnected``, accepts the caller's upgrade, and, when the answer asked for
   media streaming, connects to its ``transportUrl`` as ACS does (``Authorization: Bearer``
   with a 24 h token, ``x-ms-call-correlation-id``, ``x-ms-call-connection-id``; azure-docs
   ``how-tos/call-automation/secure-webhook-endpoint.md``), then posts
   ``MediaStreamingStarted``, or ``MediaStreamingFailed`` if the connect failed (the call
   stays up without audio, as in ACS).
4. Every message is relayed both ways unchanged: the caller already sends ACS's inbound
   shape and the media worker ACS's outbound one.

   Two things real ACS does not have, for the browser softphone (``functions/console/``):
   a caller that dials with ``&transcript=1`` gets the live transcript (the media URL the
   answer gave is connected with ``transcript=1`` added, and the media worker then sends
   ``TranscriptionData`` lines beside the audio); and a browser (a request with an
   ``Origin``) may only call from an origin in ``LocalAcs.browser_origins`` (the local
   console's), so that no other web page the developer opens can place calls.
5. The caller closing, the media worker closing, ``:terminate`` (or ``DELETE``) on the
   connection, or ``:transferToParticipant`` (``CallTransferAccepted`` first: the call left
   ReddyTalk) ends the call: both sockets close with 1000, then ``CallDisconnected``.
   ``:play`` posts ``PlayCompleted`` with the request's ``operationContext``.

Callbacks are CloudEvents from ``LocalAcs.callback_event`` (unique ids), each POSTed once as
a one-event JSON array with ``Authorization: Bearer <LocalAcs.sign()>``, in order; a failed
post is logged (event name, call id, status: nothing a caller said or dialled) and not
retried. It only ever connects to loopback: an Event Grid, callback or media URL on another
host is not contacted (a warning says so).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
from aiohttp import web

from reddytalk.telephony.acs_events import is_e164

if TYPE_CHECKING:  # local_acs imports this module
    from local_acs import AnsweredCall, LocalAcs

__all__ = ["LOCAL_CALLER_NUMBER", "LocalPstn", "PhoneCall"]

log = logging.getLogger(__name__)

LOCAL_CALLER_NUMBER = "+15555550123"
"""The number every local call comes from (the local caller's participant id)."""

_ANSWER_PATH = "/calling/callConnections:answer"
_REJECT_PATH = "/calling/callConnections:reject"
_CONNECTION = re.compile(r"/calling/callConnections/(?P<id>[^/:]+)(?::(?P<action>\w+))?")
_CALL_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
_MEDIA_TOKEN_LIFETIME_S = 24 * 3600  # ACS's WebSocket tokens live 24 h
_MAX_MESSAGE_BYTES = 1 << 20
_CLOSE_TIMEOUT_S = 2.0
_MEDIA_CONNECT_TIMEOUT_S = 5.0
_POST_TIMEOUT_S = 10.0
_SETTLE_TIMEOUT_S = 5.0
_SUCCESS = {"code": 200, "subCode": 0, "message": "Action completed successfully."}


@dataclass(slots=True)
class PhoneCall:
    """One call placed through the local PSTN, as it went.

    Attributes:
        call_id: The caller's call id: also the call's correlation id.
        state: ``ringing``, ``rejected``, ``unanswered``, ``connected`` or ``ended``.
        ended_by: ``caller``, ``media`` (the media worker closed), ``hang-up`` (terminate),
            ``transfer`` or ``shutdown``; None until it ends.
        call_connection_id: The answer's, once answered.
        callbacks: The callback events posted (tried once each), in order, by name.
    """

    call_id: str
    state: str = "ringing"
    ended_by: str | None = None
    call_connection_id: str | None = None
    callbacks: list[str] = field(default_factory=list)


def _is_loopback(url: str) -> bool:
    return urlsplit(url).hostname in _LOOPBACK_HOSTS


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query, keep_blank_values=True), *params.items()])
    return urlunsplit(parts._replace(query=query))


def _phone(number: str) -> dict[str, Any]:
    return {"kind": "phoneNumber", "rawId": f"4:{number}", "phoneNumber": {"value": number}}


class _Line:
    """A call in progress: how it was decided, its callback queue, how it ends."""

    def __init__(self, call: PhoneCall) -> None:
        self.call = call
        loop = asyncio.get_running_loop()
        self.decision: asyncio.Future[AnsweredCall | str] = loop.create_future()
        self.answered: AnsweredCall | None = None
        self.ended = asyncio.Event()
        self.outbox: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self.sender: asyncio.Task[None] | None = None
        self.live_transcript = False  # the caller asked for TranscriptionData lines

    def decide(self, outcome: AnsweredCall | str) -> None:
        if not self.decision.done():
            self.decision.set_result(outcome)

    def end(self, by: str) -> None:
        """Hang up (first reason wins); the call's handler closes the sockets."""
        if self.call.ended_by is None:
            self.call.ended_by = by
        self.ended.set()


class LocalPstn:
    """The caller-facing listener and the calls in progress of one ``LocalAcs``.

    Args:
        acs: The local ACS whose number is dialled (its events, tokens and REST answers).
        ring_timeout_s: How long a call rings before the caller is refused (504).
        caller_number: The E.164 number every call comes from.

    Attributes:
        calls: Every call placed, by call id.
    """

    def __init__(
        self, acs: LocalAcs, *, ring_timeout_s: float, caller_number: str = LOCAL_CALLER_NUMBER
    ) -> None:
        self.ring_timeout_s = ring_timeout_s
        self.caller_number = caller_number
        self.calls: dict[str, PhoneCall] = {}
        self._acs = acs
        self._ringing: dict[str, _Line] = {}  # incoming call context → line
        self._connected: dict[str, _Line] = {}  # call connection id → line
        self._lines: dict[str, _Line] = {}  # call id → line, while its handler runs
        self._handlers: set[asyncio.Task[Any]] = set()
        self._http: aiohttp.ClientSession | None = None

    def web_app(self) -> web.Application:
        """The caller-facing WebSocket endpoint (``GET /calls/{call_id}?to=<E.164>``)."""
        app = web.Application()
        app.router.add_get("/calls/{call_id}", self._take_call)
        return app

    async def start(self) -> None:
        self._http = aiohttp.ClientSession()

    async def close(self) -> None:
        """Hang up every call, wait for their handlers, close the HTTP client."""
        for line in list(self._lines.values()):
            line.decide("shutdown")
            line.end("shutdown")
        if self._handlers:
            await asyncio.wait(self._handlers, timeout=_SETTLE_TIMEOUT_S * 2)
        if self._http is not None:
            await self._http.close()
            self._http = None

    # -- what the REST side tells a call ---------------------------------------------

    def on_request(self, method: str, path: str, body: Any, answered: AnsweredCall | None) -> None:
        """A documented (unscripted) REST request arrived: act on the call it names."""
        body = body if isinstance(body, dict) else {}
        if path == _ANSWER_PATH and answered is not None:
            line = self._ringing.pop(answered.incoming_call_context, None)
            if line is not None and not line.decision.done():
                self._connect(line, answered)
            return
        if path == _REJECT_PATH:
            line = self._ringing.pop(str(body.get("incomingCallContext", "")), None)
            if line is not None:
                line.decide("rejected")
            return
        match = _CONNECTION.fullmatch(path)
        line = self._connected.get(match["id"]) if match else None
        if match is None or line is None or line.ended.is_set():
            return
        action = match["action"]
        context = body.get("operationContext")
        if action == "terminate" or (action is None and method == "DELETE"):
            line.end("hang-up")
        elif action == "play":
            self._post(line, "PlayCompleted", operationContext=context, resultInformation=_SUCCESS)
        elif action == "transferToParticipant":
            self._post(
                line,
                "CallTransferAccepted",
                operationContext=context,
                resultInformation=_SUCCESS,
                transferTarget=body.get("targetParticipant"),
                transferee=_phone(self.caller_number),
            )
            line.end("transfer")

    def _connect(self, line: _Line, answered: AnsweredCall) -> None:
        line.answered = answered
        line.call.call_connection_id = answered.call_connection_id
        self._connected[answered.call_connection_id] = line
        line.sender = asyncio.create_task(
            self._send_callbacks(line), name=f"callbacks:{line.call.call_id}"
        )
        # Queued now, before any :play or :terminate on this connection can queue theirs.
        self._post(line, "CallConnected", operationContext=answered.operation_context)
        line.decide(answered)

    # -- one call ----------------------------------------------------------------------

    async def _take_call(self, request: web.Request) -> web.StreamResponse:
        call_id = request.match_info["call_id"]
        to_number = request.query.get("to", "")
        if not _CALL_ID.fullmatch(call_id) or not is_e164(to_number):
            return web.Response(status=400, text="dial /calls/{call id}?to=<E.164 number>")
        if not web.WebSocketResponse().can_prepare(request).ok:
            return web.Response(status=426, text="a call is a WebSocket")
        origin = request.headers.get("Origin")
        if origin is not None and origin not in self._acs.browser_origins:
            log.warning("call %s refused: a web page of another origin dialled", call_id)
            return web.Response(status=403, text="this page may not place calls")
        if call_id in self._lines:
            return web.Response(status=409, text="this call id is in a call")
        url = self._acs.event_grid_url
        if not url or not _is_loopback(url):
            log.warning("call %s: no loopback event_grid_url to deliver IncomingCall to", call_id)
            return web.Response(status=503, text="no Event Grid subscription")
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        line = _Line(PhoneCall(call_id=call_id))
        line.live_transcript = request.query.get("transcript") == "1"
        self.calls[call_id] = line.call
        self._lines[call_id] = line
        try:
            return await self._ring(line, request, url, to_number)
        finally:
            del self._lines[call_id]
            self._handlers.discard(task)
            if line.answered is not None:
                self._connected.pop(line.answered.call_connection_id, None)

    async def _ring(
        self, line: _Line, request: web.Request, url: str, to_number: str
    ) -> web.StreamResponse:
        call_id = line.call.call_id
        event = self._acs.incoming_call_event(
            to_number=to_number, from_number=self.caller_number, correlation_id=call_id
        )
        context = event["data"]["incomingCallContext"]
        self._ringing[context] = line
        delivery = asyncio.create_task(self._deliver(url, event, call_id), name=f"ring:{call_id}")
        try:
            async with asyncio.timeout(self.ring_timeout_s):
                decision = await line.decision
        except TimeoutError:
            decision = "unanswered"
        finally:
            self._ringing.pop(context, None)
            line.decide("unanswered")  # a late answer finds no ringing call
        try:
            if isinstance(decision, str):
                line.call.state = decision
                log.info("call %s %s", call_id, decision)
                status = {"rejected": 403, "unanswered": 504}.get(decision, 503)
                return web.Response(status=status, text=decision)
            line.call.state = "connected"
            return await self._talk(line, request)
        finally:
            await _settle(delivery)

    async def _talk(self, line: _Line, request: web.Request) -> web.StreamResponse:
        caller = web.WebSocketResponse(timeout=_CLOSE_TIMEOUT_S, max_msg_size=_MAX_MESSAGE_BYTES)
        media: aiohttp.ClientWebSocketResponse | None = None
        try:
            try:
                await caller.prepare(request)
            except ConnectionError:  # the caller gave up while it rang
                line.end("caller")
                return caller
            media = await self._open_media(line)

            def media_closed() -> None:
                update = _streaming("mediaStreamingStopped", "subscriptionStopped")
                self._post(line, "MediaStreamingStopped", mediaStreamingUpdate=update)

            await _relay(line, caller, media, on_media_closed=media_closed)
        finally:
            line.end("shutdown")  # no-op unless cancelled: the first reason stays
            await _close(caller, media)
            line.call.state = "ended"
            log.info("call %s ended by %s", line.call.call_id, line.call.ended_by)
            self._post(line, "CallDisconnected")
            line.outbox.put_nowait(None)
            if line.sender is not None:
                await _settle(line.sender)
        return caller

    async def _open_media(self, line: _Line) -> aiohttp.ClientWebSocketResponse | None:
        """Connect to the answer's ``transportUrl`` as ACS does; None without a stream."""
        answered = line.answered
        assert answered is not None and self._http is not None
        options = answered.media_streaming or {}
        url = options.get("transportUrl")
        if not isinstance(url, str) or options.get("startMediaStreaming") is False:
            return None  # no stream asked for now (startMediaStreaming is not modelled)
        if line.live_transcript:
            url = _with_query(url, transcript="1")
        headers = {
            "Authorization": f"Bearer {self._acs.sign(lifetime_s=_MEDIA_TOKEN_LIFETIME_S)}",
            "x-ms-call-correlation-id": line.call.call_id,
            "x-ms-call-connection-id": answered.call_connection_id,
        }
        try:
            if not _is_loopback(url):
                raise ValueError("not loopback")
            async with asyncio.timeout(_MEDIA_CONNECT_TIMEOUT_S):
                media = await self._http.ws_connect(
                    url,
                    headers=headers,
                    max_msg_size=_MAX_MESSAGE_BYTES,
                    timeout=aiohttp.ClientWSTimeout(ws_close=_CLOSE_TIMEOUT_S),
                )
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as error:
            reason = f"HTTP {error.status}" if isinstance(error, aiohttp.WSServerHandshakeError) \
                else type(error).__name__  # fmt: skip
            log.warning("call %s: media stream failed: %s", line.call.call_id, reason)
            update = _streaming("mediaStreamingFailed", "streamConnectionUnsuccessful")
            result = {"code": 500, "subCode": 0, "message": "Media streaming failed."}
            self._post(line, "MediaStreamingFailed", mediaStreamingUpdate=update,
                       resultInformation=result)  # fmt: skip
            return None
        self._post(
            line,
            "MediaStreamingStarted",
            mediaStreamingUpdate=_streaming("mediaStreamingStarted", "subscriptionStarted"),
            resultInformation=_SUCCESS,
        )
        return media

    # -- what goes out over HTTP -------------------------------------------------------

    async def _post_json(
        self, url: str, body: Any, headers: dict[str, str], timeout_s: float
    ) -> str | None:
        """POST ``body`` once; None if it was taken (2xx), else what went wrong (no PHI)."""
        assert self._http is not None
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        try:
            async with self._http.post(url, json=body, headers=headers, timeout=timeout) as r:
                await r.read()
                return f"HTTP {r.status}" if r.status >= 300 else None
        except (aiohttp.ClientError, TimeoutError) as error:
            return type(error).__name__

    async def _deliver(self, url: str, event: dict[str, Any], call_id: str) -> None:
        # Event Grid waits for the function (which answers before it returns): a long bound.
        headers = {"aeg-event-type": "Notification"}
        if failure := await self._post_json(url, [event], headers, _POST_TIMEOUT_S * 3):
            log.warning("call %s: IncomingCall delivery failed: %s", call_id, failure)

    def _post(self, line: _Line, name: str, **data: Any) -> None:
        answered = line.answered
        assert answered is not None
        data = {key: value for key, value in data.items() if value is not None}
        line.outbox.put_nowait(
            self._acs.callback_event(
                name,
                correlation_id=line.call.call_id,
                call_connection_id=answered.call_connection_id,
                **data,
            )
        )

    async def _send_callbacks(self, line: _Line) -> None:
        """POST the call's callback events one at a time, in order, each once."""
        assert line.answered is not None
        url = line.answered.callback_uri
        while (event := await line.outbox.get()) is not None:
            name = event["type"].removeprefix("Microsoft.Communication.")
            line.call.callbacks.append(name)
            if not _is_loopback(url):
                log.warning("call %s: callback %s not sent: not loopback", line.call.call_id, name)
                continue
            headers = {"Authorization": f"Bearer {self._acs.sign()}"}  # 5 min, new per post
            if failure := await self._post_json(url, [event], headers, _POST_TIMEOUT_S):
                log.warning("call %s: callback %s failed: %s", line.call.call_id, name, failure)


def _streaming(status: str, details: str) -> dict[str, str]:
    """``mediaStreamingUpdate`` of the MediaStreaming* events (SDK 1.6's MediaStreamingUpdate)."""
    return {"contentType": "Audio", "mediaStreamingStatus": status,
            "mediaStreamingStatusDetails": details}  # fmt: skip


async def _relay(
    line: _Line,
    caller: web.WebSocketResponse,
    media: aiohttp.ClientWebSocketResponse | None,
    *,
    on_media_closed: Callable[[], None],
) -> None:
    """Relay messages both ways until the caller leaves or the call is hung up, then close both.

    As with ACS, the media worker closing its stream does not end the call: the
    caller hears silence until the app hangs up or transfers through Call Automation.
    """
    from_caller = asyncio.create_task(_pump(caller, media, "caller", "media"), name="caller→media")
    pumps = {from_caller}
    if media is not None:
        pumps.add(asyncio.create_task(_pump(media, caller, "media", "caller"), name="media→caller"))
    hang_up = asyncio.create_task(line.ended.wait(), name="hang-up")
    try:
        done, _ = await asyncio.wait({*pumps, hang_up}, return_when=asyncio.FIRST_COMPLETED)
        gone = {pump.result() for pump in pumps if pump in done}
        if line.call.ended_by is None and gone == {"media"}:
            on_media_closed()
            waits = {from_caller, hang_up}
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            gone = {from_caller.result()} if from_caller in done else set()
        if line.call.ended_by is None:
            line.end("caller" if "caller" in gone else next(iter(gone), "media"))
    finally:
        hang_up.cancel()
        # Closing ends the pumps: a closing aiohttp socket ends its ``async for``, whereas
        # cancelling a receive() mid-read is not something aiohttp supports.
        await _close(caller, media)
        await asyncio.gather(hang_up, *pumps, return_exceptions=True)


async def _close(
    caller: web.WebSocketResponse, media: aiohttp.ClientWebSocketResponse | None
) -> None:
    """Close both sockets with 1000, the caller's first (idempotent)."""
    with contextlib.suppress(RuntimeError, ConnectionError):  # never prepared / gone
        await caller.close(code=aiohttp.WSCloseCode.OK)
    if media is not None:
        with contextlib.suppress(ConnectionError):
            await media.close(code=aiohttp.WSCloseCode.OK)


async def _pump(
    source: web.WebSocketResponse | aiohttp.ClientWebSocketResponse,
    target: web.WebSocketResponse | aiohttp.ClientWebSocketResponse | None,
    source_name: str,
    target_name: str,
) -> str:
    """Forward text and binary messages unchanged; the name of the side that went away."""
    try:
        async for message in source:
            if target is None:
                continue  # no media stream: what the caller sends goes nowhere
            if message.type == aiohttp.WSMsgType.TEXT:
                await target.send_str(message.data)
            elif message.type == aiohttp.WSMsgType.BINARY:
                await target.send_bytes(message.data)
    except ConnectionError:
        return target_name
    return source_name


async def _settle(task: asyncio.Task[Any]) -> None:
    """Let ``task`` finish (bounded), then cancel it; its errors were logged by it."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(asyncio.shield(task), _SETTLE_TIMEOUT_S)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
