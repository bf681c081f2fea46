"""``scripts/bench_latency``: end of the caller's words → first sound of the answer, per turn.

Scripted calls go through the media worker's real WebSocket protocol on loopback (the
media worker in this process, its tools in process; ``scripts/local_caller.py`` is the
caller, speaking with espeak-ng in real time and recording what comes back). Modes:

* ``embedded``: the embedded engines (pocketsphinx, the deterministic policy, espeak-ng);
* ``cloud``: the cloud profile's pipeline (the tiered policy) on the latency-injecting
  stand-ins of ``scripts/cloud_latency.py`` (Azure Speech's final 1 s after the end of
  speech, the fast model's first token at 450 ms, the voice's first audio at 125 ms);
* ``cloud-x2``: the same with every delay doubled.

Per turn, from the media worker's own timings (ms after the end of the caller's speech):
end of turn decided, transcript final, first policy text, first TTS audio, first frame
sent; and from the caller's side: **first sound** (the first non-silent frame) and, in
the cloud modes, **first content** (the first frame of a sentence that is not an
acknowledgement such as "Let me check."; the stand-in voice marks each sentence in its
audio). A turn is answered on the recognizer's settled hypothesis when it has one
(``answered_on``), else on its final transcript.

In the cloud modes the pipeline's own **overhead** is the first frame sent minus what
the turn had to wait for (``waited``): the wait before it could be answered (its end of
turn when answered on its hypothesis, else its final transcript), the voice's first
audio unless the first sentence came from the phrase cache, the model's first clause
when the first sound was a model's words, and the tools its first words waited on
(``tool_wait``: the EHR's look-ups, in process here; over FHIR they are the EHR's
latency, which no stand-in injects). Both are the worker's own clock from the end
of speech its VAD found, so the caller's timer jitter stays out of it; the caller's
first sound counts from where its own audio fell below -55 dBFS, up to ~60 ms later than
the VAD (espeak-ng's quiet tails). The stand-in voice sits in the phrase cache, as the
composition builds the cloud voices; the worker is always warm, so the bench warms the
cache before the calls (a cold worker pays one synthesis per phrase on first use).

    scripts/bench_latency [--modes embedded,cloud,cloud-x2] [--calls 6] [--out-dir DIR]

Prints a table and writes ``latency.json`` and ``latency.md`` to ``--out-dir``
(``bench/results``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import math
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

import uvicorn  # noqa: E402
from cloud_latency import (  # noqa: E402
    LatencyProfile,
    SimulatedChat,
    SimulatedSpeechToText,
    SimulatedTextToSpeech,
)
from local_caller import CallReport, Scenario, Step, load_scenario, place_call  # noqa: E402
from starlette.applications import Starlette  # noqa: E402

from media_worker.__main__ import server_config  # noqa: E402
from media_worker.app import create_app  # noqa: E402
from reddytalk.calls.back_office import LocalBackOffice  # noqa: E402
from reddytalk.calls.service import Receptionist  # noqa: E402
from reddytalk.chat_events import ClauseCutter  # noqa: E402
from reddytalk.composition import (  # noqa: E402
    build_receptionist,
    call_tuning,
    open_embedded_records,
)
from reddytalk.dialogue.tiered import ACKNOWLEDGEMENTS as MODEL_ACKNOWLEDGEMENTS  # noqa: E402
from reddytalk.dialogue.tiered import HOLDING_PHRASE, TieredPolicy  # noqa: E402
from reddytalk.dialogue.tools import ReceptionistTools  # noqa: E402
from reddytalk.ports import DialoguePolicy  # noqa: E402
from reddytalk.providers.llm.tool_schemas import receptionist_tools  # noqa: E402
from reddytalk.providers.seed import seed_demo  # noqa: E402
from reddytalk.providers.sms.outbox import OutboxSmsSender  # noqa: E402
from reddytalk.providers.tts.phrase_cache import DEFAULT_PHRASES, PhraseCache  # noqa: E402
from reddytalk.settings import Settings  # noqa: E402
from reddytalk.workflows.activities import ActivityDeps  # noqa: E402
from reddytalk.workflows.runner import InlineRunner  # noqa: E402

STAGES = ("end_of_turn", "transcript_final", "first_policy_text", "first_tts_audio",
          "first_frame_sent")  # fmt: skip
MODEL_ANSWER = "We accept most major insurance plans. Is there anything else I can help with?"
ACKNOWLEDGEMENTS = (HOLDING_PHRASE, *MODEL_ACKNOWLEDGEMENTS)
_FRAME_16K = 640


def cloud_lines(day: str, choice: str) -> tuple[str, ...]:
    """A booking call that first asks what code does not understand (the fast model
    answers); calls placed at once ask for different days and choices, so each books
    its own slot."""
    return (
        "Do you take aetna insurance",
        "I would like to book an appointment",
        "My name is Robert Taylor",
        "March fifteenth nineteen eighty",
        "A check up",
        f"Next {day} morning",
        f"The {choice} one",
        "Yes please",
        "No thank you",
        "No thank you",
    )


CLOUD_SCRIPTS = [cloud_lines(day, choice) for day in ("Tuesday", "Wednesday", "Thursday",
                 "Friday") for choice in ("first", "second")]  # fmt: skip
DEMO_NUMBER = "+15550100200"  # the demo clinic (reddytalk.providers.seed)
# Called at once; they touch different patients and slots (as in tests/e2e).
EMBEDDED_SCENARIOS = ("book-existing-patient.yaml", "book-new-patient.yaml", "cancel.yaml")


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _cloud_receptionist(
    settings: Settings,
    profile: LatencyProfile,
    chat: SimulatedChat,
    scripts: list[tuple[str, ...]],
) -> Receptionist:
    """The cloud profile's pipeline on the stand-ins, with the embedded store and EHR."""
    records = open_embedded_records(settings, now=_utc_now)
    await seed_demo(records.store, records.ehr, today=_utc_now().date())
    deps = ActivityDeps(ehr=records.ehr, store=records.store, control=None, clock=_utc_now)
    office = LocalBackOffice(ehr=records.ehr, store=records.store, clock=_utc_now,
                             runner=InlineRunner(deps=deps),
                             sms=OutboxSmsSender(store=records.store, clock=_utc_now))  # fmt: skip
    schemas = receptionist_tools()

    def tiered(tools: ReceptionistTools) -> DialoguePolicy:
        return TieredPolicy(tools=tools, chat=chat, tool_schemas=schemas,
                            fast_deployment="fast", complex_deployment="complex")  # fmt: skip

    async def close() -> None:
        records.close()

    voice = PhraseCache(SimulatedTextToSpeech(profile))
    await voice.warm(16_000)  # the stream's rate: the bench's calls send no metadata
    return Receptionist(
        store=records.store,
        office=office,
        stt=SimulatedSpeechToText(scripts, profile),
        tts=voice,
        tuning=call_tuning(dataclasses.replace(settings, stt="azure")),  # as Azure Speech's
        policy=tiered,
        on_close=close,
    )


