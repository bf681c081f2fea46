"""The media worker app over real HTTP and WebSocket on loopback.

Each test serves the real app (embedded profile, its own SQLite store under
``tmp_path``) with uvicorn through ``scripts/receptionist_cli._receptionist`` and
talks to it as ACS would, with the ``websockets`` client. Message shapes are the
ones in ``shared/ACS-FACTS.md`` ("Media streaming").
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import sqlite3
import time
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from receptionist_cli import _receptionist

from reddytalk.audio.pcm import rms_dbfs
from reddytalk.composition import open_embedded_records
from reddytalk.frames import AudioFormat
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER
from reddytalk.settings import Settings
from reddytalk.telephony import acs_media

_DEMO_TO = "to=" + DEMO_PHONE_NUMBER.replace("+", "%2B")
_RECEIVE_TIMEOUT_S = 3.0
_SPEECH_DBFS = -55.0  # the local caller's silence threshold


# -- helpers -------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _worker(data_dir: Path) -> AsyncIterator[str]:
    """The real media worker on a free loopback port; yields ``ws://127.0.0.1:<port>``."""
    async with _receptionist(Settings(data_dir=data_dir, port=0)) as url:
        yield url


def _serve(data_dir: Path, scenario: Callable[[str], Awaitable[None]]) -> None:
    """Run ``scenario(url)`` against a worker started (and stopped) on a fresh event loop."""

    async def main() -> None:
        async with _worker(data_dir) as url:
            await asyncio.wait_for(scenario(url), timeout=10)

    asyncio.run(main())


def _connect(url: str, path_and_query: str) -> Any:
    return websockets.connect(
        f"{url}{path_and_query}", max_size=1 << 20, open_timeout=3, close_timeout=2
    )


def _format(sample_rate_hz: int) -> AudioFormat:
    return AudioFormat(
        sample_rate_hz=sample_rate_hz, frame_bytes=acs_media.frame_bytes_for(sample_rate_hz)
    )


def _outbound_pcm(message: str | bytes) -> bytes:
    """PCM of one outbound message, checking its shape against ACS-FACTS.md."""
    assert isinstance(message, str), "outbound media must be WebSocket text messages"
    body = json.loads(message)
    # {"Kind":"AudioData","AudioData":{"Data":"<base64>"},"StopAudio":null}, PascalCase
    assert set(body) == {"Kind", "AudioData", "StopAudio"}
    assert body["Kind"] == "AudioData"
    assert body["StopAudio"] is None
    assert set(body["AudioData"]) == {"Data"}
    data = body["AudioData"]["Data"]
    assert isinstance(data, str)
    return base64.b64decode(data, validate=True)


async def _receive_frames(ws: Any, count: int, frame_bytes: int) -> list[bytes]:
    frames = []
    for _ in range(count):
        pcm = _outbound_pcm(await asyncio.wait_for(ws.recv(), _RECEIVE_TIMEOUT_S))
        assert len(pcm) == frame_bytes, "every outbound frame is 20 ms at the stream's rate"
        frames.append(pcm)
    return frames


def _traces(pcm: bytes) -> list[str]:
    """Short fragments by which a frame would show in a log line: base64, hex, repr."""
    b64 = base64.b64encode(pcm).decode()
    traces = [b64[:12], b64[-12:], pcm[:8].hex()]
    if len(escaped := repr(pcm[:6])[2:-1]) >= 12:
        traces.append(escaped)
    return traces


def _http_get(url: str) -> tuple[int, str, bytes]:
    with urllib.request.urlopen(url, timeout=3) as response:
        return response.status, response.headers.get("content-type", ""), response.read()


