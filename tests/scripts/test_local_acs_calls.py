"""Calls through the local ACS's phone line, over real sockets, as they would run in Azure.

A caller dials ``LocalAcs.pstn_url``; IncomingCall goes to a stand-in Functions app that
answers (or rejects) through the real ``AcsCallControl``; the local ACS opens the media
stream to a stand-in media worker, relays the audio both ways, and posts the call's
callbacks, which the stand-in checks with the real ``AcsTokenVerifier``. One test (marked
e2e: about 25 s of real-time conversation) runs the real stack instead: function_app.app on
the local Functions host and the real media worker, with the scripted caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import websockets
from aiohttp import web
from local_acs import LOCAL_CALLER_NUMBER, LocalAcs, TlsFiles, make_tls

from reddytalk.errors import Unauthorized
from reddytalk.frames import AudioFormat
from reddytalk.telephony import acs_media
from reddytalk.telephony.acs_auth import AcsTokenVerifier
from reddytalk.telephony.acs_events import CallEvent, parse_call_events, parse_incoming_call
from reddytalk.telephony.call_automation import AcsCallControl

CLINIC_NUMBER = "+15550100200"
STAFF_NUMBER = "+15550100999"
SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
EVENT_GRID = "/runtime/webhooks/EventGrid?functionName=incoming_call"
FORMAT = AudioFormat(sample_rate_hz=16_000, frame_bytes=640)
GREETING = acs_media.encode_audio(bytes(range(256)) * 2 + bytes(128))  # ACS's outbound shape
_DAY = dt.timedelta(hours=24)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


async def until(changed: asyncio.Condition, predicate: Callable[[], object]) -> None:
    """Wait (at most 5 s) until ``predicate()`` holds, re-checked whenever a stand-in records."""
    async with asyncio.timeout(5), changed:
        await changed.wait_for(predicate)


async def _notify(changed: asyncio.Condition) -> None:
    async with changed:
        changed.notify_all()


@dataclass
class Worker:
    """A media worker stand-in: checks ACS's token, records, answers the first audio."""

    verifier: AcsTokenVerifier
    changed: asyncio.Condition
    hangs_up: bool = False
    paths: list[str] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    token_lifetimes: list[dt.timedelta] = field(default_factory=list)
    received: list[str] = field(default_factory=list)
    close_codes: list[int | None] = field(default_factory=list)

    async def handle(self, ws: websockets.ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.headers.append({k.lower(): v for k, v in ws.request.headers.raw_items()})
        try:
            claims = await self.verifier.verify_async(ws.request.headers.get("Authorization"))
        except Unauthorized:
            await ws.close(1008)
            return
        assert claims.issued_at is not None
        self.token_lifetimes.append(claims.expires_at - claims.issued_at)
        with contextlib.suppress(websockets.ConnectionClosed):
            async for message in ws:
                self.received.append(str(message))
                if len(self.received) == 2:  # AudioMetadata, then the first AudioData
                    await ws.send(GREETING)
                    if self.hangs_up:
                        await ws.close()
        self.close_codes.append(ws.close_code)
        await _notify(self.changed)


@dataclass
class Functions:
    """A Functions app stand-in: takes IncomingCall from Event Grid and answers, rejects or
    ignores it through the real AcsCallControl; verifies and records every callback."""

    acs: LocalAcs
    control: AcsCallControl
    verifier: AcsTokenVerifier
    changed: asyncio.Condition
    media_url: str
    decision: str = "answer"
    url: str = ""
    deliveries: list[tuple[str | None, Any]] = field(default_factory=list)
    posts: list[tuple[bool, list[dict[str, Any]]]] = field(default_factory=list)

    @property
    def events(self) -> list[CallEvent]:
        return [e for _, body in self.posts for e in parse_call_events(json.dumps(body))]

    @property
    def names(self) -> list[str]:
        return [event.name for event in self.events]

    async def event_grid(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.deliveries.append((request.headers.get("aeg-event-type"), body))
        call = parse_incoming_call(body[0]["data"])
        if self.decision == "answer":
            await self.control.answer(
                incoming_call_context=call.incoming_call_context,
                callback_url=f"{self.url}/api/call_events",
                media_url=f"{self.media_url}/calls/{call.correlation_id}?clinic=c1",
                sample_rate_hz=16_000,
                operation_context=f"answer:{call.correlation_id}",
            )
        elif self.decision == "reject":
            await self.control.reject(incoming_call_context=call.incoming_call_context)
        return web.Response()

    async def call_events(self, request: web.Request) -> web.Response:
        try:
            await self.verifier.verify_async(request.headers.get("Authorization"))
            is_verified = True
        except Unauthorized:
            is_verified = False
        self.posts.append((is_verified, await request.json()))
        await _notify(self.changed)
        return web.Response()


@dataclass
class Line:
    acs: LocalAcs
    functions: Functions
    worker: Worker
    changed: asyncio.Condition

    async def until(self, predicate: Callable[[], object]) -> None:
        await until(self.changed, predicate)

    async def until_disconnected(self) -> None:
        await self.until(lambda: "CallDisconnected" in self.functions.names)


@contextlib.asynccontextmanager
async def line(
    tls: TlsFiles,
    *,
    decision: str = "answer",
    hangs_up: bool = False,
    ring_timeout_s: float = 8.0,
    media_url: str | None = None,
) -> AsyncIterator[Line]:
    """The local ACS, a stand-in Functions app and a stand-in media worker, wired up."""
    async with LocalAcs(tls, resource_id=str(uuid.uuid4()), ring_timeout_s=ring_timeout_s) as acs:
        verifier = AcsTokenVerifier(
            audience=acs.resource_id, openid_config_url=acs.openid_config_url
        )
        changed = asyncio.Condition()
        worker = Worker(verifier, changed, hangs_up=hangs_up)
        async with (
            websockets.serve(worker.handle, "127.0.0.1", 0) as server,
            AcsCallControl(
                connection_string=acs.connection_string,
                client_options={"connection_verify": str(acs.ca_file)},
            ) as control,
        ):
            port = server.sockets[0].getsockname()[1]
            media = media_url or f"ws://127.0.0.1:{port}"
            functions = Functions(acs, control, verifier, changed, media, decision)
            web_app = web.Application()
            web_app.router.add_post("/runtime/webhooks/EventGrid", functions.event_grid)
            web_app.router.add_post("/api/call_events", functions.call_events)
            runner = web.AppRunner(web_app, shutdown_timeout=0.5)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            try:
                functions.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
                acs.event_grid_url = functions.url + EVENT_GRID
                yield Line(acs, functions, worker, changed)
            finally:
                await runner.cleanup()


def dial(acs: LocalAcs, call_id: str, number: str = CLINIC_NUMBER) -> Any:
    return websockets.connect(
        f"{acs.pstn_url}/calls/{call_id}?to={number.replace('+', '%2B')}", open_timeout=10
    )


CALLER_METADATA = acs_media.encode_audio_metadata(FORMAT, subscription_id="sub-1")
CALLER_AUDIO = acs_media.encode_audio_data(
    bytes(640), timestamp="2026-11-25T10:00:00.000Z", participant_raw_id=f"4:{LOCAL_CALLER_NUMBER}"
)


async def talk(caller: Any) -> str:
    """Speak as ACS streams the caller (metadata, one frame); what the worker sent back."""
    await caller.send(CALLER_METADATA)
    await caller.send(CALLER_AUDIO)
    return str(await asyncio.wait_for(caller.recv(), timeout=5))


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(scenario())


def test_a_call_rings_connects_streams_and_hangs_up(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls) as call:
            async with dial(call.acs, "call-1") as caller:
                assert await talk(caller) == GREETING  # the worker's AudioData, unchanged
            functions, worker = call.functions, call.worker
            await call.until_disconnected()
            await call.until(lambda: worker.close_codes)

        [(kind, delivered)] = functions.deliveries
        assert kind == "Notification" and len(delivered) == 1
        assert delivered[0]["eventType"] == "Microsoft.Communication.IncomingCall"
        incoming = parse_incoming_call(delivered[0]["data"])
        assert (incoming.to_number, incoming.from_number) == (CLINIC_NUMBER, LOCAL_CALLER_NUMBER)
        assert incoming.correlation_id == "call-1"
        [answered] = call.acs.answered
        connection = answered.call_connection_id

        assert functions.names == ["CallConnected", "MediaStreamingStarted", "CallDisconnected"]
        assert all(is_verified and len(body) == 1 for is_verified, body in functions.posts)
        events = functions.events
        assert {(e.correlation_id, e.call_connection_id) for e in events} == {
            ("call-1", connection)
        }
        assert len({e.event_id for e in events}) == 3
        assert events[0].operation_context == "answer:call-1"
        started = functions.posts[1][1][0]["data"]["mediaStreamingUpdate"]
        assert started["mediaStreamingStatus"] == "mediaStreamingStarted"

        assert worker.paths == ["/calls/call-1?clinic=c1"]
        [headers] = worker.headers
        assert headers["x-ms-call-correlation-id"] == "call-1"
        assert headers["x-ms-call-connection-id"] == connection
        assert worker.token_lifetimes == [_DAY]
        assert worker.received == [CALLER_METADATA, CALLER_AUDIO]  # relayed unchanged
        assert worker.close_codes == [1000]
        record = call.acs.calls["call-1"]
        assert (record.state, record.ended_by, record.callbacks) == (
            "ended", "caller", functions.names
        )  # fmt: skip

    run(scenario)


def test_the_media_worker_closing_its_stream_leaves_the_call_up(tls: TlsFiles) -> None:
    """As with ACS: the caller stays on the line (in silence) until the app hangs up."""

    async def scenario() -> None:
        async with line(tls, hangs_up=True) as call:
            async with dial(call.acs, "call-2") as caller:
                assert await talk(caller) == GREETING
                with pytest.raises(TimeoutError):  # nothing more, but not closed either
                    await asyncio.wait_for(caller.recv(), timeout=0.5)
                assert caller.close_code is None
                assert call.acs.calls["call-2"].state == "connected"
            await call.until_disconnected()  # the caller hung up
            names = call.functions.names
            assert names == ["CallConnected", "MediaStreamingStarted", "MediaStreamingStopped",
                             "CallDisconnected"]  # fmt: skip
            assert call.acs.calls["call-2"].ended_by == "caller"

    run(scenario)


def test_a_rejected_call_is_refused(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls, decision="reject") as call:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with dial(call.acs, "call-3"):
                    pass
            assert refused.value.response.status_code == 403
            assert len(call.functions.deliveries) == 1
            assert [r.path for r in call.acs.requests] == ["/calling/callConnections:reject"]
            assert call.functions.posts == [] and call.worker.paths == []
            assert call.acs.calls["call-3"].state == "rejected"

    run(scenario)


def test_an_unanswered_call_is_refused_when_it_stops_ringing(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls, decision="ignore", ring_timeout_s=0.3) as call:
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with dial(call.acs, "call-4"):
                    pass
            assert refused.value.response.status_code == 504
            assert call.acs.calls["call-4"].state == "unanswered"
            assert call.functions.posts == [] and call.acs.answered == []

    run(scenario)


def test_hanging_up_through_call_automation_ends_the_call(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls) as call:
            async with dial(call.acs, "call-5") as caller:
                assert await talk(caller) == GREETING
                connection = call.acs.answered[0].call_connection_id
                control = call.functions.control
                await control.play_text(
                    call_connection_id=connection,
                    text="Sorry",
                    voice_name="en-US-JennyNeural",
                    operation_context="apology:media",
                )
                await control.hang_up(call_connection_id=connection)
                with pytest.raises(websockets.ConnectionClosedOK):
                    await asyncio.wait_for(caller.recv(), timeout=5)
                assert caller.close_code == 1000
            await call.until_disconnected()
            await call.until(lambda: call.worker.close_codes)
            events = call.functions.events
            assert [e.name for e in events] == [
                "CallConnected", "MediaStreamingStarted", "PlayCompleted", "CallDisconnected"
            ]  # fmt: skip
            assert events[2].operation_context == "apology:media"
            assert call.worker.close_codes == [1000]
            assert call.acs.calls["call-5"].ended_by == "hang-up"

    run(scenario)


def test_a_transfer_takes_the_call_away(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls) as call:
            async with dial(call.acs, "call-6") as caller:
                assert await talk(caller) == GREETING
                await call.functions.control.transfer(
                    call_connection_id=call.acs.answered[0].call_connection_id,
                    to_phone_number=STAFF_NUMBER,
                    operation_context="transfer:staff",
                )
                with pytest.raises(websockets.ConnectionClosedOK):
                    await asyncio.wait_for(caller.recv(), timeout=5)
            await call.until_disconnected()
            events = call.functions.events
            assert [e.name for e in events] == [
                "CallConnected", "MediaStreamingStarted", "CallTransferAccepted", "CallDisconnected"
            ]  # fmt: skip
            assert events[2].operation_context == "transfer:staff"
            accepted = call.functions.posts[2][1][0]["data"]
            assert accepted["transferTarget"]["rawId"] == f"4:{STAFF_NUMBER}"
            assert call.acs.calls["call-6"].ended_by == "transfer"

    run(scenario)


def test_a_media_stream_that_cannot_connect_leaves_the_call_up(tls: TlsFiles) -> None:
    async def scenario() -> None:
        with socket.socket() as unused:
            unused.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
            nowhere = f"ws://127.0.0.1:{unused.getsockname()[1]}"
            async with line(tls, media_url=nowhere) as call:
                async with dial(call.acs, "call-7") as caller:
                    await call.until(lambda: "MediaStreamingFailed" in call.functions.names)
                    await caller.send(CALLER_METADATA)  # goes nowhere; the call stays up
                await call.until_disconnected()
                names = call.functions.names
                assert names == ["CallConnected", "MediaStreamingFailed", "CallDisconnected"]

    run(scenario)


def test_a_caller_that_asks_for_the_transcript_gets_a_media_url_that_asks_for_it(
    tls: TlsFiles,
) -> None:
    async def scenario() -> None:
        async with line(tls) as call:
            url = f"{call.acs.pstn_url}/calls/call-9?to=%2B15550100200&transcript=1"
            async with websockets.connect(url, open_timeout=10) as caller:
                assert await talk(caller) == GREETING
            await call.until(lambda: call.worker.close_codes)
            assert call.worker.paths == ["/calls/call-9?clinic=c1&transcript=1"]

    run(scenario)


def test_a_web_page_dials_only_from_an_origin_the_local_acs_allows(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls) as call:
            call.acs.browser_origins = {"http://127.0.0.1:7071"}
            with pytest.raises(websockets.InvalidStatus) as refused:
                async with websockets.connect(
                    f"{call.acs.pstn_url}/calls/call-10?to=%2B15550100200",
                    origin=websockets.Origin("http://127.0.0.1:8000"), open_timeout=10,
                ):  # fmt: skip
                    pass
            assert refused.value.response.status_code == 403
            assert call.functions.deliveries == []  # it never rang
            async with websockets.connect(
                f"{call.acs.pstn_url}/calls/call-11?to=%2B15550100200",
                origin=websockets.Origin("http://127.0.0.1:7071"), open_timeout=10,
            ) as caller:  # fmt: skip
                assert await talk(caller) == GREETING

    run(scenario)


def test_a_bad_number_or_no_subscription_is_refused(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with LocalAcs(tls) as acs:
            for number, status in (("5550100", 400), (CLINIC_NUMBER, 503)):
                with pytest.raises(websockets.InvalidStatus) as refused:
                    async with dial(acs, "call-8", number):
                        pass
                assert refused.value.response.status_code == status

    run(scenario)


def test_closing_the_local_acs_hangs_up_its_calls(tls: TlsFiles) -> None:
    async def scenario() -> None:
        async with line(tls) as call:
            async with dial(call.acs, "call-9") as caller:
                assert await talk(caller) == GREETING
                await call.acs.__aexit__(None, None, None)  # again on leaving: a no-op
                with pytest.raises(websockets.ConnectionClosedOK):
                    await asyncio.wait_for(caller.recv(), timeout=5)
            names = call.functions.names  # posted before the close returned
            assert names == ["CallConnected", "MediaStreamingStarted", "CallDisconnected"]
            assert call.acs.calls["call-9"].ended_by == "shutdown"
            await call.until(lambda: call.worker.close_codes == [1000])

    run(scenario)
