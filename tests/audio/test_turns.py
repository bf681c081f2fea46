"""End-of-turn detection on synthetic 20 ms frames at 16 kHz."""

from __future__ import annotations

import math
import random
import struct

import pytest

from reddytalk.audio.turns import SpeechEnded, SpeechStarted, TurnDetector

RATE = 16_000
FRAME_MS = 20
SAMPLES = RATE * FRAME_MS // 1000
SILENCE = bytes(SAMPLES * 2)


def _voiced_frames(count: int, *, seed: int = 7) -> list[bytes]:
    """A vowel-like signal: harmonics of 150 Hz with a little noise, continuous in phase."""
    rng = random.Random(seed)
    frames = []
    for f in range(count):
        samples = []
        for i in range(SAMPLES):
            t = (f * SAMPLES + i) / RATE
            value = sum(math.sin(2 * math.pi * 150 * k * t) / k for k in range(1, 11))
            value = 8000 * value / 2.0 + rng.gauss(0, 200)
            samples.append(max(-32768, min(32767, int(value))))
        frames.append(struct.pack(f"<{SAMPLES}h", *samples))
    return frames


VOICED = _voiced_frames(50)


def _verdicts(frames: list[bytes], **kwargs: int) -> list[bool]:
    """webrtcvad's frame-by-frame verdicts on the same sequence (its state included)."""
    reference = TurnDetector(**kwargs)
    return [reference.is_voiced(frame) for frame in frames]


def test_synthetic_frames_are_classified_as_expected() -> None:
    assert all(_verdicts(VOICED))
    assert not any(_verdicts([SILENCE] * 10))
    # webrtcvad's hangover (frames called speech after speech stops) is gated out by
    # energy: the first silent frame after speech is already unvoiced.
    after = _verdicts(VOICED[:20] + [SILENCE] * 20)[20:]
    assert not any(after)


def _feed(detector: TurnDetector, frames: list[bytes], start_ms: float = 0.0) -> list[tuple]:
    events = []
    for n, frame in enumerate(frames):
        at = start_ms + n * FRAME_MS
        event = detector.push(frame, at_ms=at)
        if event is not None:
            events.append((n, event))
    return events


def _last_voiced_end_ms(frames: list[bytes], start_ms: float = 0.0, **kwargs: int) -> float:
    verdicts = _verdicts(frames, **kwargs)
    last = max(n for n, voiced in enumerate(verdicts) if voiced)
    return start_ms + (last + 1) * FRAME_MS


def test_speech_starts_after_three_voiced_frames() -> None:
    detector = TurnDetector()
    frames = [SILENCE] * 5 + VOICED[:5]
    events = _feed(detector, frames)
    # Frames 5, 6, 7 are voiced; the third of them (index 7) starts speech at frame 5's start.
    assert events == [(7, SpeechStarted(at_ms=100.0))]
    assert detector.is_speaking


def test_silence_alone_never_starts_speech() -> None:
    detector = TurnDetector()
    # Zero frames with no speech before them are never voiced, so no hangover applies.
    assert _feed(detector, [SILENCE] * 50) == []
    assert not detector.is_speaking


def test_a_single_voiced_frame_does_not_start_speech() -> None:
    detector = TurnDetector()
    events = _feed(detector, [SILENCE, VOICED[0]] + [SILENCE] * 30)
    assert events == []


