"""End to end with the cloud profile's voice adapters on loopback: the tiered policy over
a loopback Azure OpenAI (the real ``openai`` SDK) and the ElevenLabs adapter (the real
``elevenlabs`` SDK) over a loopback ElevenLabs that speaks with espeak-ng, so the caller
hears real words; pocketsphinx stands in for Azure Speech, whose protocol is not public.

One booking call through the local stack (the local ACS, the Functions app, the media
worker): every turn is one code understood, so the model is never asked (no turn pays a
model's first token), and ElevenLabs speaks every answer. Then ElevenLabs fails for a
call, and espeak-ng speaks every sentence instead. (Turns the model answers are
``tests/dialogue/test_tiered_policy.py``'s: pocketsphinx recognizes with the state's
grammar, so a question outside it comes out as a phrase of the grammar, which code then
understands; Azure Speech dictates freely.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from local_caller import Scenario, Step, place_call
from local_stack import local_stack
from receptionist_cli import _call_record

from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.settings import Settings
from tests.dialogue.test_tiered_policy import Scripted
from tests.providers.test_azure_openai_chat import KEY as OPENAI_KEY

pytestmark = pytest.mark.e2e

ELEVEN_KEY = "eleven-test-key-not-a-secret"
VOICE = "loopback-voice"


@dataclasses.dataclass
class SpeakingElevenLabs:
    """``POST /v1/text-to-speech/{voice}/stream``, answered with espeak-ng's PCM at the
    requested ``pcm_<rate>``; ``status`` other than 200 fails every request."""

    status: int = 200
    requests: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    base_url: str = ""
    _runner: web.AppRunner | None = None
    _espeak: EspeakTextToSpeech = dataclasses.field(default_factory=EspeakTextToSpeech)

    async def __aenter__(self) -> SpeakingElevenLabs:
        app = web.Application()
        app.router.add_post("/v1/text-to-speech/{voice_id}/stream", self._stream)
        self._runner = web.AppRunner(app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _stream(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append({
            "voice_id": request.match_info["voice_id"],
            "output_format": request.query.get("output_format"),
            "key": request.headers.get("xi-api-key"),
            "model_id": body.get("model_id"),
        })  # fmt: skip
        if self.status != 200:
            return web.json_response({"detail": {"status": "scripted"}}, status=self.status)
        rate = int(request.query["output_format"].removeprefix("pcm_"))
        response = web.StreamResponse(headers={"Content-Type": "audio/pcm"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        async for chunk in self._espeak.synthesize(body["text"], sample_rate_hz=rate):
            await response.write(chunk)
        await response.write_eof()
        return response


BOOKING = Scenario(
    name="cloud-voice-booking",
    dial="+15550100200",
    steps=tuple(
        Step(say)
        for say in (
            "I would like to book an appointment",
            "My name is Robert Taylor",
            "March fifteenth nineteen eighty",
            "A check up",
            "Next Tuesday morning",
            "The second one",
            "Yes please",
            "No thank you",
            "No thank you",
        )
    ),
)


def _settings(data_dir: Path, openai: Scripted, eleven: SpeakingElevenLabs) -> Settings:
    return Settings(
        data_dir=data_dir,
        port=0,
        policy="tiered",
        azure_openai_endpoint=openai.endpoint,
        azure_openai_api_key_name="openai-key",
        tts="elevenlabs",
        elevenlabs_voice_id=VOICE,
        elevenlabs_base_url=eleven.base_url,
        environment_secrets={
            "REDDYTALK_SECRET_OPENAI_KEY": OPENAI_KEY,
            "REDDYTALK_SECRET_ELEVENLABS_API_KEY": ELEVEN_KEY,
        },
    )


def test_a_booking_call_on_the_cloud_voice_adapters(tmp_path: Path) -> None:
    async def main() -> tuple[dict[str, Any], Scripted, SpeakingElevenLabs]:
        async with Scripted() as openai, SpeakingElevenLabs() as eleven:
            settings = _settings(tmp_path / "stack", openai, eleven)
            async with local_stack(settings) as stack:
                report = await place_call(BOOKING, url=stack.phone_url)
                return await _call_record(settings, report), openai, eleven

    record, openai, eleven = asyncio.run(main())

    assert record["outcome"] == "booked"
    assert record["appointment"]["appointment_type"] == "checkup"
    # Every turn was code's: none reached the model, and each recorded its tier.
    assert openai.requests == []
    tiers = [turn["tier"] for turn in record["turn_timings"]]
    assert len(tiers) == len(BOOKING.steps) and set(tiers) == {"deterministic"}, tiers
    # Every answer was spoken by ElevenLabs at the stream's rate, with the deployment's voice.
    assert eleven.requests and all(
        r["voice_id"] == VOICE and r["output_format"] == "pcm_16000" and r["key"] == ELEVEN_KEY
        for r in eleven.requests
    )


def test_when_elevenlabs_fails_every_sentence_is_still_spoken(tmp_path: Path) -> None:
    hours = Scenario(
        name="cloud-voice-hours",
        dial="+15550100200",
        steps=(Step("What are your opening hours"), Step("No thank you")),
    )

    async def main() -> tuple[dict[str, Any], Any, SpeakingElevenLabs]:
        async with Scripted() as openai, SpeakingElevenLabs(status=503) as eleven:
            settings = _settings(tmp_path / "stack", openai, eleven)
            async with local_stack(settings) as stack:
                report = await place_call(hours, url=stack.phone_url)
                return await _call_record(settings, report), report, eleven

    record, report, eleven = asyncio.run(main())

    # Every answer reached the caller as sound, the call ended as the caller asked.
    assert all(turn.answer_first_sound_s is not None for turn in report.turns)
    said = [text for who, text in record["transcript"] if who == "receptionist"]
    assert any("open" in text.lower() for text in said), said
    assert said[-1].endswith("Goodbye!") and record["outcome"] == "no_action"
    assert report.hung_up_by == "receptionist"
    # ElevenLabs failed three times (the warm-up greeting, the hours, "anything else"), which
    # opened its circuit breaker: the goodbye went straight to espeak-ng.
    assert len(eleven.requests) == 3


# -- live: the same call on real Azure Speech, Azure OpenAI and Azure Neural ----------------

_LIVE = {
    "speech_key": os.environ.get("REDDYTALK_TEST_SPEECH_KEY"),
    "speech_region": os.environ.get("REDDYTALK_TEST_SPEECH_REGION"),
    "openai_endpoint": os.environ.get("REDDYTALK_TEST_OPENAI_ENDPOINT"),
    "openai_key": os.environ.get("REDDYTALK_TEST_OPENAI_KEY"),
}


@pytest.mark.azure
@pytest.mark.skipif(
    not all(_LIVE.values()),
    reason="set REDDYTALK_TEST_SPEECH_KEY, REDDYTALK_TEST_SPEECH_REGION, "
    "REDDYTALK_TEST_OPENAI_ENDPOINT and REDDYTALK_TEST_OPENAI_KEY (deployments named "
    "'fast' and 'complex', as Bicep makes them) to place the call on Azure",
)
def test_live_the_same_booking_call_on_azure(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path / "stack",
        port=0,
        stt="azure",
        azure_speech_region=str(_LIVE["speech_region"]),
        azure_speech_key_name="speech-key",
        policy="tiered",
        azure_openai_endpoint=str(_LIVE["openai_endpoint"]),
        azure_openai_api_key_name="openai-key",
        tts="azure",
        environment_secrets={
            "REDDYTALK_SECRET_SPEECH_KEY": str(_LIVE["speech_key"]),
            "REDDYTALK_SECRET_OPENAI_KEY": str(_LIVE["openai_key"]),
        },
    )

    async def main() -> dict[str, Any]:
        async with local_stack(settings) as stack:
            report = await place_call(BOOKING, url=stack.phone_url)
            return await _call_record(settings, report)

    record = asyncio.run(main())
    assert record["outcome"] == "booked", record["transcript"]
    assert all(turn["tier"] for turn in record["turn_timings"])