@contextlib.asynccontextmanager
async def _worker(
    settings: Settings, build: Callable[[], Awaitable[Receptionist]] | None
) -> AsyncIterator[tuple[str, list[Receptionist]]]:
    """The media worker in this process on a free port; its ws:// URL and receptionist."""
    built: list[Receptionist] = []

    async def keep() -> Receptionist:
        receptionist = await (build() if build else build_receptionist(settings))
        built.append(receptionist)
        return receptionist

    app = create_app(settings, build=keep)
    config = server_config(app, host="127.0.0.1", port=0)  # as production serves it
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"ws://127.0.0.1:{port}", built
    finally:
        server.should_exit = True
        await task


def _first_clause_ms(profile: LatencyProfile, deployment: str) -> float:
    """The stand-in model's first clause: its first token, then one token per 1/rate."""
    cutter = ClauseCutter()
    tokens = [MODEL_ANSWER[i : i + 4] for i in range(0, len(MODEL_ANSWER), 4)]
    for n, token in enumerate(tokens):
        if cutter.feed(token):
            return profile.llm_first_token_ms[deployment] + n * 1000 / profile.llm_tokens_per_s
    return profile.llm_first_token_ms[deployment]


def _level(frame: bytes) -> int:
    return abs(int.from_bytes(frame[:2], "little", signed=True))