def test_turn_ends_after_exactly_20_unvoiced_frames() -> None:
    detector = TurnDetector()
    frames = [SILENCE] * 2 + VOICED[:10] + [SILENCE] * 40
    events = _feed(detector, frames)
    speech_end_ms = _last_voiced_end_ms(frames)
    # The last voiced frame ends no earlier than the synthetic speech (12 * 20 ms).
    assert speech_end_ms >= 240.0
    decided_index = int(speech_end_ms // FRAME_MS) + 20 - 1
    assert events == [
        (4, SpeechStarted(at_ms=40.0)),
        (decided_index, SpeechEnded(speech_end_ms=speech_end_ms, decided_ms=speech_end_ms + 400)),
    ]
    assert not detector.is_speaking


def test_nineteen_unvoiced_frames_do_not_end_the_turn() -> None:
    frames = VOICED[:5] + [SILENCE] * 40
    speech_end_ms = _last_voiced_end_ms(frames)
    detector = TurnDetector()
    events = _feed(detector, frames[: int(speech_end_ms // FRAME_MS) + 19])
    assert [type(e) for _, e in events] == [SpeechStarted]
    assert detector.is_speaking
    event = detector.push(SILENCE, at_ms=speech_end_ms + 19 * FRAME_MS)
    assert event == SpeechEnded(speech_end_ms=speech_end_ms, decided_ms=speech_end_ms + 400)


def test_configurable_shorter_silence_ends_sooner() -> None:
    frames = VOICED[:5] + [SILENCE] * 40
    speech_end_ms = _last_voiced_end_ms(frames)
    default = _feed(TurnDetector(), frames)[-1]
    shorter = _feed(TurnDetector(end_of_turn_silence_ms=200), frames)[-1]
    assert shorter[1] == SpeechEnded(speech_end_ms=speech_end_ms, decided_ms=speech_end_ms + 200)
    assert default[1] == SpeechEnded(speech_end_ms=speech_end_ms, decided_ms=speech_end_ms + 400)
    assert default[0] - shorter[0] == 10


def test_short_pauses_do_not_end_the_turn() -> None:
    detector = TurnDetector()
    pause = [SILENCE] * 15  # 300 ms < 400 ms, hangover included
    frames = VOICED[:5] + pause + VOICED[5:10] + pause + VOICED[10:15] + [SILENCE] * 40
    events = _feed(detector, frames)
    assert [type(e) for _, e in events] == [SpeechStarted, SpeechEnded]
    _, ended = events[-1]
    speech_end_ms = _last_voiced_end_ms(frames)
    assert speech_end_ms >= (5 + 15 + 5 + 15 + 5) * FRAME_MS
    assert ended == SpeechEnded(speech_end_ms=speech_end_ms, decided_ms=speech_end_ms + 400)


def test_voiced_ms_grows_with_voice_not_with_the_silence_after_it() -> None:
    detector = TurnDetector()
    assert detector.voiced_ms() == 0.0
    _feed(detector, VOICED[:3], start_ms=1000.0)
    assert detector.voiced_ms() == pytest.approx(60.0)
    _feed(detector, [SILENCE] * 10, start_ms=1060.0)  # still in the turn, not speaking
    assert detector.is_speaking
    assert detector.voiced_ms() == pytest.approx(60.0)
    _feed(detector, VOICED[3:8], start_ms=1260.0)
    assert detector.voiced_ms() == pytest.approx(360.0)
    _feed(detector, [SILENCE] * 40, start_ms=1360.0)
    assert not detector.is_speaking
    assert detector.voiced_ms() == 0.0


def test_voiced_ms_counts_frames_when_their_processing_is_late() -> None:
    """Under load the first frames of speech may be processed late; the barge-in threshold
    is still reached on the tenth voiced frame (200 ms of the caller's speech)."""
    detector = TurnDetector()
    late = [(n, 1000.0 + n * FRAME_MS + (15.0 if n < 3 else 0.0)) for n in range(10)]
    for n, at_ms in late:
        detector.push(VOICED[n], at_ms=at_ms)
        assert detector.voiced_ms() == (pytest.approx((n + 1) * FRAME_MS) if n >= 2 else 0.0)


def test_a_second_turn_starts_fresh() -> None:
    detector = TurnDetector()
    first = _feed(detector, VOICED[:4] + [SILENCE] * 40)
    second = _feed(detector, [SILENCE] * 3 + VOICED[:4] + [SILENCE] * 40, start_ms=2000.0)
    assert [type(e) for _, e in first] == [SpeechStarted, SpeechEnded]
    assert [type(e) for _, e in second] == [SpeechStarted, SpeechEnded]
    assert second[0] == (5, SpeechStarted(at_ms=2060.0))
    ended = second[1][1]
    assert ended.decided_ms - ended.speech_end_ms == 400
    assert ended.speech_end_ms >= 2140.0


@pytest.mark.parametrize("rate", [11_025, 22_050, 44_100, 24_000])
def test_unsupported_rate_raises(rate: int) -> None:
    with pytest.raises(ValueError, match="webrtcvad"):
        TurnDetector(sample_rate_hz=rate)


def test_the_turn_can_be_ended_early_from_its_silence_so_far() -> None:
    detector = TurnDetector(end_of_turn_silence_ms=400)
    for n, frame in enumerate(VOICED[:10]):
        detector.push(frame, at_ms=n * FRAME_MS)
    assert detector.silence_ms() == 0
    events = [detector.push(SILENCE, at_ms=(10 + n) * FRAME_MS) for n in range(5)]
    assert events == [None] * 5 and detector.silence_ms() == 100
    ended = detector.end_turn(at_ms=300)
    assert ended == SpeechEnded(speech_end_ms=200, decided_ms=300)
    assert not detector.is_speaking and detector.silence_ms() == 0
    # The full silence then ends nothing more, and the next speech is a new turn.
    assert all(detector.push(SILENCE, at_ms=(15 + n) * FRAME_MS) is None for n in range(25))
    with pytest.raises(RuntimeError):
        detector.end_turn(at_ms=900)
