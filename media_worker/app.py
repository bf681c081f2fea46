"""The media worker's ASGI app: ``/healthz`` and one WebSocket per call.

ACS connects to ``/calls/{call_id}`` with bidirectional media streaming (see
``reddytalk.telephony.acs_media`` for the message shapes and their source). The
clinic comes from the query string: ``clinic`` (its id, as the Functions app will
put it in the stream URL) or ``to`` (the dialled number, as the local caller sends
it). An unknown clinic is refused before the WebSocket is accepted. ``transcript=1``
asks for the live transcript (``TranscriptionData`` lines beside the audio): the Functions
app never puts it in the URL it gives ACS (ACS has no such message); the local phone
line adds it for a caller that asked, the browser softphone.

ACS signs every media WebSocket connect request with a JWT (``Authorization:
Bearer``; learn.microsoft.com, "How to secure webhook endpoints and websocket
connections"). With ``REDDYTALK_ACS_RESOURCE_ID`` set, the worker verifies it
(signature, issuer, audience) and refuses the upgrade otherwise. Without it the
worker only listens on loopback (the embedded profile's local caller).

A replica asked to stop drains first (:mod:`media_worker.drain`): ``/healthz``
says 503 and new streams are refused while the calls in progress finish.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from media_worker.direct_ws import DIRECT_STREAM, DirectWebSocketProtocol
from media_worker.drain import CallDrain
from reddytalk.calls.service import Receptionist
from reddytalk.composition import build_receptionist, build_token_verifier
from reddytalk.errors import Unauthorized
from reddytalk.providers.seed import DEMO_CLINIC_ID
from reddytalk.scheduling.model import Clinic
from reddytalk.settings import Settings
from reddytalk.telephony.acs_auth import AcsTokenVerifier

__all__ = ["create_app"]

log = logging.getLogger(__name__)
_CALL_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_POLICY_VIOLATION = 1008
_TRY_AGAIN_LATER = 1013
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class _Inbound:
    """The stream's messages, straight from the server's ASGI ``receive``; or pushed as
    they arrive, when the server offers the direct path (:mod:`media_worker.direct_ws`)."""

    def __init__(self, receive: Receive, direct: DirectWebSocketProtocol | None) -> None:
        self._receive = receive
        self._direct = direct

    def attach(self, on_message: Callable[[str], None]) -> bool:
        """Push every message to ``on_message`` from now on, if the server can."""
        if self._direct is None:
            return False
        self._direct.attach(on_message)
        return True

    def __aiter__(self) -> _Inbound:
        return self

    async def __anext__(self) -> str:
        message = await self._receive()
        if message["type"] != "websocket.receive":  # websocket.disconnect
            raise StopAsyncIteration
        text = message.get("text")
        return text if text is not None else (message.get("bytes") or b"").decode("latin-1")


def _sender(send: Send, direct: DirectWebSocketProtocol | None) -> Callable[[str], Awaitable[None]]:
    async def send_text(text: str) -> None:
        if direct is None or not direct.send_text_now(text):
            await send({"type": "websocket.send", "text": text})

    return send_text


class _CallStream:
    """The ASGI app of ``/calls/{call_id}`` (a class: Starlette hands a function endpoint
    a ``WebSocket`` instead of the raw ``receive``/``send``)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _call(scope, receive, send)


async def _call(scope: Scope, receive: Receive, send: Send) -> None:
    """One call's stream, as a raw ASGI app.

    Starlette's ``WebSocket`` only takes the handshake (headers, query, accept or
    refuse); the 50 messages a second each way then go straight between the server's
    ``receive``/``send`` and the call, without its per-message state checks and
    wrappers. Measured with ``scripts/bench_load`` (300 calls on one core): see the
    commit that made it.
    """
    websocket = WebSocket(scope, receive=receive, send=send)
    drain: CallDrain = websocket.app.state.drain
    if drain.is_draining:
        log.warning("refused a media stream: this replica is draining")
        await websocket.close(code=_TRY_AGAIN_LATER)
        return
    with drain.call():
        clinic = await _accept(websocket)
        if clinic is not None:
            await _take_call(websocket, clinic, receive, send)