def _stored_calls(data_dir: Path) -> list[dict[str, Any]]:
    """Rows of the ``calls`` table of the worker's SQLite store, read-only."""
    uri = f"file:{data_dir / 'reddytalk.sqlite3'}?mode=ro"
    with contextlib.closing(sqlite3.connect(uri, uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        return [dict(row) for row in conn.execute("SELECT * FROM calls ORDER BY call_id")]


async def _stored_call(data_dir: Path, call_id: str, timeout_s: float = 3.0) -> dict[str, Any]:
    """Wait for the worker to store ``call_id`` (it writes the record after the hang-up)."""
    deadline = time.monotonic() + timeout_s
    while True:
        rows = [row for row in _stored_calls(data_dir) if row["call_id"] == call_id]
        if rows:
            return rows[0]
        assert time.monotonic() < deadline, f"no record of call {call_id} was stored"
        await asyncio.sleep(0.02)


async def _logged(
    caplog: pytest.LogCaptureFixture, predicate: Callable[[str], bool], count: int
) -> list[str]:
    """Wait until ``count`` captured log messages satisfy ``predicate``."""
    deadline = time.monotonic() + 3.0
    while True:
        found = [r.getMessage() for r in caplog.records if predicate(r.getMessage())]
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"expected {count} log lines, saw {found}"
        await asyncio.sleep(0.02)


# -- /healthz ------------------------------------------------------------------


def test_healthz_answers_ok(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        http = url.replace("ws://", "http://", 1)
        status, content_type, body = await asyncio.to_thread(_http_get, f"{http}/healthz")
        assert status == 200
        assert content_type.startswith("application/json")
        assert json.loads(body) == {"status": "ok", "calls": 0}

    _serve(tmp_path, scenario)


# -- refusals --------------------------------------------------------------------


@pytest.mark.parametrize(
    "path_and_query",
    [
        pytest.param("/calls/call-1?to=%2B15559999999", id="unknown-number"),
        pytest.param("/calls/call-1?clinic=no-such-clinic", id="unknown-clinic-id"),
        pytest.param("/calls/call-1", id="no-query"),
        pytest.param("/calls/call-1?to=", id="empty-to"),
        pytest.param("/calls/call-1?clinic=", id="empty-clinic"),
        pytest.param(f"/calls/call-1?from={DEMO_PHONE_NUMBER[1:]}", id="other-parameter-only"),
        pytest.param("/calls/call-1?to=15550100200", id="e164-without-plus"),
        pytest.param("/calls/call-1?to=%2B1555abc0200", id="e164-with-letters"),
        pytest.param("/calls/call-1?to=%2B155501002001234567", id="e164-too-long"),
        # an unencoded "+" is a space in a query string: " 15550100200" is no number
        pytest.param("/calls/call-1?to=+15550100200", id="e164-plus-not-encoded"),
        pytest.param(f"/calls/bad%24id?{_DEMO_TO}", id="bad-call-id"),
        pytest.param(f"/calls/{'x' * 129}?{_DEMO_TO}", id="call-id-too-long"),
    ],
)
def test_a_stream_for_no_known_clinic_is_refused_before_accept(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path_and_query: str
) -> None:
    caplog.set_level(logging.INFO)

    async def scenario(url: str) -> None:
        # Closing (1008) before accept: the WebSocket handshake is answered with HTTP 403.
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with _connect(url, path_and_query):
                pass
        assert refused.value.response.status_code == 403

    _serve(tmp_path, scenario)

    assert _stored_calls(tmp_path) == []
    messages = [r.getMessage() for r in caplog.records]
    assert "refused a media stream: bad call id or unknown clinic" in messages
    assert "call started" not in messages


def test_a_stream_for_a_known_clinic_id_is_accepted(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        async with _connect(url, f"/calls/by-clinic-id?clinic={DEMO_CLINIC_ID}") as ws:
            await _receive_frames(ws, 1, acs_media.frame_bytes_for(16_000))
        record = await _stored_call(tmp_path, "by-clinic-id")
        assert record["clinic_id"] == DEMO_CLINIC_ID

    _serve(tmp_path, scenario)


# -- the greeting ------------------------------------------------------------------


@pytest.mark.parametrize("sample_rate_hz", [16_000, 24_000])
def test_the_greeting_streams_as_acs_audio_data_frames(tmp_path: Path, sample_rate_hz: int) -> None:
    audio_format = _format(sample_rate_hz)
    frame_count = 25  # 500 ms

    async def scenario(url: str) -> None:
        async with _connect(url, f"/calls/greeting-{sample_rate_hz}?{_DEMO_TO}") as ws:
            started = time.monotonic()
            await ws.send(acs_media.encode_audio_metadata(audio_format, subscription_id="sub-1"))
            frames = await _receive_frames(ws, frame_count, audio_format.frame_bytes)
            elapsed_s = time.monotonic() - started
        # Paced in real time, not sent in a burst: frame n goes out no earlier than
        # n * 20 ms after the first, which went out after the metadata arrived.
        assert elapsed_s >= (frame_count - 1) * 0.02 - 0.03, f"arrived in {elapsed_s:.3f} s"
        assert max(rms_dbfs(pcm) for pcm in frames) > _SPEECH_DBFS, "the greeting is audible"

    _serve(tmp_path, scenario)


def test_without_audio_metadata_the_greeting_assumes_16_khz(tmp_path: Path) -> None:
    async def scenario(url: str) -> None:
        async with _connect(url, f"/calls/no-metadata?{_DEMO_TO}") as ws:
            await _receive_frames(ws, 5, acs_media.frame_bytes_for(16_000))

    _serve(tmp_path, scenario)


# -- malformed input ---------------------------------------------------------------


def test_malformed_messages_mid_call_are_skipped_and_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.DEBUG, logger="reddytalk")
    caplog.set_level(logging.DEBUG, logger="media_worker")
    audio_format = _format(16_000)
    loud = bytes(range(256)) * 2 + bytes(range(128))  # 640 bytes, not silence
    short = loud[:100]
    not_base64 = json.dumps(
        {"kind": "AudioData", "audioData": {"data": "!*" + base64.b64encode(loud).decode()}}
    )
    malformed: list[str | bytes] = [
        '{"kind": "AudioData", "audioData": ',  # not JSON
        json.dumps({"kind": "AudioStream", "audioStream": {}}),  # unknown kind
        not_base64,
        acs_media.encode_audio_data(short, timestamp="t", participant_raw_id="4:+1555"),
        loud,  # a binary WebSocket message: ACS only sends text
    ]
    traces = _traces(loud) + _traces(short) + [loud[:12].decode("latin-1")]

    async def scenario(url: str) -> None:
        async with _connect(url, f"/calls/malformed?{_DEMO_TO}") as ws:
            await ws.send(acs_media.encode_audio_metadata(audio_format, subscription_id="sub-1"))
            await _receive_frames(ws, 3, audio_format.frame_bytes)
            for message in malformed:
                await ws.send(message)
                frames = await _receive_frames(ws, 2, audio_format.frame_bytes)
                traces.extend(t for pcm in frames for t in _traces(pcm))
            # a valid frame after them is still taken as audio
            await ws.send(
                acs_media.encode_audio_data(loud, timestamp="t", participant_raw_id="4:+1555")
            )
            skipped = await _logged(
                caplog, lambda m: m.startswith("skipped a malformed media message"), 5
            )
            assert len(skipped) == 5
            # every malformed message has been handled, and the call goes on
            frames = await _receive_frames(ws, 5, audio_format.frame_bytes)
            traces.extend(t for pcm in frames for t in _traces(pcm))
            assert ws.state is websockets.State.OPEN
        await _stored_call(tmp_path, "malformed")
        ended = await _logged(caplog, lambda m: m.startswith("call ended"), 1)
        assert ended == ["call ended: caller_hung_up, 0 turns, 0 barge-ins, 5 malformed messages"]

    _serve(tmp_path, scenario)

    logged = caplog.text + "\n".join(r.getMessage() for r in caplog.records)
    leaked = [trace for trace in traces if trace in logged]
    assert leaked == [], "audio or its base64 reached the logs"


# -- hang-up ------------------------------------------------------------------------


def _hang_up_mid_greeting(tmp_path: Path, call_id: str) -> dict[str, Any]:
    audio_format = _format(16_000)
    stored: dict[str, Any] = {}

    async def scenario(url: str) -> None:
        async with _connect(url, f"/calls/{call_id}?{_DEMO_TO}") as ws:
            await ws.send(acs_media.encode_audio_metadata(audio_format, subscription_id="sub-1"))
            silence = bytes(audio_format.frame_bytes)
            for _ in range(5):  # the caller's line is live, as ACS streams it
                await ws.send(
                    acs_media.encode_audio_data(silence, timestamp="t", participant_raw_id="4:x")
                )
                await _receive_frames(ws, 1, audio_format.frame_bytes)
        # the greeting (several seconds) was still playing when the caller hung up
        stored.update(await _stored_call(tmp_path, call_id))

    _serve(tmp_path, scenario)
    return stored


def test_a_hang_up_mid_greeting_stores_the_call_record(tmp_path: Path) -> None:
    record = _hang_up_mid_greeting(tmp_path, "hang-up-1")

    assert record["clinic_id"] == DEMO_CLINIC_ID
    assert record["outcome"] == "caller_hung_up"
    assert record["started_at"] <= record["ended_at"]  # fixed-width UTC ISO text
    assert json.loads(record["turn_timings"]) == []
    with open_embedded_records(Settings(data_dir=tmp_path)) as records:
        kept = asyncio.run(records.store.get_call("hang-up-1"))
    assert kept is not None and kept.tool_calls == ()  # sealed in the row, opened by the store
    assert [row["call_id"] for row in _stored_calls(tmp_path)] == ["hang-up-1"]


def test_a_hang_up_mid_greeting_ends_without_a_server_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    _hang_up_mid_greeting(tmp_path, "hang-up-2")

    # the worker has stopped: every handler has finished and logged what it would
    assert any(r.getMessage().startswith("call ended") for r in caplog.records)
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == []
