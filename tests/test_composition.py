"""The composition root picks the receptionist's voice from settings."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from reddytalk.composition import (
    AZURE_WAIT_FOR_WORDS_MS,
    build_policy,
    build_stt,
    build_tts,
    build_voices,
    call_tuning,
)
from reddytalk.frames import Transcript
from reddytalk.providers.seed import demo_clinic
from reddytalk.providers.stt.azure_speech import AzureSpeechToText
from reddytalk.providers.stt.pocketsphinx import PocketsphinxSpeechToText
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.providers.tts.fallback import FallbackTextToSpeech
from reddytalk.settings import Settings
from tests.dialogue.test_policy import _call as _policy_call
from tests.dialogue.test_tiered_policy import Scripted, _answer
from tests.providers.test_azure_openai_chat import KEY as OPENAI_KEY
from tests.providers.test_elevenlabs_tts import API_KEY as KEY
from tests.providers.test_elevenlabs_tts import LoopbackElevenLabs
from tests.servers.azure_tts_server import LoopbackAzureTts
from tests.servers.tones import tone


def _settings(base_url: str, **extra: str) -> Settings:
    return Settings.from_env(
        {
            "REDDYTALK_TTS": "elevenlabs",
            "REDDYTALK_ELEVENLABS_VOICE_ID": "voice-1",
            "REDDYTALK_ELEVENLABS_BASE_URL": base_url,
            "REDDYTALK_SECRET_ELEVENLABS_API_KEY": KEY,
            **extra,
        }
    )


def test_espeak_is_the_default_voice() -> None:
    closers: list[Callable[[], Awaitable[None]]] = []
    tts = asyncio.run(build_tts(Settings.from_env({}), on_close=closers))
    assert isinstance(tts, EspeakTextToSpeech)
    assert closers == []


def test_elevenlabs_speaks_with_the_key_from_the_secrets_and_espeak_behind_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def main() -> None:
        async with LoopbackElevenLabs() as server:
            closers: list[Callable[[], Awaitable[None]]] = []
            tts = await build_tts(_settings(server.base_url), on_close=closers)
            assert isinstance(tts, FallbackTextToSpeech)
            audio = b"".join([c async for c in tts.synthesize("Hello.", sample_rate_hz=16_000)])
            for close in reversed(closers):
                await close()
        assert audio and len(audio) % 2 == 0
        assert "fallback" not in caplog.text  # ElevenLabs itself spoke
        [request] = server.requests
        assert request.headers["xi-api-key"] == KEY
        assert request.voice_id == "voice-1"
        assert request.query["output_format"] == "pcm_16000"
        assert request.body["model_id"] == "eleven_flash_v2_5"

    asyncio.run(main())


@pytest.mark.parametrize(
    ("drop", "named"),
    [
        ("REDDYTALK_ELEVENLABS_VOICE_ID", "REDDYTALK_ELEVENLABS_VOICE_ID"),
        ("REDDYTALK_SECRET_ELEVENLABS_API_KEY", "elevenlabs-api-key"),
    ],
)
def test_a_missing_voice_or_key_names_itself(drop: str, named: str) -> None:
    env = {
        "REDDYTALK_TTS": "elevenlabs",
        "REDDYTALK_ELEVENLABS_VOICE_ID": "voice-1",
        "REDDYTALK_SECRET_ELEVENLABS_API_KEY": KEY,
    }
    del env[drop]
    with pytest.raises(ValueError, match=named):
        asyncio.run(build_tts(Settings.from_env(env), on_close=[]))


def test_a_clinic_with_its_own_voice_speaks_with_it_and_shares_the_fallback() -> None:
    async def main() -> None:
        async with LoopbackElevenLabs() as server:
            closers: list[Callable[[], Awaitable[None]]] = []
            settings = _settings(server.base_url)
            tts = await build_tts(settings, on_close=closers)
            choose = await build_voices(settings, tts, on_close=closers)
            own = dataclasses.replace(demo_clinic(), clinic_id="c2", voice_id="clinic-voice")
            assert choose(own) is choose(own)  # one voice object (and phrase cache) per voice
            assert choose(demo_clinic()) is not choose(own)
            for clinic in (own, demo_clinic()):
                chunks = choose(clinic).synthesize("Hello.", sample_rate_hz=16_000)
                assert b"".join([c async for c in chunks])
            for close in reversed(closers):
                await close()
        assert [r.voice_id for r in server.requests] == ["clinic-voice", "voice-1"]

    asyncio.run(main())


def test_the_tiered_policy_needs_an_azure_openai_endpoint() -> None:
    settings = Settings.from_env({"REDDYTALK_POLICY": "tiered"})
    with pytest.raises(ValueError, match="REDDYTALK_AZURE_OPENAI_ENDPOINT"):
        asyncio.run(build_policy(settings, on_close=[]))


def test_the_deterministic_policy_is_the_embedded_default() -> None:
    assert asyncio.run(build_policy(Settings.from_env({}), on_close=[])) is None


def test_the_tiered_policy_asks_the_configured_deployment_with_the_key_from_the_secrets(
    tmp_path: Path,
) -> None:
    with _policy_call(tmp_path) as call:

        async def main() -> tuple[Scripted, str | None]:
            async with Scripted() as server:
                server.scripts = [_answer("We take most plans.")]
                settings = Settings.from_env({
                    "REDDYTALK_POLICY": "tiered",
                    "REDDYTALK_AZURE_OPENAI_ENDPOINT": server.endpoint,
                    "REDDYTALK_AZURE_OPENAI_API_KEY_NAME": "openai-key",
                    "REDDYTALK_AZURE_OPENAI_FAST_DEPLOYMENT": "gpt-4o-mini-fast",
                    "REDDYTALK_SECRET_OPENAI_KEY": OPENAI_KEY,
                })  # fmt: skip
                closers: list[Callable[[], Awaitable[None]]] = []
                factory = await build_policy(settings, on_close=closers)
                assert factory is not None
                policy = factory(call.tools)
                policy.greeting()
                async for _ in policy.respond(Transcript("do you take aetna insurance")):
                    pass
                for close in reversed(closers):
                    await close()
                return server, policy.last_tier

        server, tier = asyncio.run(main())
    [request] = server.requests
    assert request.path.split("/")[3] == "gpt-4o-mini-fast"
    assert request.headers["api-key"] == OPENAI_KEY
    assert request.body["stream"] is True and request.body["tools"]
    assert tier == "fast"


def test_azure_speech_with_the_managed_identity_needs_the_endpoint() -> None:
    settings = Settings.from_env({"REDDYTALK_STT": "azure"})
    with pytest.raises(ValueError, match="REDDYTALK_AZURE_SPEECH_ENDPOINT"):
        asyncio.run(build_stt(settings, on_close=[]))


def test_azure_speech_with_a_key_from_the_secrets_and_a_region() -> None:
    settings = Settings.from_env({
        "REDDYTALK_STT": "azure",
        "REDDYTALK_AZURE_SPEECH_REGION": "eastus",
        "REDDYTALK_AZURE_SPEECH_KEY_NAME": "speech-key",
        "REDDYTALK_SECRET_SPEECH_KEY": "not-a-real-key",
        "REDDYTALK_SPEECH_SEGMENTATION_SILENCE_MS": "250",
    })  # fmt: skip
    stt = asyncio.run(build_stt(settings, on_close=[]))
    assert isinstance(stt, AzureSpeechToText)
    assert stt._segmentation_silence_ms == 250


def test_the_embedded_profile_listens_with_pocketsphinx() -> None:
    stt = asyncio.run(build_stt(Settings.from_env({}), on_close=[]))
    assert isinstance(stt, PocketsphinxSpeechToText)


def test_azure_neural_speaks_with_the_configured_voice_and_the_key_from_the_secrets() -> None:
    async def main() -> LoopbackAzureTts:
        async with LoopbackAzureTts() as server:
            settings = Settings.from_env({
                "REDDYTALK_TTS": "azure",
                "REDDYTALK_AZURE_SPEECH_ENDPOINT": server.host,
                "REDDYTALK_AZURE_SPEECH_KEY_NAME": "speech-key",
                "REDDYTALK_SECRET_SPEECH_KEY": "not-a-real-key",
                "REDDYTALK_AZURE_TTS_VOICE": "en-US-AvaNeural",
            })  # fmt: skip
            closers: list[Callable[[], Awaitable[None]]] = []
            tts = await build_tts(settings, on_close=closers)
            for _ in range(2):  # a fixed phrase: synthesized once, then replayed
                chunks = tts.synthesize("One moment.", sample_rate_hz=24_000)
                assert b"".join([c async for c in chunks])
            for close in reversed(closers):
                await close()
            return server

    server = asyncio.run(main())
    [sentence] = server.sentences
    assert (sentence.voice, sentence.sample_rate_hz) == ("en-US-AvaNeural", 24_000)
    assert sentence.output_format == "raw-24khz-16bit-mono-pcm"


def test_elevenlabs_down_hands_the_sentence_to_azure_neural_before_espeak() -> None:
    async def main() -> tuple[LoopbackElevenLabs, LoopbackAzureTts, bytes]:
        async with LoopbackElevenLabs() as eleven, LoopbackAzureTts() as azure:
            eleven.script.status = 503
            settings = _settings(
                eleven.base_url,
                REDDYTALK_AZURE_SPEECH_ENDPOINT=azure.host,
                REDDYTALK_AZURE_SPEECH_KEY_NAME="speech-key",
                REDDYTALK_SECRET_SPEECH_KEY="not-a-real-key",
            )
            closers: list[Callable[[], Awaitable[None]]] = []
            tts = await build_tts(settings, on_close=closers)
            chunks = tts.synthesize("Your visit is at nine.", sample_rate_hz=16_000)
            audio = b"".join([c async for c in chunks])
            for close in reversed(closers):
                await close()
            return eleven, azure, audio

    eleven, azure, audio = asyncio.run(main())
    assert len(eleven.requests) == 1  # tried first, failed
    assert [s.text for s in azure.sentences] == ["Your visit is at nine."]
    assert audio == tone(16_000)  # what Azure Neural sent, not espeak-ng


def test_calls_wait_for_azure_speech_s_lagging_words_and_not_for_pocketsphinx() -> None:
    embedded = call_tuning(Settings(settled_end_of_turn_silence_ms=180))
    assert embedded.wait_for_words_ms == 0 and embedded.settled_end_of_turn_silence_ms == 180
    assert call_tuning(Settings(stt="azure")).wait_for_words_ms == AZURE_WAIT_FOR_WORDS_MS > 0
