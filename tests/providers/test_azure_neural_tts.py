"""AzureNeuralTextToSpeech through the real Speech SDK, against a loopback TTS websocket.

The loopback server (``tests/servers/azure_tts_server.py``) speaks the websocket protocol
the SDK uses for synthesis, records what the SDK sent (the requested output format, the
SSML's voice and text) and answers with a 440 Hz tone at the requested rate. A live test
reaches Azure when credentials are set.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import azure.cognitiveservices.speech as speechsdk
import pytest

from reddytalk.errors import ProviderError
from reddytalk.providers.tts.azure_neural import (
    RAW_PCM_FORMATS,
    AzureNeuralTextToSpeech,
    canceled_error,
)
from reddytalk.providers.tts.fallback import FallbackTextToSpeech
from tests.servers.azure_tts_server import LoopbackAzureTts, Script
from tests.servers.tones import TONE_HZ, frequency_hz, tone

KEY = "azure-speech-test-key-0123456789"
VOICE = "en-US-JennyNeural"
TEXT = "Your appointment with Doctor Patel is on Tuesday at nine thirty."

Scenario = Callable[[LoopbackAzureTts, AzureNeuralTextToSpeech], Awaitable[None]]


def run(scenario: Scenario, script: Script | None = None, **options: Any) -> LoopbackAzureTts:
    """Serve, build the adapter against the loopback server, run ``scenario``."""

    async def main() -> LoopbackAzureTts:
        async with LoopbackAzureTts(script) as server:
            tts = AzureNeuralTextToSpeech(
                key=options.pop("key", KEY), host=server.host, voice=VOICE, **options
            )
            try:
                async with asyncio.timeout(20):
                    await scenario(server, tts)
            finally:
                await tts.aclose()
        return server

    return asyncio.run(main())


async def collect(
    tts: AzureNeuralTextToSpeech, text: str = TEXT, sample_rate_hz: int = 16_000
) -> bytes:
    return b"".join([chunk async for chunk in tts.synthesize(text, sample_rate_hz=sample_rate_hz)])


@pytest.mark.parametrize("rate", sorted(RAW_PCM_FORMATS))
def test_asks_for_raw_pcm_at_the_call_rate_with_the_voice_and_plays_it_at_that_rate(
    rate: int,
) -> None:
    audio: list[bytes] = []

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        audio.append(await collect(tts, sample_rate_hz=rate))

    server = run(scenario)

    (connection,) = server.connections
    assert connection.path == "/cognitiveservices/websocket/v1"
    assert connection.headers["ocp-apim-subscription-key"] == KEY
    (sentence,) = server.sentences
    assert sentence.output_format == f"raw-{rate // 1000}khz-16bit-mono-pcm"
    assert sentence.voice == VOICE
    assert sentence.text == TEXT
    assert sentence.is_finished
    assert audio[0] == tone(rate)
    assert frequency_hz(audio[0], rate) == pytest.approx(TONE_HZ, rel=0.01)


@pytest.mark.parametrize("rate", [11_025, 22_050, 44_100])
def test_a_rate_without_raw_pcm_is_refused_at_the_call_not_transcoded(rate: int) -> None:
    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        with pytest.raises(ProviderError, match=str(rate)) as caught:
            tts.synthesize(TEXT, sample_rate_hz=rate)
        assert not caught.value.retryable
        with pytest.raises(ProviderError):
            await tts.warm(rate)

    assert run(scenario).connections == []


def test_text_is_sent_as_plain_text_escaped_into_the_ssml() -> None:
    text = 'O\'Brien & Sons <said> "yes".'

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        await collect(tts, text)

    (sentence,) = run(scenario).sentences
    assert sentence.text == text  # the SSML parsed back to the very text: no markup injected


def test_first_audio_arrives_before_the_server_finishes() -> None:
    gate = asyncio.Event()

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        speech = tts.synthesize(TEXT, sample_rate_hz=16_000)
        first = await anext(speech)
        assert first and not server.sentences[0].is_finished  # the server holds the rest
        gate.set()
        rest = [chunk async for chunk in speech]
        assert first + b"".join(rest) == tone(16_000)

    run(scenario, Script(gate=gate))


def test_chunks_are_whole_samples_when_messages_split_them() -> None:
    chunks: list[bytes] = []

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        async for chunk in tts.synthesize(TEXT, sample_rate_hz=16_000):
            chunks.append(chunk)

    run(scenario, Script(chunk_bytes=333))
    assert len(chunks) > 10 and all(len(chunk) % 2 == 0 for chunk in chunks)
    assert b"".join(chunks) == tone(16_000)


def test_sequential_sentences_reuse_one_connection() -> None:
    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        for _ in range(3):
            assert await collect(tts) == tone(16_000)

    server = run(scenario)
    assert len(server.connections) == 1
    assert [s.connection for s in server.sentences] == [0, 0, 0]


def test_concurrent_sentences_get_a_synthesizer_each_and_only_their_own_audio() -> None:
    def audio(rate: int, text: str) -> bytes:
        return text.encode()[:2] * 4_000  # each sentence's bytes name it

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        texts = ["aa first", "bb second", "cc third"]
        results = await asyncio.gather(*(collect(tts, text) for text in texts))
        assert results == [text.encode()[:2] * 4_000 for text in texts]

    server = run(scenario, Script(audio=audio, chunk_bytes=1_000))
    assert len(server.connections) == 3
    assert len({s.connection for s in server.sentences}) == 3


def test_warm_opens_the_connection_before_the_first_sentence() -> None:
    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        await tts.warm(24_000)
        await server.wait_for(lambda: bool(server.connections and server.connections[0].messages))
        assert [m[0] for m in server.connections[0].messages] == ["speech.config"]
        assert server.sentences == []
        assert await collect(tts, sample_rate_hz=24_000) == tone(24_000)

    server = run(scenario)
    assert len(server.connections) == 1
    assert server.sentences[0].connection == 0


def test_a_consumer_that_stops_listening_stops_the_synthesis() -> None:
    gate = asyncio.Event()

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        speech = tts.synthesize(TEXT, sample_rate_hz=16_000)
        assert await anext(speech)
        await speech.aclose()  # type: ignore[attr-defined]  # barge-in
        await server.wait_for(lambda: server.connections[0].is_closed)
        first = server.sentences[0]
        assert first.is_interrupted and not first.is_finished
        assert first.sent_bytes < len(tone(16_000))
        # The stopped synthesizer connects again at once, before the next sentence. (A
        # sentence sent while that connection is still opening gets a new one: the SDK's.)
        await server.wait_for(lambda: len(server.connections) == 2)
        await server.wait_for(lambda: bool(server.connections[1].messages))
        assert [m[0] for m in server.connections[1].messages] == ["speech.config"]
        gate.set()
        assert await collect(tts) == tone(16_000)

    server = run(scenario, Script(gate=gate))
    assert [s.connection for s in server.sentences] == [0, 1]
    assert len(server.connections) == 2


def test_a_cancelled_task_stops_a_sentence_still_waiting_for_its_first_audio() -> None:
    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        task = asyncio.create_task(collect(tts))
        await server.wait_for(lambda: bool(server.sentences))
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await server.wait_for(lambda: server.connections[0].is_closed)
        assert server.sentences[0].is_interrupted
        assert server.sentences[0].sent_bytes == 0

    run(scenario, Script(first_byte_delay_s=1.0))


def test_a_slow_first_byte_is_waited_for_and_the_audio_is_whole() -> None:
    delay_s = 0.3

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        started = time.perf_counter()
        speech = tts.synthesize(TEXT, sample_rate_hz=16_000)
        first = await anext(speech)
        assert time.perf_counter() - started >= delay_s
        assert first + b"".join([chunk async for chunk in speech]) == tone(16_000)

    run(scenario, Script(first_byte_delay_s=delay_s))


class _Recording:
    """A secondary voice that says a fixed buffer and counts its sentences."""

    def __init__(self) -> None:
        self.calls = 0

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        self.calls += 1
        yield b"\x01\x00" * 160


def test_behind_the_fallback_a_late_first_byte_is_stopped_and_the_secondary_speaks() -> None:
    secondary = _Recording()

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        voice = FallbackTextToSpeech(tts, secondary, first_audio_timeout_ms=100)
        heard = [chunk async for chunk in voice.synthesize(TEXT, sample_rate_hz=16_000)]
        assert heard == [b"\x01\x00" * 160] and secondary.calls == 1
        await server.wait_for(lambda: server.connections[0].is_closed)
        assert server.sentences[0].is_interrupted

    run(scenario, Script(first_byte_delay_s=1.0))


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (Script(close_after_chunks=3), "ServiceError"),
        (Script(drop_after_chunks=3), "ConnectionFailure"),
    ],
)
def test_a_connection_lost_mid_sentence_is_a_retryable_error_after_the_audio(
    script: Script, code: str
) -> None:
    chunks: list[bytes] = []

    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        with pytest.raises(ProviderError) as caught:
            async for chunk in tts.synthesize(TEXT, sample_rate_hz=16_000):
                chunks.append(chunk)
        assert str(caught.value) == f"Azure TTS synthesis canceled: {code}"
        assert caught.value.retryable
        # The synthesizer went back to the pool and connects again for the next one.
        script.close_after_chunks = script.drop_after_chunks = None
        assert await collect(tts) == tone(16_000)

    run(scenario, script)
    audio = b"".join(chunks)
    assert audio == tone(16_000)[: 3 * 3_200]


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(401, "AuthenticationFailure", False), (429, "TooManyRequests", True)],
)
def test_a_refused_connection_names_the_cancellation_code_only(
    status: int, code: str, retryable: bool
) -> None:
    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        with pytest.raises(ProviderError) as caught:
            await collect(tts)
        assert str(caught.value) == f"Azure TTS synthesis canceled: {code}"
        assert caught.value.retryable is retryable
        assert caught.value.__cause__ is None

    server = run(scenario, Script(reject_status=status))
    assert server.rejected and server.rejected[0]["ocp-apim-subscription-key"] == KEY


def test_nothing_listening_is_a_retryable_connection_failure() -> None:
    async def main() -> None:
        tts = AzureNeuralTextToSpeech(key=KEY, host="ws://127.0.0.1:9", voice=VOICE)
        with pytest.raises(ProviderError, match="ConnectionFailure") as caught:
            await collect(tts)
        assert caught.value.retryable
        await tts.aclose()

    asyncio.run(main())


def test_cancellation_codes_map_to_retryable_without_details() -> None:
    assert canceled_error("ServiceTimeout").retryable
    assert canceled_error("TooManyRequests").retryable
    assert not canceled_error("AuthenticationFailure").retryable
    assert not canceled_error("BadRequest").retryable
    for code in speechsdk.CancellationErrorCode:
        assert str(canceled_error(code.name)) == f"Azure TTS synthesis canceled: {code.name}"


def test_settings_errors_are_provider_errors() -> None:
    with pytest.raises(ProviderError) as caught:
        AzureNeuralTextToSpeech(key="k")  # no region, endpoint or host
    assert not caught.value.retryable
    with pytest.raises(ProviderError):  # a token credential needs the custom-domain endpoint
        AzureNeuralTextToSpeech(credential=_NoToken(), region="westeurope")


class _NoToken:
    """A TokenCredential the SDK never gets to ask."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("not called")