async def _accept(websocket: WebSocket) -> Clinic | None:
    """Verify the stream (ACS's token, the call id, the clinic) and accept it: its
    clinic; or refuse it: None."""
    receptionist: Receptionist = websocket.app.state.receptionist
    verifier: AcsTokenVerifier | None = websocket.app.state.verifier
    if verifier is not None:
        try:
            await verifier.verify_async(websocket.headers.get("authorization"))
        except Unauthorized as error:
            log.warning("refused a media stream: %s", error)
            await websocket.close(code=_POLICY_VIOLATION)
            return None
    call_id = websocket.path_params["call_id"]
    clinic = await receptionist.find_clinic(
        clinic_id=websocket.query_params.get("clinic"),
        dialled_number=websocket.query_params.get("to"),
    )
    if not _CALL_ID.match(call_id) or clinic is None:
        log.warning("refused a media stream: bad call id or unknown clinic")
        await websocket.close(code=_POLICY_VIOLATION)
        return None
    await websocket.accept()
    return clinic


async def _take_call(websocket: WebSocket, clinic: Clinic, receive: Receive, send: Send) -> None:
    receptionist: Receptionist = websocket.app.state.receptionist
    stream = websocket.scope.get("extensions", {}).get(DIRECT_STREAM, {}).get("protocol")
    direct = stream if isinstance(stream, DirectWebSocketProtocol) else None
    await receptionist.take_call(
        call_id=websocket.path_params["call_id"],
        clinic=clinic,
        inbound=_Inbound(receive, direct),
        send=_sender(send, direct),
        call_token=websocket.query_params.get("token"),
        live_transcript=websocket.query_params.get("transcript") == "1",
    )
    # The caller has usually hung up already: closing again raises (uvicorn's
    # ClientDisconnected, an OSError, or RuntimeError after a close).
    with contextlib.suppress(RuntimeError, OSError):
        await send({"type": "websocket.close", "code": 1000, "reason": ""})


async def _healthz(request: Request) -> JSONResponse:
    drain: CallDrain = request.app.state.drain
    if drain.is_draining:  # the ingress stops sending new calls here
        return JSONResponse({"status": "draining", "calls": drain.active}, status_code=503)
    return JSONResponse({"status": "ok", "calls": drain.active})


def create_app(
    settings: Settings | None = None,
    *,
    build: Callable[[], Awaitable[Receptionist]] | None = None,
    **build_options: Any,
) -> Starlette:
    """The ASGI app; the receptionist is built at start-up from ``settings`` (or by
    ``build``: the benchmarks' receptionist on latency-injecting engines).

    Raises:
        ValueError: No ACS resource id to verify connections against, on a host
            that is not loopback.
    """
    settings = settings or Settings.from_env()
    if not settings.acs_resource_id and settings.host not in _LOOPBACK_HOSTS:
        raise ValueError(
            "the media worker serves unauthenticated streams only on loopback: "
            "set REDDYTALK_ACS_RESOURCE_ID to verify ACS's tokens"
        )
    verifier = build_token_verifier(settings) if settings.acs_resource_id else None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if build is not None:
            receptionist = await build()
        else:
            receptionist = await build_receptionist(settings, **build_options)
        demo = await receptionist.find_clinic(clinic_id=DEMO_CLINIC_ID)
        if demo is not None:
            await receptionist.prepare(demo)
        app.state.receptionist = receptionist
        app.state.verifier = verifier
        try:
            yield
        finally:
            await receptionist.close()

    app = Starlette(
        routes=[Route("/healthz", _healthz), WebSocketRoute("/calls/{call_id}", _CallStream())],
        lifespan=lifespan,
    )
    app.state.drain = CallDrain()
    return app
