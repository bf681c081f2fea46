"""scripts/bench_latency.py and its cloud-latency stand-ins (scripts/cloud_latency.py)."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import numpy as np
import pytest
from bench_latency import markdown, percentile, run_mode, summarize
from cloud_latency import (
    LatencyProfile,
    SimulatedChat,
    SimulatedSpeechToText,
    SimulatedTextToSpeech,
)

from reddytalk.chat_events import Clause, Finished, TextDelta

FAST = LatencyProfile(
    stt_final_ms=120, llm_first_token_ms={"fast": 80, "complex": 160}, llm_tokens_per_s=400,
    tts_first_audio_ms=40,
)  # fmt: skip


def test_percentiles_are_nearest_rank_and_the_summary_skips_missing_values() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, q) for q in (0.5, 0.95, 0.99)] == [50.0, 95.0, 99.0]
    assert percentile([7.0], 0.99) == 7.0 and percentile([], 0.5) is None
    rows = [{"first_sound": 100.0, "first_content": None}, {"first_sound": 300.0}]
    summary = summarize(rows)
    assert summary["first_sound"] == {"n": 2, "p50": 100.0, "p95": 300.0, "p99": 300.0}
    assert "first_content" not in summary


def test_doubling_the_profile_doubles_every_delay_and_halves_the_rates() -> None:
    doubled = LatencyProfile().scaled(2)
    assert doubled.stt_final_ms == 2000 and doubled.tts_first_audio_ms == 250
    assert dict(doubled.llm_first_token_ms) == {"fast": 900, "complex": 1600}
    assert doubled.llm_tokens_per_s == 25


def test_the_recognizer_s_final_comes_its_delay_after_the_last_voiced_frame() -> None:
    async def main() -> tuple[str, float]:
        stt = SimulatedSpeechToText([("first line", "second line")], FAST)
        recognizer = await stt.open(sample_rate_hz=16_000)
        voiced = (np.full(320, 8000, dtype="<i2")).tobytes()
        recognizer.start_turn()
        recognizer.accept(voiced)
        spoke = time.monotonic()
        recognizer.accept(bytes(640))  # trailing silence does not move the end
        heard = await recognizer.finish_turn()
        return heard.text, (time.monotonic() - spoke) * 1000

    text, after_ms = asyncio.run(main())
    assert text == "first line"
    assert after_ms >= FAST.stt_final_ms  # never before the service would have answered


def test_the_recognizer_s_hypothesis_comes_once_an_interim_covers_the_speech() -> None:
    profile = LatencyProfile(stt_final_ms=500, stt_interim_every_ms=100, stt_interim_lag_ms=100)

    async def main() -> tuple[str, str, str, str]:
        stt = SimulatedSpeechToText([("first line",)], profile)
        recognizer = await stt.open(sample_rate_hz=16_000)
        recognizer.start_turn()
        recognizer.accept(np.full(320, 8000, dtype="<i2").tobytes())
        none_yet = recognizer.hypothesis(trailing_silence_ms=0)
        await asyncio.sleep(0.25)  # one interim arrived, covering the turn's first 100 ms
        short = recognizer.hypothesis(trailing_silence_ms=100)  # speech ran to ~150 ms
        covered = recognizer.hypothesis(trailing_silence_ms=200)  # speech ended by ~50 ms
        return none_yet, short, covered, (await recognizer.finish_turn()).text

    assert asyncio.run(main()) == ("", "", "first line", "first line")


def test_calls_opened_in_turn_get_the_scripts_in_turn() -> None:
    async def main() -> list[str]:
        stt = SimulatedSpeechToText([("a",), ("b",)], FAST)
        texts = []
        for _ in range(3):
            recognizer = await stt.open(sample_rate_hz=16_000)
            texts.append((await recognizer.finish_turn()).text)
        return texts

    assert asyncio.run(main()) == ["a", "b", "a"]


def test_the_model_streams_its_answer_in_clauses_after_its_first_token() -> None:
    async def main() -> list[object]:
        chat = SimulatedChat(FAST, answer="We accept most plans. Anything else?")
        return [e async for e in chat.stream([], tools=[], deployment="complex")]

    events = asyncio.run(main())
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "We accept most plans. Anything else?"
    assert [e.text for e in events if isinstance(e, Clause)] == [
        "We accept most plans.", "Anything else?"
    ]  # fmt: skip
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.first_token_ms is not None
    assert finished.first_token_ms >= 160  # the complex deployment's first token


def test_the_voice_marks_each_sentence_in_its_audio_and_waits_for_its_first_audio() -> None:
    tts = SimulatedTextToSpeech(FAST)

    async def main() -> tuple[bytes, float]:
        started = time.monotonic()
        chunks = tts.synthesize("One moment.", sample_rate_hz=16_000)
        first = await anext(chunks)
        waited_ms = (time.monotonic() - started) * 1000
        return first + b"".join([c async for c in chunks]), waited_ms

    pcm, waited_ms = asyncio.run(main())
    assert waited_ms >= FAST.tts_first_audio_ms
    assert len(pcm) == 16_000 * 20 * len("One moment.") // 1000 * 2
    samples = np.frombuffer(pcm, dtype="<i2")
    assert set(np.abs(samples)) == {tts.level_of("One moment.")}
    assert tts.level_of("One moment.") != tts.level_of("Okay.")


@pytest.mark.e2e
def test_a_cloud_mode_call_measures_every_stage_and_the_overhead() -> None:
    scripts = [("Do you take aetna insurance", "What are your opening hours", "No thank you")]
    # A final long after the hypothesis settles (as Azure's, 1 s), the rest fast.
    profile = dataclasses.replace(FAST, stt_final_ms=600)
    result = asyncio.run(run_mode("cloud", 1, profile=profile, scripts=scripts))

    assert result["calls"] == 1 and result["model_requests"] == 1
    assert result["outcomes"] == {"no_action": 1}  # answered, then the caller said goodbye
    turns = result["turns"]
    assert [t["tier"] for t in turns] == ["fast", "deterministic", "deterministic"]
    for turn in turns:
        # Each turn was answered on the stand-in's hypothesis, before its final came.
        assert turn["answered_on"] == "hypothesis" and turn["revision"] is None
        assert 0 < turn["end_of_turn"] <= turn["first_frame_sent"] < turn["transcript_final"]
        assert turn["first_sound"] is not None and turn["first_content"] is not None
        assert turn["waited"] >= turn["end_of_turn"]
        assert turn["overhead"] == pytest.approx(turn["first_frame_sent"] - turn["waited"])
    # The model's turn was acknowledged from the phrase cache: first sound without the
    # voice's delay, and its words came later; the code's turns spoke content first.
    model, hours, _ = turns
    assert model["waited"] == model["end_of_turn"]
    assert model["first_content"] > model["first_sound"]
    assert hours["waited"] == pytest.approx(hours["end_of_turn"] + FAST.tts_first_audio_ms)
    assert hours["first_content"] == hours["first_sound"]
    table = markdown({"machine": "m", "when": "w", "modes": [result]})
    assert "| first_sound | 3 |" in table and "| overhead | 3 |" in table
    assert "Answered on the recognizer's hypothesis: 3 of 3 turns" in table