def _is_content(frame: bytes) -> bool:
    acks = {SimulatedTextToSpeech.level_of(text) for text in ACKNOWLEDGEMENTS}
    return _level(frame) >= 1000 and _level(frame) not in acks


def _first_sound_level(answer_pcm: bytes) -> int | None:
    """The stand-in voice's level of the first non-silent frame (it names the sentence)."""
    for start in range(0, len(answer_pcm) - _FRAME_16K + 1, _FRAME_16K):
        if _level(answer_pcm[start : start + _FRAME_16K]) >= 1000:
            return _level(answer_pcm[start : start + _FRAME_16K])
    return None


def _overhead(
    row: dict[str, Any], first_level: int | None, profile: LatencyProfile
) -> tuple[float, float]:
    """What the turn waited for, and the rest of its first frame sent: the pipeline's own."""
    waited = row["end_of_turn"] if row["answered_on"] == "hypothesis" else row["transcript_final"]
    cached = {SimulatedTextToSpeech.level_of(text) for text in DEFAULT_PHRASES}
    if first_level not in cached:
        waited += profile.tts_first_audio_ms
    acks = {SimulatedTextToSpeech.level_of(text) for text in ACKNOWLEDGEMENTS}
    if row["tier"] in profile.llm_first_token_ms and first_level not in acks:
        waited += _first_clause_ms(profile, row["tier"])
    waited += row["tool_wait"]  # the EHR's time (in process here), not the pipeline's
    return round(waited, 1), round(row["first_frame_sent"] - waited, 1)


async def _turns_of(
    report: CallReport, receptionist: Receptionist, profile: LatencyProfile | None
) -> tuple[str, list[dict[str, Any]]]:
    """The call's outcome, and one row per caller turn: the worker's stage timings and
    the caller's figures."""
    record = None
    for _ in range(100):  # the record is kept as the call ends, just after the caller left
        record = await receptionist.store.get_call(report.call_id)
        if record is not None:
            break
        await asyncio.sleep(0.05)
    if record is None:
        raise RuntimeError(f"no call record for {report.call_id}")
    rows = []
    for turn, timings in zip(report.turns, record.turn_timings, strict=False):
        start = timings["caller_speech_end_ms"]
        row: dict[str, Any] = {
            stage: None if timings[key] is None else round(timings[key] - start, 1)
            for stage, key in zip(
                STAGES,
                (
                    "turn_end_decided_ms",
                    "transcript_final_ms",
                    "first_policy_text_ms",
                    "first_tts_audio_ms",
                    "first_frame_sent_ms",
                ),
                strict=True,
            )  # fmt: skip
        }
        row["tier"] = timings.get("tier")
        row["tool_wait"] = round(timings.get("tool_wait_ms") or 0.0, 1)
        row["answered_on"] = "hypothesis" if timings.get("early") else "final"
        row["revision"] = timings.get("revision")
        row["first_sound"] = turn.voice_to_voice_ms
        row["first_content"] = (
            None if turn.answer_first_content_s is None
            else round((turn.answer_first_content_s - turn.speech_end_s) * 1000, 1)
        )  # fmt: skip
        if profile is not None and row["first_frame_sent"] is not None:
            row["waited"], row["overhead"] = _overhead(
                row, _first_sound_level(turn.answer_pcm), profile
            )
        rows.append(row)
    return record.outcome, rows


PROFILES = {"cloud": LatencyProfile(), "cloud-x2": LatencyProfile().scaled(2)}