def test_a_closed_adapter_refuses_new_sentences() -> None:
    async def scenario(server: LoopbackAzureTts, tts: AzureNeuralTextToSpeech) -> None:
        await collect(tts)
        await tts.aclose()
        with pytest.raises(ProviderError, match="closed"):
            tts.synthesize(TEXT, sample_rate_hz=16_000)

    run(scenario)


# -- live: real Azure Speech --------------------------------------------------------

_KEY = os.environ.get("REDDYTALK_TEST_SPEECH_KEY")
_REGION = os.environ.get("REDDYTALK_TEST_SPEECH_REGION")


@pytest.mark.azure
@pytest.mark.skipif(
    not (_KEY and _REGION),
    reason="set REDDYTALK_TEST_SPEECH_KEY and REDDYTALK_TEST_SPEECH_REGION to reach Azure Speech",
)
def test_live_speaks_a_sentence_at_the_call_rate() -> None:
    async def main() -> None:
        tts = AzureNeuralTextToSpeech(key=_KEY, region=_REGION, voice=VOICE)
        try:
            await tts.warm(16_000)
            audio = await collect(tts, "One moment, please.")
        finally:
            await tts.aclose()
        # About a second of speech at 16 kHz, 16-bit: raw PCM, no RIFF header.
        assert 16_000 < len(audio) < 160_000 and not audio.startswith(b"RIFF")

    asyncio.run(main())
