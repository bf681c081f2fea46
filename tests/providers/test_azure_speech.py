"""Azure Speech adapter: recorded SDK event sequences, the real SDK objects, live tests.

Speech's wire protocol is not public, so the turn logic is driven with event
sequences shaped like the SDK's (text, offset and duration in 100 ns ticks), posted
from another thread exactly as the SDK callbacks post them.
"""

from __future__ import annotations

import asyncio
import functools
import os
import shutil
import subprocess
import threading
import time
import wave
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import azure.cognitiveservices.speech as speechsdk
import pytest

from reddytalk.errors import ProviderError
from reddytalk.frames import Transcript
from reddytalk.ports import RecognitionHints
from reddytalk.providers.stt.azure_speech import (
    AzureSpeechRecognizer,
    AzureSpeechToText,
    SegmentAssembler,
    canceled_error,
    post_to_loop,
)

S = 10_000_000  # ticks per second


def run_async(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an async test on a fresh event loop (the suite has no asyncio plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


async def replay(assembler: SegmentAssembler, events: list[tuple[str, tuple[object, ...]]]) -> None:
    """Post ``events`` from an SDK-like thread and wait until the loop ran them."""
    loop = asyncio.get_running_loop()

    def sdk_thread() -> None:
        for name, args in events:
            post_to_loop(loop, getattr(assembler, f"on_{name}"), *args)

    thread = threading.Thread(target=sdk_thread)
    thread.start()
    await asyncio.to_thread(thread.join)
    await asyncio.sleep(0)


@run_async
async def test_interim_then_final() -> None:
    assembler = SegmentAssembler(final_wait_ms=500)
    assembler.start_turn(at_ticks=0)
    await replay(
        assembler,
        [
            ("recognizing", ("I would", 1 * S, S)),
            ("recognized", ("I would like a visit.", 1 * S, 2 * S)),
        ],
    )
    assert await assembler.finish_turn() == Transcript("I would like a visit.")


@run_async
async def test_two_finals_in_one_turn_are_joined() -> None:
    assembler = SegmentAssembler(final_wait_ms=500)
    assembler.start_turn(at_ticks=0)
    await replay(
        assembler, [("recognized", ("Yes.", 0, S)), ("recognizing", ("at three", 2 * S, S))]
    )
    pending = assembler.finish_turn()
    assert not pending.done()  # the second segment is still open
    await replay(assembler, [("recognized", ("At three PM.", 2 * S, S))])
    assert await pending == Transcript("Yes. At three PM.")


@run_async
async def test_final_after_finish_within_the_bound() -> None:
    assembler = SegmentAssembler(final_wait_ms=500)
    assembler.start_turn(at_ticks=0)
    pending = assembler.finish_turn()  # nothing heard yet: wait for a final
    await asyncio.sleep(0.05)
    await replay(assembler, [("recognized", ("Doctor Okafor.", 0, S))])
    assert await pending == Transcript("Doctor Okafor.")


@run_async
async def test_no_result_within_the_bound_is_empty() -> None:
    assembler = SegmentAssembler(final_wait_ms=50)
    assembler.start_turn(at_ticks=0)
    started = time.perf_counter()
    assert await assembler.finish_turn() == Transcript("")
    assert time.perf_counter() - started < 0.2


@run_async
async def test_interim_only_at_the_bound_stands_in_not_final() -> None:
    assembler = SegmentAssembler(final_wait_ms=50)
    assembler.start_turn(at_ticks=0)
    await replay(assembler, [("recognizing", ("tomorrow morning", 0, S))])
    assert await assembler.finish_turn() == Transcript("tomorrow morning", is_final=False)


@run_async
async def test_the_hypothesis_is_given_once_the_results_reach_the_end_of_the_speech() -> None:
    assembler = SegmentAssembler(final_wait_ms=500)
    assembler.start_turn(at_ticks=10 * S)
    speech_end = 12 * S
    assert assembler.hypothesis(through_ticks=speech_end) == ""  # nothing heard yet
    await replay(assembler, [("recognizing", ("i would", 10 * S + S // 2, S // 2))])
    assert assembler.hypothesis(through_ticks=speech_end) == ""  # heard up to 11 s only
    # Within 100 ms of the end of the speech: the VAD and Speech place it a frame apart.
    await replay(assembler, [("recognizing", ("i would like a visit", 10 * S + S // 2,
                                              S + 4 * S // 10))])  # fmt: skip
    assert assembler.hypothesis(through_ticks=speech_end) == "i would like a visit"
    assert assembler.hypothesis(through_ticks=speech_end + S // 5) == ""  # 200 ms short
    # A closed segment and the one after it make the turn's words together.
    closed = ("recognized", ("I would like a visit.", 10 * S + S // 2, 14 * S // 10))
    await replay(assembler, [closed, ("recognizing", ("at three", 12 * S + S // 2, S // 2))])
    assert assembler.hypothesis(through_ticks=13 * S) == "I would like a visit. at three"
    pending = assembler.finish_turn()
    assert assembler.hypothesis(through_ticks=13 * S) == ""  # the turn is over
    assembler.close()
    assert pending.cancelled()


@run_async
async def test_an_earlier_turns_results_never_make_the_next_turns_hypothesis() -> None:
    assembler = SegmentAssembler(final_wait_ms=500)
    assembler.start_turn(at_ticks=0)
    first = assembler.finish_turn()
    assembler.start_turn(at_ticks=5 * S)
    await replay(assembler, [("recognizing", ("no thanks", S, 3 * S))])  # the first turn's
    assert assembler.hypothesis(through_ticks=4 * S) == ""
    assert assembler.hypothesis(through_ticks=6 * S) == ""
    assembler.close()
    assert first.cancelled()


@run_async
async def test_a_segment_without_words_ends_the_wait() -> None:
    assembler = SegmentAssembler(final_wait_ms=5_000)
    assembler.start_turn(at_ticks=0)
    pending = assembler.finish_turn()
    await replay(assembler, [("recognized", ("", 0, S))])  # NoMatch: noise, a cough
    assert await asyncio.wait_for(pending, 1) == Transcript("")


@run_async
async def test_cancel_with_an_error_fails_the_turn() -> None:
    assembler = SegmentAssembler(final_wait_ms=5_000)
    assembler.start_turn(at_ticks=0)
    pending = assembler.finish_turn()
    await replay(assembler, [("canceled", (canceled_error("ConnectionFailure"),))])
    with pytest.raises(ProviderError) as caught:
        await asyncio.wait_for(pending, 1)
    assert caught.value.retryable
    assembler.start_turn(at_ticks=2 * S)  # the recognizer is dead: later turns fail too
    with pytest.raises(ProviderError):
        await assembler.finish_turn()


def test_cancel_codes_map_to_retryable() -> None:
    assert canceled_error("ServiceTimeout").retryable
    assert canceled_error("TooManyRequests").retryable
    assert not canceled_error("AuthenticationFailure").retryable
    assert not canceled_error("Forbidden").retryable
    # Every code the SDK has gets a message without the SDK's own details.
    for code in speechsdk.CancellationErrorCode:
        assert str(canceled_error(code.name)) == f"Azure Speech recognition canceled: {code.name}"


@run_async
async def test_cancel_at_end_of_stream_is_no_error() -> None:
    assembler = SegmentAssembler(final_wait_ms=50)
    assembler.start_turn(at_ticks=0)
    await replay(assembler, [("recognized", ("Yes.", 0, S)), ("canceled", (None,))])
    assert await assembler.finish_turn() == Transcript("Yes.")


@run_async
async def test_previous_turn_events_do_not_leak_into_the_next() -> None:
    assembler = SegmentAssembler(final_wait_ms=50)
    assembler.start_turn(at_ticks=0)
    await replay(assembler, [("recognizing", ("maybe", 0, S))])
    first = await assembler.finish_turn()  # timed out on the interim
    assert first == Transcript("maybe", is_final=False)
    assembler.start_turn(at_ticks=2 * S)
    # The first turn's final arrives late, while the caller speaks again.
    await replay(
        assembler,
        [("recognized", ("Maybe Friday.", 0, S)), ("recognized", ("No, Monday.", 2 * S, S))],
    )
    assert await assembler.finish_turn() == Transcript("No, Monday.")


@run_async
async def test_next_turn_may_start_before_the_last_resolves() -> None:
    assembler = SegmentAssembler(final_wait_ms=1_000)
    assembler.start_turn(at_ticks=0)
    await replay(assembler, [("recognizing", ("one", 0, S))])
    first = assembler.finish_turn()
    assembler.start_turn(at_ticks=2 * S)
    await replay(assembler, [("recognizing", ("two", 2 * S, S)), ("recognized", ("One.", 0, S))])
    assert await first == Transcript("One.")
    await replay(assembler, [("recognized", ("Two.", 2 * S, S))])
    assert await assembler.finish_turn() == Transcript("Two.")


# -- the real SDK objects (no network needed to create them) ------------------------


def _sdk_recognizer(stream: speechsdk.audio.PushAudioInputStream, log: Path) -> object:
    config = speechsdk.SpeechConfig(subscription="not-a-key", endpoint="wss://127.0.0.1:9/stt")
    config.set_property(speechsdk.PropertyId.Speech_LogFilename, str(log))
    audio = speechsdk.audio.AudioConfig(stream=stream)
    return speechsdk.SpeechRecognizer(speech_config=config, audio_config=audio, language="en-US")


@run_async
async def test_accept_writes_frames_to_a_push_stream_without_blocking(tmp_path: Path) -> None:
    fmt = speechsdk.audio.AudioStreamFormat(
        samples_per_second=16_000, bits_per_sample=16, channels=1
    )
    stream = speechsdk.audio.PushAudioInputStream(stream_format=fmt)
    sdk_recognizer = _sdk_recognizer(stream, tmp_path / "speech.log")
    assembler = SegmentAssembler(final_wait_ms=50)
    recognizer = AzureSpeechRecognizer(
        recognizer=sdk_recognizer,
        stream=stream,
        assembler=assembler,
        sample_rate_hz=16_000,
        segmentation_silence_ms=300,
    )
    recognizer.set_hints(RecognitionHints(state="name", jsgf="", phrases=("Okafor Zyxwv",)))
    recognizer.start_turn()
    started = time.perf_counter()
    for _ in range(500):  # 10 s of audio, nobody reading it
        recognizer.accept(bytes(640))
    assert (time.perf_counter() - started) / 500 < 0.001
    # The recognizer asks for words reaching 10 s less the trailing silence it was told.
    await replay(assembler, [("recognizing", ("hello", 9 * S, S // 2))])
    assert recognizer.hypothesis(trailing_silence_ms=400) == "hello"  # through 9.6 s
    assert recognizer.hypothesis(trailing_silence_ms=200) == ""  # through 9.8 s
    assert await recognizer.finish_turn() == Transcript("hello", is_final=False)
    recognizer.start_turn()  # 10 s + the silence after the turn (400 ms)
    assert assembler._turns[-1].start_ticks == 104 * S // 10
    recognizer.close()


@run_async
async def test_hints_reach_the_phrase_list_the_sdk_sends(tmp_path: Path) -> None:
    """The SDK's trace shows the recognition context it would send (no service here)."""
    fmt = speechsdk.audio.AudioStreamFormat(
        samples_per_second=16_000, bits_per_sample=16, channels=1
    )
    stream = speechsdk.audio.PushAudioInputStream(stream_format=fmt)
    log = tmp_path / "speech.log"
    sdk_recognizer = _sdk_recognizer(stream, log)
    recognizer = AzureSpeechRecognizer(
        recognizer=sdk_recognizer,
        stream=stream,
        assembler=SegmentAssembler(final_wait_ms=50),
        sample_rate_hz=16_000,
        segmentation_silence_ms=300,
    )
    recognizer.set_hints(RecognitionHints(state="a", jsgf="", phrases=("Stale",)))
    recognizer.set_hints(RecognitionHints(state="b", jsgf="", phrases=("Okafor", "Zyxwv")))
    await asyncio.to_thread(sdk_recognizer.start_continuous_recognition_async().get)  # type: ignore[attr-defined]
    recognizer.start_turn()
    for _ in range(10):  # the SDK builds the context when audio flows
        recognizer.accept(bytes(640))
    deadline = time.monotonic() + 3
    context = ""
    while time.monotonic() < deadline and "speech.context=" not in context:
        await asyncio.sleep(0.05)
        lines = log.read_text(errors="replace").splitlines() if log.exists() else []
        context = next((line for line in lines if "speech.context=" in line), "")
    recognizer.close()
    assert '"Items":[{"Text":"Okafor"},{"Text":"Zyxwv"}]' in context
    assert "Stale" not in context


def test_settings_errors_are_provider_errors() -> None:
    with pytest.raises(ProviderError) as caught:
        AzureSpeechToText(key="k")  # neither region nor endpoint
    assert not caught.value.retryable
    with pytest.raises(ProviderError):
        AzureSpeechToText(key="k", region="westeurope", languages=())


# -- live: real Azure Speech --------------------------------------------------------

_KEY = os.environ.get("REDDYTALK_TEST_SPEECH_KEY")
_REGION = os.environ.get("REDDYTALK_TEST_SPEECH_REGION")


@pytest.mark.azure
@pytest.mark.skipif(
    not (_KEY and _REGION),
    reason="set REDDYTALK_TEST_SPEECH_KEY and REDDYTALK_TEST_SPEECH_REGION to reach Azure Speech",
)
@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
@run_async
async def test_live_recognizes_a_short_clip(tmp_path: Path) -> None:
    wav = tmp_path / "clip.wav"
    command = ["espeak-ng", "-w", str(wav), "I would like an appointment"]
    await asyncio.to_thread(subprocess.run, command, check=True)
    with wave.open(str(wav)) as clip:
        rate, pcm = clip.getframerate(), clip.readframes(clip.getnframes())
    stt = AzureSpeechToText(key=_KEY, region=_REGION, languages=("en-US", "es-US"))
    recognizer = await stt.open(sample_rate_hz=rate)
    try:
        recognizer.set_hints(RecognitionHints(state="reason", jsgf="", phrases=("appointment",)))
        recognizer.start_turn()
        frame = rate * 2 // 50
        for at in range(0, len(pcm), frame):
            recognizer.accept(pcm[at : at + frame])
            await asyncio.sleep(0.02)
        heard = await asyncio.wait_for(recognizer.finish_turn(), 5)
    finally:
        recognizer.close()
    assert "appointment" in heard.text.lower()
