"""``scripts/bench_adapters``: what each cloud voice adapter adds to a turn, on loopback.

Each adapter runs through its real SDK against the loopback server its tests use
(``tests/providers``), which injects a fixed first-byte delay; the same request is also
made with the bare SDK, interleaved with the adapter's, so what is left is the
adapter's own work (clause cutting, event mapping, the fallback race, the tiered
policy's deterministic check and prompt building), not the network or the server.

* ``azure_openai``: request to the first text event, ``AzureOpenAIChat.stream`` against
  ``openai.AsyncAzureOpenAI`` with ``stream=True`` (warm connections both);
* ``tiered_policy``: a turn code does not understand, ``TieredPolicy.respond`` to its
  first ``Say`` against ``AzureOpenAIChat.stream`` to its first clause, same messages;
* ``elevenlabs``: request to the first PCM chunk, ``ElevenLabsTextToSpeech`` against
  ``AsyncElevenLabs().text_to_speech.stream``;
* ``fallback_tts``: ``FallbackTextToSpeech`` (ElevenLabs, then espeak-ng) against the
  ElevenLabs adapter alone, with ElevenLabs answering in time;
* ``azure_neural`` (when its loopback server is there): ``AzureNeuralTextToSpeech``
  against the Speech SDK's ``SpeechSynthesizer`` with ``start_speaking_text_async``.

    scripts/bench_adapters [--runs 100] [--delay-ms 20] [--out-dir bench/results]

Writes ``adapters.json`` and ``adapters.md`` to ``--out-dir`` and prints the table.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import openai  # noqa: E402
from elevenlabs.client import AsyncElevenLabs  # noqa: E402

from reddytalk.chat_events import Clause, TextDelta  # noqa: E402
from reddytalk.composition import open_embedded_records  # noqa: E402
from reddytalk.dialogue.tiered import TieredPolicy  # noqa: E402
from reddytalk.dialogue.tools import ReceptionistTools  # noqa: E402
from reddytalk.frames import Say, Transcript  # noqa: E402
from reddytalk.providers.llm.azure_openai import AzureOpenAIChat  # noqa: E402
from reddytalk.providers.llm.tool_schemas import receptionist_tools  # noqa: E402
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic, seed_demo  # noqa: E402
from reddytalk.providers.tts.elevenlabs import ElevenLabsTextToSpeech  # noqa: E402
from reddytalk.providers.tts.espeak import EspeakTextToSpeech  # noqa: E402
from reddytalk.providers.tts.fallback import FallbackTextToSpeech  # noqa: E402
from reddytalk.settings import Settings  # noqa: E402
from tests.providers.test_azure_openai_chat import (  # noqa: E402
    KEY,
    MESSAGES,
    ROLE,
    LocalAzureOpenAI,
    Pause,
    _chunk,
    _text,
)
from tests.providers.test_elevenlabs_tts import API_KEY, TEXT, LoopbackElevenLabs, Script  # noqa: E402

Timer = Callable[[], Awaitable[float]]


async def _paired(adapter: Timer, bare: Timer, runs: int) -> dict[str, Any]:
    """Warm both, then alternate them ``runs`` times; each returns ms to its first event."""
    await adapter()
    await bare()
    adapter_ms, bare_ms = [], []
    for _ in range(runs):
        adapter_ms.append(await adapter())
        bare_ms.append(await bare())
    return {
        "adapter_p50_ms": _q(adapter_ms, 0.5),
        "adapter_p95_ms": _q(adapter_ms, 0.95),
        "bare_p50_ms": _q(bare_ms, 0.5),
        "bare_p95_ms": _q(bare_ms, 0.95),
        "added_p50_ms": round(_q(adapter_ms, 0.5) - _q(bare_ms, 0.5), 2),
    }


def _q(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


def _since(started: float) -> float:
    return (time.perf_counter() - started) * 1000


async def bench_azure_openai(runs: int, delay_s: float) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    async with LocalAzureOpenAI() as server:
        server.steps = [ROLE, Pause(delay_s), _text("Hello there."), _chunk({}, "stop")]
        chat = AzureOpenAIChat(endpoint=server.endpoint, api_key=KEY, first_token_late_ms=5000)
        bare = openai.AsyncAzureOpenAI(azure_endpoint=server.endpoint, api_key=KEY,
                                       api_version="2024-10-21", max_retries=0)  # fmt: skip
        tools = receptionist_tools()

        async def adapter() -> float:
            started = time.perf_counter()
            found = None
            async for event in chat.stream(MESSAGES, tools=tools, deployment="fast"):
                if found is None and isinstance(event, TextDelta):
                    found = _since(started)
            assert found is not None
            return found

        async def raw() -> float:
            started = time.perf_counter()
            found = None
            stream = await bare.chat.completions.create(
                model="fast",
                messages=MESSAGES,
                tools=tools,
                stream=True,  # type: ignore[arg-type]
            )
            async for chunk in stream:
                if found is None and chunk.choices and chunk.choices[0].delta.content:
                    found = _since(started)
            assert found is not None
            return found

        results["azure_openai"] = await _paired(adapter, raw, runs)

        with tempfile.TemporaryDirectory() as data_dir:
            now = dt.datetime.now(dt.UTC)
            with open_embedded_records(Settings(data_dir=Path(data_dir)), now=lambda: now) as rec:
                await seed_demo(rec.store, rec.ehr, today=now.date())
                from reddytalk.calls.back_office import LocalBackOffice
                from reddytalk.providers.sms.outbox import OutboxSmsSender
                from reddytalk.workflows.activities import ActivityDeps
                from reddytalk.workflows.runner import InlineRunner

                office = LocalBackOffice(
                    ehr=rec.ehr, store=rec.store, clock=lambda: now,
                    runner=InlineRunner(deps=ActivityDeps(ehr=rec.ehr, store=rec.store,
                                                          control=None, clock=lambda: now)),
                    sms=OutboxSmsSender(store=rec.store),
                ).for_call(call_id="bench", clinic_id=DEMO_CLINIC_ID, call_token=None)  # fmt: skip
                tools_ = ReceptionistTools(clinic=demo_clinic(), office=office, call_id="bench",
                                           clock=lambda: now)  # fmt: skip

                async def policy_turn() -> float:
                    policy = TieredPolicy(
                        tools=tools_, chat=chat, tool_schemas=tools,
                        fast_deployment="fast", complex_deployment="complex",
                    )  # fmt: skip
                    policy.greeting()
                    started = time.perf_counter()
                    found = None
                    async for output in policy.respond(Transcript("do you take aetna insurance")):
                        if found is None and isinstance(output, Say):
                            found = _since(started)
                    assert found is not None and policy.last_tier == "fast"
                    return found

                async def chat_turn() -> float:
                    started = time.perf_counter()
                    found = None
                    async for event in chat.stream(MESSAGES, tools=tools, deployment="fast"):
                        if found is None and isinstance(event, Clause):
                            found = _since(started)
                    assert found is not None
                    return found

                results["tiered_policy"] = await _paired(policy_turn, chat_turn, runs)
        await chat.aclose()
        await bare.close()
    return results


async def _first_chunk(speech: AsyncIterator[bytes], started: float) -> float:
    await anext(speech)
    found = _since(started)
    await speech.aclose()  # type: ignore[attr-defined]
    return found


async def bench_elevenlabs(runs: int, delay_s: float) -> dict[str, dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}
    async with LoopbackElevenLabs(script=Script(first_byte_delay_s=delay_s)) as server:
        eleven = ElevenLabsTextToSpeech(api_key=API_KEY, voice_id="v", base_url=server.base_url)
        bare = AsyncElevenLabs(api_key=API_KEY, base_url=server.base_url)

        async def adapter() -> float:
            started = time.perf_counter()
            return await _first_chunk(eleven.synthesize(TEXT, sample_rate_hz=16_000), started)

        async def raw() -> float:
            started = time.perf_counter()
            speech = bare.text_to_speech.stream(
                "v", text=TEXT, model_id="eleven_flash_v2_5", output_format="pcm_16000"
            )
            return await _first_chunk(speech, started)

        results["elevenlabs"] = await _paired(adapter, raw, runs)
        fallback = FallbackTextToSpeech(eleven, EspeakTextToSpeech(), first_audio_timeout_ms=2000)

        async def wrapped() -> float:
            started = time.perf_counter()
            return await _first_chunk(fallback.synthesize(TEXT, sample_rate_hz=16_000), started)

        results["fallback_tts"] = await _paired(wrapped, adapter, runs)
        await eleven.aclose()
    return results


async def bench_azure_neural(runs: int, delay_s: float) -> dict[str, dict[str, Any]]:
    import azure.cognitiveservices.speech as speechsdk

    from reddytalk.providers.tts.azure_neural import AzureNeuralTextToSpeech
    from tests.servers.azure_tts_server import LoopbackAzureTts
    from tests.servers.azure_tts_server import Script as TtsScript

    async with LoopbackAzureTts(TtsScript(first_byte_delay_s=delay_s)) as server:
        neural = AzureNeuralTextToSpeech(key="bench-key", host=server.host)
        config = speechsdk.SpeechConfig(host=server.host, subscription="bench-key")
        config.set_speech_synthesis_output_format(
            speechsdk.SpeechSynthesisOutputFormat.Raw16Khz16BitMonoPcm
        )
        synthesizer = speechsdk.SpeechSynthesizer(speech_config=config, audio_config=None)
        loop = asyncio.get_running_loop()
        first: list[asyncio.Future[None]] = []
        done: list[asyncio.Future[None]] = []

        def on_audio(_event: Any) -> None:
            if first and not first[-1].done():
                loop.call_soon_threadsafe(lambda f=first[-1]: f.done() or f.set_result(None))

        def on_done(_event: Any) -> None:
            loop.call_soon_threadsafe(lambda f=done[-1]: f.done() or f.set_result(None))

        synthesizer.synthesizing.connect(on_audio)
        synthesizer.synthesis_completed.connect(on_done)

        async def adapter() -> float:
            started = time.perf_counter()
            speech = neural.synthesize(TEXT, sample_rate_hz=16_000)
            await anext(speech)
            found = _since(started)
            async for _ in speech:  # the whole sentence, as the bare run does
                pass
            return found

        async def bare() -> float:
            first.append(loop.create_future())
            done.append(loop.create_future())
            started = time.perf_counter()
            synthesizer.start_speaking_text_async(TEXT)
            await first[-1]
            found = _since(started)
            await done[-1]
            return found

        try:
            return {"azure_neural": await _paired(adapter, bare, runs)}
        finally:
            await neural.aclose()
            await asyncio.to_thread(lambda: synthesizer.synthesizing.disconnect_all())


_WHAT = {
    "azure_openai": "request → first text event (vs bare openai SDK)",
    "tiered_policy": "caller turn → first Say, fast tier (vs the adapter's first clause)",
    "elevenlabs": "request → first PCM chunk (vs bare elevenlabs SDK)",
    "fallback_tts": "first PCM chunk through the fallback wrapper (vs ElevenLabs adapter)",
    "azure_neural": "request → first PCM chunk (vs bare Speech SDK synthesizer)",
}


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Cloud voice adapters: added time per turn, on loopback",
        "",
        f"{result['machine']}; {result['runs']} interleaved runs each after a warm-up; the "
        f"loopback servers wait {result['delay_ms']} ms before their first byte. `added` is "
        "the adapter's p50 minus the bare SDK's (or the layer below's) p50.",
        "",
        "| adapter | measured | adapter p50 / p95 ms | bare p50 / p95 ms | added p50 ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, row in result["adapters"].items():
        lines.append(
            f"| {name} | {_WHAT[name]} | {row['adapter_p50_ms']} / {row['adapter_p95_ms']} | "
            f"{row['bare_p50_ms']} / {row['bare_p95_ms']} | {row['added_p50_ms']} |"
        )
    return "\n".join(lines) + "\n"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    delay_s = args.delay_ms / 1000
    adapters: dict[str, Any] = {}
    adapters |= await bench_azure_openai(args.runs, delay_s)
    adapters |= await bench_elevenlabs(args.runs, delay_s)
    adapters |= await bench_azure_neural(args.runs, delay_s)
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "runs": args.runs,
        "delay_ms": args.delay_ms,
        "adapters": adapters,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--delay-ms", type=int, default=20)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    arguments = parser.parse_args()
    result = asyncio.run(main(arguments))
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    (arguments.out_dir / "adapters.json").write_text(json.dumps(result, indent=2) + "\n")
    (arguments.out_dir / "adapters.md").write_text(_markdown(result))
    print(_markdown(result))