async def run_mode(
    mode: str,
    calls: int,
    *,
    profile: LatencyProfile | None = None,
    scripts: list[tuple[str, ...]] | None = None,
) -> dict[str, Any]:
    """Place the mode's calls; every turn's row and the mode's percentiles.

    ``profile`` and ``scripts`` replace a cloud mode's delays and callers (tests).
    """
    profile = profile or PROFILES.get(mode)
    scripts = scripts or CLOUD_SCRIPTS
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), port=0)
        chat = SimulatedChat(profile, answer=MODEL_ANSWER) if profile else None
        build = None
        if profile is not None and chat is not None:
            p, c = profile, chat

            async def build() -> Receptionist:
                return await _cloud_receptionist(settings, p, c, scripts)

        rows: list[dict[str, Any]] = []
        started = time.monotonic()
        async with _worker(settings, build) as (url, built):
            if profile is None:
                scenarios = [load_scenario(ROOT / "scenarios" / name)
                             for name in EMBEDDED_SCENARIOS]  # fmt: skip
                reports = await asyncio.gather(*(place_call(s, url=url) for s in scenarios))
            else:
                # Every caller speaks the first script aloud; the stand-in recognizer
                # hears each call's own script.
                aloud = Scenario(name="cloud-booking", dial=DEMO_NUMBER,
                                 steps=tuple(Step(line) for line in scripts[0]))  # fmt: skip
                # After "Let me check." the caller waits for the model's words as a person
                # would, rather than taking its 0.5-1.3 s of thinking as the answer's end.
                reports = await asyncio.gather(*(
                    place_call(aloud, url=url, is_content=_is_content, answer_end_gap_s=1.5)
                    for _ in range(calls)
                ))  # fmt: skip
            outcomes: dict[str, int] = {}
            for report in reports:
                outcome, turns = await _turns_of(report, built[0], profile)
                outcomes[outcome] = outcomes.get(outcome, 0) + 1
                rows += turns
        return {
            "mode": mode,
            "profile": profile.as_dict() if profile else None,
            "calls": len(reports),
            "seconds": round(time.monotonic() - started, 1),
            "outcomes": outcomes,
            "model_requests": len(chat.requests) if chat else 0,
            "summary": summarize(rows),
            "turns": rows,
        }


def percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile (nearest rank); None without values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q * len(ordered))) - 1]


def summarize(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """p50/p95/p99 of every stage and figure over the turns that have it."""
    columns = (*STAGES, "first_sound", "first_content", "tool_wait", "waited", "overhead")
    summary = {}
    for column in columns:
        values = [row[column] for row in rows if row.get(column) is not None]
        if values:
            summary[column] = {
                "n": len(values),
                **{f"p{int(q * 100)}": percentile(values, q) for q in (0.5, 0.95, 0.99)},
            }
    return summary


def markdown(result: dict[str, Any]) -> str:
    """The results as a Markdown table, a section per mode."""
    lines = [
        "# Voice-to-voice latency",
        "",
        f"{result['machine']}; {result['when']}. ms after the end of the caller's speech.",
        "",
    ]
    for mode in result["modes"]:
        turns = mode["summary"].get("first_sound", {}).get("n", 0)
        early = sum(1 for row in mode["turns"] if row.get("answered_on") == "hypothesis")
        revised = [row["revision"] for row in mode["turns"] if row.get("revision")]
        lines += [
            f"## {mode['mode']}: {mode['calls']} calls, {turns} turns, "
            f"{mode['model_requests']} model requests ({mode['seconds']} s); outcomes "
            f"{json.dumps(mode['outcomes'])}",
            "",
            f"Answered on the recognizer's hypothesis: {early} of {len(mode['turns'])} turns; "
            f"final transcript differed: {len(revised)} ({', '.join(revised) or 'none'}).",
            "",
        ]
        if mode["profile"]:
            lines += [f"Injected: `{json.dumps(mode['profile'])}`", ""]
        lines += ["| stage | n | p50 | p95 | p99 |", "| --- | --- | --- | --- | --- |"]
        for column, stats in mode["summary"].items():
            lines.append(f"| {column} | {stats['n']} | {stats['p50']} | {stats['p95']} | "
                         f"{stats['p99']} |")  # fmt: skip
        lines.append("")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    modes = []
    for mode in args.modes.split(","):
        modes.append(await run_mode(mode, args.calls))
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "modes": modes,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--modes", default="embedded,cloud,cloud-x2")
    most = len(CLOUD_SCRIPTS)
    parser.add_argument(
        "--calls", type=int, default=6, help=f"calls at once per cloud mode (at most {most})"
    )
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    arguments = parser.parse_args()
    # The event loop production runs (uvloop when installed), the callers on it too.
    loop_factory = server_config(Starlette(), host="", port=0).get_loop_factory()
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(main(arguments))
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    (arguments.out_dir / "latency.json").write_text(json.dumps(result, indent=2) + "\n")
    (arguments.out_dir / "latency.md").write_text(markdown(result))
    print(markdown(result))
