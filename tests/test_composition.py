"""The composition root picks the receptionist's voice from settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from reddytalk.composition import build_tts
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.providers.tts.fallback import FallbackTextToSpeech
from reddytalk.settings import Settings
from tests.providers.test_elevenlabs_tts import API_KEY as KEY
from tests.providers.test_elevenlabs_tts import LoopbackElevenLabs


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
