"""PhraseCache around an in-memory voice that counts its sentences and can be held or failed."""

from __future__ import annotations

import asyncio
import functools
import statistics
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any

import pytest

from reddytalk.errors import ProviderError
from reddytalk.providers.tts.phrase_cache import DEFAULT_PHRASES, PhraseCache

HOLD = "One moment."
OTHER = "Your appointment with Doctor Patel is on Tuesday at nine thirty."


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


def chunk(text: str, rate: int, n: int) -> bytes:
    """The voice's ``n``-th chunk for ``text`` at ``rate``: every recording is told apart."""
    return f"{text}|{rate}|{n};".encode()


def audio(text: str, rate: int = 16_000) -> bytes:
    return b"".join(chunk(text, rate, n) for n in range(3))


class FakeVoice:
    """Three chunks per sentence; counts calls, finished and closed streams.

    ``gate``: hold after the first chunk until set. ``fail``: texts whose next synthesis
    raises after the first chunk (each entry fails once).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []
        self.finished = 0
        self.closed = 0
        self.gate: asyncio.Event | None = None
        self.fail: list[str] = []
        self.called = asyncio.Event()

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        self.calls.append((text, sample_rate_hz))
        self.called.set()
        try:
            for n in range(3):
                yield chunk(text, sample_rate_hz, n)
                if n == 0 and text in self.fail:
                    self.fail.remove(text)
                    raise ProviderError("voice failed", retryable=True)
                if n == 0 and self.gate is not None:
                    await self.gate.wait()
            self.finished += 1
        finally:
            self.closed += 1


async def say(cache: PhraseCache, text: str, rate: int = 16_000) -> bytes:
    return b"".join([c async for c in cache.synthesize(text, sample_rate_hz=rate)])


@run_async
async def test_a_listed_phrase_is_synthesized_once_then_replayed() -> None:
    voice = FakeVoice()
    cache = PhraseCache(voice)
    assert [await say(cache, HOLD) for _ in range(3)] == [audio(HOLD)] * 3
    assert voice.calls == [(HOLD, 16_000)]
    assert len(cache) == 1


@run_async
async def test_each_rate_has_its_own_recording() -> None:
    voice = FakeVoice()
    cache = PhraseCache(voice)
    assert await say(cache, HOLD, 8_000) == audio(HOLD, 8_000)
    assert await say(cache, HOLD, 16_000) == audio(HOLD, 16_000)
    assert await say(cache, HOLD, 8_000) == audio(HOLD, 8_000)
    assert voice.calls == [(HOLD, 8_000), (HOLD, 16_000)]


@run_async
async def test_other_text_passes_through_every_time_unchanged_and_streamed() -> None:
    voice = FakeVoice()
    voice.gate = asyncio.Event()
    cache = PhraseCache(voice, phrases=["Goodbye."])
    text = "  Doctor  Patel, Tuesday. "  # not listed: passed exactly as given
    speech = cache.synthesize(text, sample_rate_hz=16_000)
    assert await anext(speech) == chunk(text, 16_000, 0)
    assert voice.finished == 0  # the voice is still holding the rest
    voice.gate.set()
    assert [c async for c in speech] == [chunk(text, 16_000, 1), chunk(text, 16_000, 2)]
    await say(cache, text)
    assert voice.calls == [(text, 16_000)] * 2
    assert len(cache) == 0


@run_async
async def test_the_first_synthesis_of_a_phrase_streams_to_its_caller() -> None:
    voice = FakeVoice()
    voice.gate = asyncio.Event()
    cache = PhraseCache(voice)
    speech = cache.synthesize(HOLD, sample_rate_hz=16_000)
    assert await anext(speech) == chunk(HOLD, 16_000, 0)
    assert voice.finished == 0 and len(cache) == 0
    voice.gate.set()
    assert b"".join([c async for c in speech]) == audio(HOLD)[len(chunk(HOLD, 16_000, 0)) :]
    assert len(cache) == 1


@run_async
async def test_concurrent_first_requests_synthesize_the_phrase_once() -> None:
    voice = FakeVoice()
    voice.gate = asyncio.Event()
    cache = PhraseCache(voice)
    requests = [asyncio.create_task(say(cache, HOLD)) for _ in range(3)]
    await asyncio.sleep(0)  # all three asked before the voice says more than a chunk
    voice.gate.set()
    assert await asyncio.gather(*requests) == [audio(HOLD)] * 3
    assert voice.calls == [(HOLD, 16_000)]


@run_async
async def test_a_failed_synthesis_is_not_kept_and_is_tried_again() -> None:
    voice = FakeVoice()
    voice.fail.append(HOLD)
    cache = PhraseCache(voice)
    with pytest.raises(ProviderError, match="voice failed"):
        await say(cache, HOLD)
    assert len(cache) == 0
    assert await say(cache, HOLD) == audio(HOLD)  # tried again
    assert await say(cache, HOLD) == audio(HOLD)  # now kept
    assert len(voice.calls) == 2


@run_async
async def test_a_phrase_the_consumer_stopped_is_not_kept_and_the_voice_is_closed_at_once() -> None:
    voice = FakeVoice()
    voice.gate = asyncio.Event()
    cache = PhraseCache(voice)
    speech = cache.synthesize(HOLD, sample_rate_hz=16_000)
    assert await anext(speech)
    await speech.aclose()  # type: ignore[attr-defined]  # barge-in
    assert voice.closed == 1 and voice.finished == 0
    assert len(cache) == 0
    voice.gate.set()
    assert await say(cache, HOLD) == audio(HOLD)
    assert len(voice.calls) == 2 and len(cache) == 1


@run_async
async def test_a_waiting_request_synthesizes_itself_when_the_first_is_stopped() -> None:
    voice = FakeVoice()
    voice.gate = asyncio.Event()
    cache = PhraseCache(voice)
    first = cache.synthesize(HOLD, sample_rate_hz=16_000)
    assert await anext(first)
    waiting = asyncio.create_task(say(cache, HOLD))
    await asyncio.sleep(0)
    assert len(voice.calls) == 1  # it waits for the first synthesis
    await first.aclose()  # type: ignore[attr-defined]
    voice.gate.set()
    assert await waiting == audio(HOLD)
    assert len(voice.calls) == 2


@run_async
async def test_a_cancelled_task_keeps_nothing_and_frees_the_phrase() -> None:
    voice = FakeVoice()
    voice.gate = asyncio.Event()
    cache = PhraseCache(voice)
    task = asyncio.create_task(say(cache, HOLD))
    await voice.called.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert voice.closed == 1 and len(cache) == 0
    voice.gate.set()
    assert await asyncio.wait_for(say(cache, HOLD), 1) == audio(HOLD)  # the lock is free


@run_async
async def test_warm_synthesizes_every_listed_phrase_once() -> None:
    voice = FakeVoice()
    cache = PhraseCache(voice, phrases=["Goodbye.", "One moment."])  # a duplicate
    await cache.warm(24_000)
    assert voice.calls == [(p, 24_000) for p in (*DEFAULT_PHRASES, "Goodbye.")]
    await cache.warm(24_000)
    for phrase in cache.phrases:
        assert await say(cache, phrase, 24_000) == audio(phrase, 24_000)
    assert len(voice.calls) == len(DEFAULT_PHRASES) + 1


@run_async
async def test_warm_tries_every_phrase_and_raises_the_first_failure() -> None:
    voice = FakeVoice()
    voice.fail.append(DEFAULT_PHRASES[1])
    cache = PhraseCache(voice)
    with pytest.raises(ProviderError):
        await cache.warm(16_000)
    assert len(cache) == len(DEFAULT_PHRASES) - 1
    await cache.warm(16_000)  # only the failed one is tried again
    assert voice.calls[-1] == (DEFAULT_PHRASES[1], 16_000)
    assert len(voice.calls) == len(DEFAULT_PHRASES) + 1


@run_async
async def test_the_least_recently_used_recording_is_evicted() -> None:
    voice = FakeVoice()
    a, b, c = "Alpha.", "Bravo.", "Charlie."
    cache = PhraseCache(voice, phrases=[a, b, c], max_entries=2)
    await say(cache, a)
    await say(cache, b)
    await say(cache, a)  # a is now more recent than b
    await say(cache, c)  # evicts b
    assert len(cache) == 2
    calls = len(voice.calls)
    assert await say(cache, a) == audio(a) and await say(cache, c) == audio(c)
    assert len(voice.calls) == calls  # both replayed
    assert await say(cache, b) == audio(b)
    assert voice.calls[-1] == (b, 16_000)


@run_async
async def test_whitespace_does_not_hide_a_listed_phrase() -> None:
    voice = FakeVoice()
    cache = PhraseCache(voice)
    await say(cache, HOLD)
    assert await say(cache, "  One   moment.\n") == audio(HOLD)
    assert voice.calls == [(HOLD, 16_000)]


def test_at_least_one_entry() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        PhraseCache(FakeVoice(), max_entries=0)


def test_replay_and_pass_through_overhead(capsys: pytest.CaptureFixture[str]) -> None:
    """Per sentence: a kept phrase from memory, and other text through the wrapper."""

    async def main() -> tuple[list[float], list[float], list[float]]:
        voice = FakeVoice()
        cache = PhraseCache(voice)
        await say(cache, HOLD)
        replay, through, direct = [], [], []
        for _ in range(200):
            started = time.perf_counter()
            await say(cache, HOLD)
            replay.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            await say(cache, OTHER)
            through.append((time.perf_counter() - started) * 1e6)
            started = time.perf_counter()
            b"".join([c async for c in voice.synthesize(OTHER, sample_rate_hz=16_000)])
            direct.append((time.perf_counter() - started) * 1e6)
        return replay, through, direct

    replay, through, direct = asyncio.run(main())
    with capsys.disabled():
        print(f"\nPhraseCache per sentence: replay {statistics.median(replay):.1f} µs, "
              f"pass-through {statistics.median(through):.1f} µs vs the voice alone "
              f"{statistics.median(direct):.1f} µs")  # fmt: skip
    assert statistics.median(replay) < 1_000  # a regression guard, not a benchmark
