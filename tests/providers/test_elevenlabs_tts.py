"""ElevenLabsTextToSpeech through the real ``elevenlabs`` SDK, against a loopback ElevenLabs.

The loopback server answers as ElevenLabs documents the streaming endpoint
(elevenlabs.io ``api-reference/text-to-speech/stream``, and the SDK's
``text_to_speech/raw_client.py``): ``POST /v1/text-to-speech/{voice_id}/stream``
with ``output_format`` in the query, the key in ``xi-api-key``, a JSON body with
``text`` and ``model_id``; 200 with the audio as a chunked body (``pcm_<rate>``:
raw 16-bit little-endian mono PCM at that rate), or an error status with a JSON
``detail``. It records every request, and speaks a 440 Hz tone at the rate the
request asked for, so a test that reads the tone back at the rate it wanted
catches audio at the wrong rate (the chipmunk bug).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from reddytalk.errors import ProviderError
from reddytalk.providers.tts.elevenlabs import ElevenLabsTextToSpeech
from tests.servers.tones import TONE_HZ, frequency_hz, tone

API_KEY = "sk_test_0123456789abcdef"
VOICE = "voice-receptionist"
TEXT = "Your appointment with Doctor Patel is on Tuesday at nine thirty."


@dataclass
class Recorded:
    """One request as the server saw it."""

    voice_id: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Script:
    """How the server answers the next requests."""

    status: int = 200
    first_byte_delay_s: float = 0.0
    chunk_bytes: int = 333  # odd on purpose: samples split across chunks
    gate: asyncio.Event | None = None  # when set: hold the rest until the test opens it
    cut_after_bytes: int | None = None  # drop the connection mid-body


@dataclass
class LoopbackElevenLabs:
    """A loopback ElevenLabs streaming endpoint; ``base_url`` once started."""

    script: Script = field(default_factory=Script)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""
    finished_at: list[float] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    async def __aenter__(self) -> LoopbackElevenLabs:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._stream)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        self.requests.append(
            Recorded(
                voice_id=request.match_info["voice_id"],
                query=dict(request.query),
                headers={k.lower(): v for k, v in request.headers.items()},
                body=await request.json(),
            )
        )
        script = self.script
        await asyncio.sleep(script.first_byte_delay_s)
        if request.headers.get("xi-api-key") != API_KEY:
            return web.json_response({"detail": {"status": "invalid_api_key"}}, status=401)
        if script.status != 200:
            return web.json_response({"detail": {"status": "scripted"}}, status=script.status)
        rate = int(request.query["output_format"].removeprefix("pcm_"))
        audio = tone(rate)
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        for start in range(0, len(audio), script.chunk_bytes):
            if script.cut_after_bytes is not None and start >= script.cut_after_bytes:
                assert request.transport is not None
                request.transport.abort()
                return response
            await response.write(audio[start : start + script.chunk_bytes])
            if start == 0 and script.gate is not None:
                await script.gate.wait()
        self.finished_at.append(time.perf_counter())
        await response.write_eof()
        return response


Scenario = Callable[[LoopbackElevenLabs, ElevenLabsTextToSpeech], Awaitable[None]]


def run(scenario: Scenario, script: Script | None = None, **options: Any) -> LoopbackElevenLabs:
    """Serve, build the adapter against the loopback server, run ``scenario``."""

    async def main() -> LoopbackElevenLabs:
        async with LoopbackElevenLabs(script=script or Script()) as server:
            tts = ElevenLabsTextToSpeech(
                api_key=options.pop("api_key", API_KEY),
                voice_id=VOICE,
                base_url=server.base_url,
                **options,
            )
            try:
                await scenario(server, tts)
            finally:
                await tts.aclose()
        return server

    return asyncio.run(main())


async def collect(tts: ElevenLabsTextToSpeech, sample_rate_hz: int = 16_000) -> list[bytes]:
    return [chunk async for chunk in tts.synthesize(TEXT, sample_rate_hz=sample_rate_hz)]


@pytest.mark.parametrize("rate", [16_000, 24_000])
def test_sends_voice_model_rate_text_and_key_and_plays_audio_at_that_rate(rate: int) -> None:
    chunks: list[bytes] = []

    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        chunks.extend(await collect(tts, rate))

    server = run(scenario)

    (sent,) = server.requests
    assert sent.voice_id == VOICE
    assert sent.query["output_format"] == f"pcm_{rate}"
    assert sent.body["text"] == TEXT
    assert sent.body["model_id"] == "eleven_flash_v2_5"
    assert sent.headers["xi-api-key"] == API_KEY
    assert sent.headers["content-type"] == "application/json"
    assert all(len(chunk) % 2 == 0 for chunk in chunks)
    audio = b"".join(chunks)
    assert audio == tone(rate)
    assert frequency_hz(audio, rate) == pytest.approx(TONE_HZ, rel=0.01)


def test_a_clinic_voice_and_model_are_sent() -> None:
    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        await collect(tts.with_voice("clinic-voice"))
        await collect(tts)

    server = run(scenario, model_id="eleven_turbo_v2_5", optimize_streaming_latency=2)

    assert [r.voice_id for r in server.requests] == ["clinic-voice", VOICE]
    assert {r.body["model_id"] for r in server.requests} == {"eleven_turbo_v2_5"}
    assert {r.query["optimize_streaming_latency"] for r in server.requests} == {"2"}


def test_a_rate_elevenlabs_lacks_is_refused_at_the_call_not_transcoded() -> None:
    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        with pytest.raises(ValueError, match="11025"):
            tts.synthesize(TEXT, sample_rate_hz=11_025)

    assert run(scenario).requests == []


def test_first_audio_arrives_before_the_server_finishes() -> None:
    gate = asyncio.Event()

    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        speech = tts.synthesize(TEXT, sample_rate_hz=16_000)
        first = await asyncio.wait_for(anext(speech), timeout=5)
        assert first and server.finished_at == []  # the server is still holding the rest
        gate.set()
        rest = [chunk async for chunk in speech]
        assert first + b"".join(rest) == tone(16_000)
        assert server.finished_at

    run(scenario, Script(gate=gate))


@pytest.mark.parametrize(("status", "retryable"), [(429, True), (500, True), (401, False)])
def test_error_statuses_map_to_provider_errors(status: int, retryable: bool) -> None:
    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        with pytest.raises(ProviderError) as caught:
            await collect(tts)
        assert caught.value.retryable is retryable
        assert str(status) in str(caught.value)
        assert TEXT not in str(caught.value) and API_KEY not in str(caught.value)
        assert caught.value.__cause__ is None  # the SDK's ApiError may echo the request

    key = "sk_wrong" if status == 401 else API_KEY
    server = run(scenario, Script(status=401 if status == 401 else status), api_key=key)
    assert len(server.requests) == 1  # the SDK does not retry a streaming request


def test_a_mid_stream_disconnect_is_a_retryable_provider_error() -> None:
    chunks: list[bytes] = []

    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        with pytest.raises(ProviderError) as caught:
            async for chunk in tts.synthesize(TEXT, sample_rate_hz=16_000):
                chunks.append(chunk)
        assert caught.value.retryable
        assert TEXT not in str(caught.value) and API_KEY not in str(caught.value)

    run(scenario, Script(cut_after_bytes=3_000))
    assert chunks and b"".join(chunks) == tone(16_000)[: len(b"".join(chunks))]


def test_a_late_first_byte_is_a_retryable_timeout() -> None:
    async def scenario(server: LoopbackElevenLabs, tts: ElevenLabsTextToSpeech) -> None:
        with pytest.raises(ProviderError, match="timed out") as caught:
            await collect(tts)
        assert caught.value.retryable

    run(scenario, Script(first_byte_delay_s=0.4), timeout_s=0.1)


def test_nothing_listening_is_a_retryable_provider_error() -> None:
    async def main() -> None:
        tts = ElevenLabsTextToSpeech(api_key=API_KEY, voice_id=VOICE, base_url="http://127.0.0.1:9")
        with pytest.raises(ProviderError) as caught:
            await collect(tts)
        assert caught.value.retryable
        await tts.aclose()

    asyncio.run(main())
