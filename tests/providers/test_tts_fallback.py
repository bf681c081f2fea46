"""FallbackTextToSpeech: the loopback ElevenLabs as primary, a scripted or espeak-ng secondary."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from reddytalk.errors import ProviderError
from reddytalk.ports import TextToSpeech
from reddytalk.providers.tts.elevenlabs import ElevenLabsTextToSpeech
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.providers.tts.fallback import CircuitBreaker, FallbackTextToSpeech
from tests.providers.test_elevenlabs_tts import API_KEY, TEXT, LoopbackElevenLabs, Script
from tests.servers.tones import tone

BOUND_MS = 150
SECONDARY_AUDIO = b"\x01\x00" * 160


class ScriptedTts:
    """A secondary that records what it was asked and speaks fixed audio."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        self.texts.append(text)
        yield SECONDARY_AUDIO


class Clock:
    """Virtual monotonic seconds."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


Scenario = Callable[[LoopbackElevenLabs, ElevenLabsTextToSpeech], Awaitable[None]]


def run(scenario: Scenario, script: Script | None = None) -> LoopbackElevenLabs:
    async def main() -> LoopbackElevenLabs:
        async with LoopbackElevenLabs(script=script or Script()) as server:
            primary = ElevenLabsTextToSpeech(
                api_key=API_KEY, voice_id="voice", base_url=server.base_url
            )
            try:
                await scenario(server, primary)
            finally:
                await primary.aclose()
        return server

    return asyncio.run(main())


async def first_audio_s(tts: TextToSpeech) -> tuple[float, bytes]:
    """Seconds to the first chunk, and all the audio."""
    started = time.perf_counter()
    first_at = None
    chunks = []
    async for chunk in tts.synthesize(TEXT, sample_rate_hz=16_000):
        first_at = first_at or time.perf_counter()
        chunks.append(chunk)
    assert first_at is not None
    return first_at - started, b"".join(chunks)


def test_a_healthy_primary_speaks() -> None:
    secondary = ScriptedTts()

    async def scenario(server: LoopbackElevenLabs, primary: ElevenLabsTextToSpeech) -> None:
        tts = FallbackTextToSpeech(primary, secondary, first_audio_timeout_ms=BOUND_MS)
        _, audio = await first_audio_s(tts)
        assert audio == tone(16_000)
        assert tts.breaker.state == "closed"

    run(scenario)
    assert secondary.texts == []


@pytest.mark.parametrize("status", [503, 401])
def test_primary_down_the_secondary_speaks_the_same_text(status: int) -> None:
    secondary = ScriptedTts()

    async def scenario(server: LoopbackElevenLabs, primary: ElevenLabsTextToSpeech) -> None:
        tts = FallbackTextToSpeech(primary, secondary, first_audio_timeout_ms=BOUND_MS)
        gap_s, audio = await first_audio_s(tts)
        assert audio == SECONDARY_AUDIO
        assert gap_s < BOUND_MS / 1000 + 0.5  # generous: bound + the secondary's first audio

    server = run(scenario, Script(status=status))
    assert secondary.texts == [TEXT] and len(server.requests) == 1


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_late_first_byte_falls_back_to_espeak_within_the_bound() -> None:
    async def scenario(server: LoopbackElevenLabs, primary: ElevenLabsTextToSpeech) -> None:
        espeak = EspeakTextToSpeech()
        espeak_first_s, _ = await first_audio_s(espeak)
        tts = FallbackTextToSpeech(primary, espeak, first_audio_timeout_ms=BOUND_MS)
        gap_s, audio = await first_audio_s(tts)
        assert audio and audio != tone(16_000)[: len(audio)]
        # The silence is the bound plus espeak's own first audio (measured), with slack.
        assert BOUND_MS / 1000 <= gap_s < BOUND_MS / 1000 + espeak_first_s + 0.5

    run(scenario, Script(first_byte_delay_s=0.6))


def test_breaker_opens_after_n_failures_and_half_opens_after_the_cool_down() -> None:
    secondary = ScriptedTts()
    clock = Clock()

    async def scenario(server: LoopbackElevenLabs, primary: ElevenLabsTextToSpeech) -> None:
        breaker = CircuitBreaker(failure_threshold=3, cool_down_ms=30_000, clock=clock)
        tts = FallbackTextToSpeech(
            primary, secondary, first_audio_timeout_ms=BOUND_MS, breaker=breaker
        )
        for _ in range(3):
            await first_audio_s(tts)
        assert len(server.requests) == 3 and breaker.state == "open"

        clock.now += 29.9  # still cooling down: the primary is not asked
        assert (await first_audio_s(tts))[1] == SECONDARY_AUDIO
        assert len(server.requests) == 3

        clock.now += 0.2  # half-open: one trial, which fails and opens again
        assert breaker.state == "half-open"
        await first_audio_s(tts)
        assert len(server.requests) == 4 and breaker.state == "open"

        clock.now += 30.1  # half-open again; now the primary is back
        server.script = Script()
        _, audio = await first_audio_s(tts)
        assert audio == tone(16_000) and breaker.state == "closed"
        assert len(server.requests) == 5

    run(scenario, Script(status=500))
    assert secondary.texts == [TEXT] * 5


def test_a_failure_after_first_audio_stops_the_sentence_and_raises() -> None:
    secondary = ScriptedTts()
    heard: list[bytes] = []

    async def scenario(server: LoopbackElevenLabs, primary: ElevenLabsTextToSpeech) -> None:
        breaker = CircuitBreaker(failure_threshold=1, clock=Clock())
        tts = FallbackTextToSpeech(
            primary, secondary, first_audio_timeout_ms=BOUND_MS, breaker=breaker
        )
        with pytest.raises(ProviderError) as caught:
            async for chunk in tts.synthesize(TEXT, sample_rate_hz=16_000):
                heard.append(chunk)
        assert caught.value.retryable
        assert breaker.state == "open"  # the failure counts

    run(scenario, Script(cut_after_bytes=3_000))
    audio = b"".join(heard)
    assert audio and audio == tone(16_000)[: len(audio)]  # what was said stands
    assert secondary.texts == []  # not restarted in the other voice


def test_a_cancelled_trial_leaves_the_breaker_usable() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failure_threshold=1, cool_down_ms=1_000, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    assert breaker.allows_attempt() and not breaker.allows_attempt()  # one trial at a time
    breaker.abandon_attempt()  # barge-in cancelled it
    assert breaker.allows_attempt()
