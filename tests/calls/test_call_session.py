"""The per-call pipeline as scripted timelines on the ACS wire, with in-memory ports.

A fake caller streams ACS media-streaming messages in real time (one 20 ms frame
every 20 ms, as ACS does; the session counts both barge-in and end of turn in frames)
and records what the session sends back. The recognizer and the
policy are scripted; the text-to-speech double speaks each text as a square wave
of its own level, so every outbound frame tells which sentence it belongs to.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from reddytalk.audio.pcm import StreamResampler, frames_of
from reddytalk.audio.turns import TurnDetector
from reddytalk.calls.session import CallSession, CallSummary, CallTuning
from reddytalk.errors import ProviderError
from reddytalk.frames import (
    AudioFormat,
    EndCall,
    PolicyOutput,
    Say,
    ToolCall,
    Transcript,
    TransferToStaff,
)
from reddytalk.ports import RecognitionHints, SpeechRecognizer
from reddytalk.telephony import acs_media

FRAME_S = 0.020
EARLY_S = 0.002  # slack for timer wake-ups when checking "never before its slot"
AHEAD_S = CallTuning().send_ahead_ms / 1000  # how early a frame may leave (ACS queues it)
TUNING = CallTuning(
    end_of_turn_silence_ms=200,
    settled_end_of_turn_silence_ms=100,
    barge_in_ms=100,
    metadata_wait_ms=50,
    hangup_grace_ms=20,
)
SETTLED_FRAMES = TUNING.settled_end_of_turn_silence_ms // 20
END_OF_TURN_FRAMES = TUNING.end_of_turn_silence_ms // 20
TURN_VOICED_FRAMES = 6
PAUSE_FRAMES = END_OF_TURN_FRAMES - 1  # the longest pause that must not end a turn

GREETING = "Thank you for calling Reddy Family Clinic. How can I help you today?"
ASKED_HOURS = "what are your opening hours"
HOURS = "We are open Monday to Friday from eight to five."
HOURS_MORE = "On Saturdays we are open from nine to noon."
ASKED_SATURDAY = "and on saturday"
SATURDAY = "On Saturday from nine to noon."
ASKED_BIRTH = "my date of birth is march fifteenth nineteen eighty"
BIRTH_OK = "Thank you, I found your record."
GOODBYE = "Goodbye."


def _voice(frames: int, *, sample_rate_hz: int = 16_000, seed: int = 7) -> list[bytes]:
    """A vowel-like caller: harmonics of 150 Hz (150-1500 Hz), amplitude ~8000, a little noise."""
    n = sample_rate_hz // 50
    t = np.arange(frames * n) / sample_rate_hz
    signal = sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11))
    signal = 8000 * signal / 2.0 + np.random.default_rng(seed).normal(0, 200, t.size)
    pcm = np.clip(signal, -32768, 32767).astype("<i2").tobytes()
    return [pcm[i * 2 * n : (i + 1) * 2 * n] for i in range(frames)]


def _silence(frames: int, *, sample_rate_hz: int = 16_000) -> list[bytes]:
    return [bytes(sample_rate_hz // 50 * 2)] * frames


def _metadata(sample_rate_hz: int = 16_000) -> str:
    audio_format = AudioFormat(
        sample_rate_hz=sample_rate_hz, frame_bytes=acs_media.frame_bytes_for(sample_rate_hz)
    )
    return acs_media.encode_audio_metadata(audio_format, subscription_id="sub-1")


# -- the ports' doubles -----------------------------------------------------------


class ToneSpeech:
    """TextToSpeech double: each text is a square wave of its own level and set length.

    Like espeak-ng, it streams in chunks of about 100 ms (which do not line up with
    frames) much faster than real time; ``chunk_bytes`` and ``chunk_gap_s`` change that.
    """

    def __init__(
        self,
        durations_ms: dict[str, int],
        *,
        chunk_bytes: int = 3000,
        chunk_gap_s: float = 0,
        first_audio_s: float = 0.002,
    ) -> None:
        self._durations_ms = durations_ms
        self._chunk_bytes = chunk_bytes
        self._chunk_gap_s = chunk_gap_s
        self._first_audio_s = first_audio_s
        self._levels = {text: 2000 + 1000 * i for i, text in enumerate(durations_ms)}
        self.requests: list[tuple[str, int]] = []

    def pcm(self, text: str, sample_rate_hz: int) -> bytes:
        wave = np.full(sample_rate_hz * self._durations_ms[text] // 1000, self._levels[text])
        wave[1::2] *= -1
        return wave.astype("<i2").tobytes()

    def frames_in(self, text: str) -> int:
        return self._durations_ms[text] // 20

    def text_of(self, frame: bytes) -> str:
        level = abs(int.from_bytes(frame[:2], "little", signed=True))
        return next(text for text, known in self._levels.items() if known == level)

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        self.requests.append((text, sample_rate_hz))
        pcm = self.pcm(text, sample_rate_hz)
        await asyncio.sleep(self._first_audio_s)  # an engine's moment before its first audio
        for start in range(0, len(pcm), self._chunk_bytes):
            yield pcm[start : start + self._chunk_bytes]
            await asyncio.sleep(self._chunk_gap_s)


@dataclass(frozen=True)
class Hypothesis:
    """A turn's interim words, there once ``after_silence_ms`` of silence was fed (as a
    cloud recognizer's result reaches the end of the speech a moment after it ends)."""

    text: str
    after_silence_ms: int = 0


class ScriptedRecognizer:
    """SpeechRecognizer double: answers each finished turn with the next scripted text,
    ``final_s`` after the turn ends; a turn may have a scripted hypothesis first."""

    def __init__(
        self,
        transcripts: list[str],
        *,
        progress: Callable[[], int],
        hypotheses: Sequence[Hypothesis | None] = (),
        final_s: float = 0.005,
    ) -> None:
        self._transcripts = list(transcripts)
        self._hypotheses = list(hypotheses)
        self._final_s = final_s
        self.asked_after_ms: list[int] = []  # the trailing silence of each hypothesis call
        self._progress = progress
        self.turns_started = 0
        self.frames_accepted = 0
        self.finished_at: list[int] = []  # inbound messages delivered when each turn finished
        self.hint_states: list[str] = []
        self.is_closed = False

    def set_hints(self, hints: RecognitionHints) -> None:
        self.hint_states.append(hints.state)

    def start_turn(self) -> None:
        self.turns_started += 1

    def accept(self, pcm: bytes) -> None:
        assert len(pcm) == 640, "the recognizer takes whole 20 ms frames at 16 kHz"
        self.frames_accepted += 1

    def hypothesis(self, *, trailing_silence_ms: int) -> str:
        self.asked_after_ms.append(trailing_silence_ms)
        turn = len(self.finished_at)
        scripted = self._hypotheses[turn] if turn < len(self._hypotheses) else None
        if scripted is None or trailing_silence_ms < scripted.after_silence_ms:
            return ""
        return scripted.text

    def finish_turn(self) -> Awaitable[Transcript]:
        self.finished_at.append(self._progress())
        text = self._transcripts.pop(0) if self._transcripts else ""
        final: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        def resolve() -> None:
            if not final.done():  # the call may have ended first
                final.set_result(Transcript(text))

        asyncio.get_running_loop().call_later(self._final_s, resolve)
        return final

    def close(self) -> None:
        self.is_closed = True


class ScriptedPolicy:
    """DialoguePolicy double: a fixed answer per transcript, nothing for the rest."""

    def __init__(
        self,
        answers: dict[str, list[PolicyOutput | float]],
    ) -> None:
        self._answers = answers  # a float in an answer: the policy thinks that many seconds
        self.heard: list[str] = []
        self.finals: list[bool] = []
        self.last_tier: str | None = None
        self.interruptions: list[bool] = []  # ending_dropped, per reply_interrupted
        self.restored: list[int] = []  # turns heard when a checkpoint was put back

    def checkpoint(self) -> Callable[[], None]:
        turns = len(self.heard)
        return lambda: self.restored.append(turns)

    def reply_interrupted(self, *, ending_dropped: bool) -> None:
        self.interruptions.append(ending_dropped)

    def greeting(self) -> str:
        return GREETING

    def hints(self) -> RecognitionHints:
        return RecognitionHints(state=f"after-{len(self.heard)}-turns", jsgf="#JSGF V1.0;")

    async def respond(self, heard: Transcript) -> AsyncIterator[PolicyOutput]:
        self.heard.append(heard.text)
        self.finals.append(heard.is_final)
        self.last_tier = "deterministic"
        await asyncio.sleep(0.002)  # a policy takes a moment before its first words
        for output in self._answers.get(heard.text, []):
            if isinstance(output, float):
                await asyncio.sleep(output)
            else:
                yield output


# -- the wire -----------------------------------------------------------------------


@dataclass(frozen=True)
class Sent:
    """One outbound message: its PCM, or None for StopAudio."""

    at_s: float
    pcm: bytes | None
    delivered: int  # inbound messages the session had taken in by then


class Line:
    """The media WebSocket: the caller's end puts messages, the session's end sends."""

    def __init__(self) -> None:
        self._inbound: asyncio.Queue[str | None] = asyncio.Queue()
        self.on_message: Callable[[str], None] | None = None  # attached: messages pushed
        self._next_at: float | None = None
        self.delivered = 0
        self.sent: list[Sent] = []
        self.lines: list[tuple[str, str, str]] = []  # live transcript: (raw id, text, status)
        self.session: CallSession | None = None
        self.call: asyncio.Task[CallSummary] | None = None

    async def messages(self) -> AsyncIterator[str]:
        while (text := await self._inbound.get()) is not None:
            self.delivered += 1
            yield text

    async def send(self, message: str) -> None:
        if message.startswith('{"kind": "TranscriptionData"'):
            data = json.loads(message)["transcriptionData"]
            self.lines.append((data["participantRawID"], data["text"], data["resultStatus"]))
            return
        self.sent.append(Sent(time.monotonic(), acs_media.parse_outbound(message), self.delivered))

    def put(self, text: str) -> None:
        if self.on_message is not None:  # a transport's direct path: handled as it arrives
            self.delivered += 1
            self.on_message(text)
        else:
            self._inbound.put_nowait(text)

    async def stream(self, frames: list[bytes]) -> None:
        """Send frames as ACS does: one every 20 ms on an absolute schedule."""
        for frame in frames:
            now = time.monotonic()
            if self._next_at is None:
                self._next_at = now
            elif self._next_at > now:
                await asyncio.sleep(self._next_at - now)
            self.put(
                acs_media.encode_audio_data(
                    frame, timestamp="2026-11-24T10:00:00Z", participant_raw_id="4:+15550100999"
                )
            )
            self._next_at += FRAME_S

    async def until(self, predicate: Callable[[], bool], *, timeout_s: float = 3.0) -> None:
        """Wait (sending nothing) until ``predicate`` holds."""
        self._next_at = None
        deadline = time.monotonic() + timeout_s
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the call did not get there in time")
            await asyncio.sleep(0.005)

    def hang_up(self) -> None:
        self._inbound.put_nowait(None)

    # what the caller heard

    def frames(self) -> list[bytes]:
        return [s.pcm for s in self.sent if s.pcm is not None]

    def stops(self) -> int:
        return sum(1 for s in self.sent if s.pcm is None)

    def has_said(self, text: str) -> bool:
        assert self.session is not None
        return any(line[1].startswith(text) for line in self.session.summary.transcript)


class PushedMessages:
    """The line's inbound side as a transport with a direct path (``PushedInbound``)."""

    def __init__(self, line: Line) -> None:
        self._line = line

    def attach(self, on_message: Callable[[str], None]) -> bool:
        self._line.on_message = on_message
        return True

    def __aiter__(self) -> AsyncIterator[str]:
        return self._line.messages()  # only the hang-up, once attached


async def _ready(recognizer: SpeechRecognizer) -> SpeechRecognizer:
    return recognizer


def _call(
    script: Callable[[Line], Awaitable[None]],
    *,
    policy: ScriptedPolicy,
    tts: ToneSpeech,
    transcripts: Sequence[str] = (),
    tuning: CallTuning = TUNING,
    greeting_audio: Callable[[str, int], Awaitable[bytes]] | None = None,
    hypotheses: Sequence[Hypothesis | None] = (),
    final_s: float = 0.005,
    push: bool = False,
    recognizer: ScriptedRecognizer | None = None,
    live_transcript: bool = False,
) -> tuple[CallSummary, Line, ScriptedRecognizer]:
    """Run one call: the session on one end of a line, ``script`` on the other; with
    ``push`` the line pushes its messages (a transport's direct path)."""
    line = Line()
    recognizer = recognizer or ScriptedRecognizer(
        list(transcripts), progress=lambda: line.delivered, hypotheses=hypotheses,
        final_s=final_s,
    )  # fmt: skip

    async def main() -> CallSummary:
        line.session = CallSession(
            policy=policy,
            recognizer=_ready(recognizer),
            tts=tts,
            greeting_audio=greeting_audio,
            tuning=tuning,
            live_transcript=live_transcript,
        )
        inbound = PushedMessages(line) if push else line.messages()
        line.call = asyncio.create_task(line.session.run(inbound, line.send))
        try:
            await script(line)
        finally:
            line.hang_up()
        return await asyncio.wait_for(line.call, 5)

    return asyncio.run(main()), line, recognizer


async def _greeted(line: Line) -> None:
    line.put(_metadata())
    await line.until(lambda: line.has_said(GREETING))


async def _turn(line: Line) -> None:
    await line.stream(_voice(TURN_VOICED_FRAMES) + _silence(END_OF_TURN_FRAMES))


# -- the tests ------------------------------------------------------------------------


def test_the_synthetic_caller_is_speech_to_the_turn_detector() -> None:
    detector = TurnDetector()
    assert all(detector.is_voiced(frame) for frame in _voice(30))
    assert not any(detector.is_voiced(frame) for frame in _silence(10))
    # At 24 kHz too, once resampled to 16 kHz as one stream and cut into 20 ms frames.
    to_16k = StreamResampler(from_hz=24_000, to_hz=16_000)
    pcm16 = b"".join(to_16k.push(frame) for frame in _voice(20, sample_rate_hz=24_000))
    frames16 = frames_of(pcm16[: len(pcm16) // 640 * 640], 640)
    assert len(frames16) >= 15
    assert all(TurnDetector().is_voiced(frame) for frame in frames16)


@pytest.mark.parametrize("is_cached", [False, True], ids=["synthesized", "cached"])
def test_greeting_goes_out_as_paced_frames_in_the_announced_format(is_cached: bool) -> None:
    tts = ToneSpeech({GREETING: 300})
    cache_requests: list[tuple[str, int]] = []

    async def greeting_audio(text: str, sample_rate_hz: int) -> bytes:
        cache_requests.append((text, sample_rate_hz))
        return tts.pcm(text, sample_rate_hz)

    metadata_at: list[float] = []

    async def script(line: Line) -> None:
        await asyncio.sleep(0.03)  # ACS's AudioMetadata arrives a moment after the stream opens
        metadata_at.append(time.monotonic())
        line.put(_metadata(24_000))
        await line.until(lambda: line.has_said(GREETING))

    summary, line, _ = _call(
        script,
        policy=ScriptedPolicy({}),
        tts=tts,
        tuning=CallTuning(metadata_wait_ms=2000),
        greeting_audio=greeting_audio if is_cached else None,
    )

    frames = line.frames()
    assert line.stops() == 0
    assert len(frames) == 15
    assert {len(frame) for frame in frames} == {960}  # 20 ms at 24 kHz, not ACS's 16 kHz default
    assert b"".join(frames) == tts.pcm(GREETING, 24_000)
    if is_cached:
        assert cache_requests == [(GREETING, 24_000)] and tts.requests == []
    else:
        assert tts.requests == [(GREETING, 24_000)] and cache_requests == []
    assert line.sent[0].at_s >= metadata_at[0]
    # Paced in real time: frame n never leaves before n * 20 ms after the first, less
    # the allowed send-ahead.
    for n, sent in enumerate(line.sent):
        assert sent.at_s - line.sent[0].at_s >= n * FRAME_S - AHEAD_S - EARLY_S
    assert summary.transcript == [("receptionist", GREETING)]
    assert summary.greeting_first_frame_ms is not None
    assert summary.turns == [] and summary.barge_ins == 0


def test_greeting_falls_back_to_16_khz_when_no_metadata_comes() -> None:
    tts = ToneSpeech({GREETING: 100})

    async def script(line: Line) -> None:
        await line.until(lambda: line.has_said(GREETING))

    summary, line, _ = _call(script, policy=ScriptedPolicy({}), tts=tts)

    assert tts.requests == [(GREETING, 16_000)]
    assert [len(frame) for frame in line.frames()] == [640] * 5
    assert summary.transcript == [("receptionist", GREETING)]


def test_silence_of_the_configured_length_ends_the_turn_and_a_shorter_pause_does_not() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await line.stream(
            _voice(6) + _silence(PAUSE_FRAMES) + _voice(6) + _silence(END_OF_TURN_FRAMES)
        )
        await line.until(lambda: line.has_said(HOURS))

    summary, line, recognizer = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS])

    # One turn, closed on exactly its last silent frame (metadata, 6, 9, 6, 10 messages),
    # not during the 180 ms pause.
    assert recognizer.turns_started == 1
    assert recognizer.finished_at == [1 + 6 + PAUSE_FRAMES + 6 + END_OF_TURN_FRAMES]
    # Everything from the start of speech (the 3 voiced frames that started it, as
    # pre-roll) to the frame before the turn ended reached the recognizer.
    assert recognizer.frames_accepted == 6 + PAUSE_FRAMES + 6 + END_OF_TURN_FRAMES - 1
    assert policy.heard == [ASKED_HOURS]
    answer = [frame for frame in line.frames() if tts.text_of(frame) == HOURS]
    assert b"".join(answer) == tts.pcm(HOURS, 16_000)
    assert summary.transcript == [
        ("receptionist", GREETING),
        ("caller", ASKED_HOURS),
        ("receptionist", HOURS),
    ]
    assert len(summary.turns) == 1
    assert line.stops() == 0 and summary.barge_ins == 0
    assert recognizer.is_closed
    # Hints are set when the recognizer opens and again after each answered turn.
    assert recognizer.hint_states == ["after-0-turns", "after-1-turns"]


def test_each_turn_records_monotonic_stage_timings() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 100, SATURDAY: 100})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)], ASKED_SATURDAY: [Say(SATURDAY)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await _turn(line)
        await line.until(lambda: line.has_said(SATURDAY))

    summary, _, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ASKED_SATURDAY])

    assert [t.turn for t in summary.turns] == [1, 2]
    previous_frame_ms = summary.greeting_first_frame_ms
    assert previous_frame_ms is not None
    for timings in summary.turns:
        stages = [
            timings.caller_speech_end_ms,
            timings.turn_end_decided_ms,
            timings.transcript_final_ms,
            timings.first_policy_text_ms,
            timings.first_tts_audio_ms,
            timings.first_frame_sent_ms,
        ]
        times = [stage for stage in stages if stage is not None]
        assert len(times) == len(stages), timings
        assert times == sorted(times), timings
        assert times[0] > previous_frame_ms  # the caller spoke after hearing the last answer
        # Speech ends at the last voiced frame, not when the silence after it was
        # judged long enough (loose bound: frames arrive in real time, give or take
        # the event loop's delays).
        assert times[1] - times[0] >= TUNING.end_of_turn_silence_ms / 2
        assert not timings.was_interrupted
        previous_frame_ms = times[-1]
    durations = summary.turns[0].stage_durations_ms()
    assert all(value is not None and value >= 0 for value in durations.values()), durations


def test_first_content_is_the_first_frame_after_any_filler() -> None:
    """A cached "Let me check." is first sound, not first content; without a filler the
    first frame is both."""
    filler = "Let me check."
    tts = ToneSpeech({GREETING: 60, filler: 40, HOURS: 100, SATURDAY: 100})
    policy = ScriptedPolicy({
        ASKED_HOURS: [Say(filler, is_filler=True), 0.2, Say(HOURS)],
        ASKED_SATURDAY: [Say(SATURDAY)],
    })  # fmt: skip

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await _turn(line)
        await line.until(lambda: line.has_said(SATURDAY))

    summary, _, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ASKED_SATURDAY])

    filled, plain = summary.turns
    assert filled.first_frame_sent_ms is not None and filled.first_content_sent_ms is not None
    # The content waited for the policy's 200 ms of thought behind the filler.
    assert filled.first_content_sent_ms - filled.first_frame_sent_ms >= 150
    assert plain.first_content_sent_ms == plain.first_frame_sent_ms is not None
    assert filled.stage_durations_ms()["first_content_sent"] is not None


BARGE_IN_FRAMES = 10
TURN_MESSAGES = TURN_VOICED_FRAMES + END_OF_TURN_FRAMES


async def _barge_in_over_hours(line: Line) -> None:
    """Ask for the hours, talk over the answer once five frames of it went out."""
    await _greeted(line)
    await _turn(line)
    await line.until(lambda: len(line.frames()) >= 3 + 5)  # greeting + 5 frames of the answer
    await line.stream(_voice(BARGE_IN_FRAMES) + _silence(END_OF_TURN_FRAMES))
    await line.until(lambda: line.has_said(SATURDAY))


BargeIn = tuple[CallSummary, Line, ToneSpeech]


@pytest.fixture(scope="module")
def barge_in_call() -> BargeIn:
    """One call with a barge-in, shared by the tests that look at it (it takes ~1 s)."""
    tts = ToneSpeech({GREETING: 60, HOURS: 600, HOURS_MORE: 400, SATURDAY: 100})
    policy = ScriptedPolicy(
        {ASKED_HOURS: [Say(HOURS), Say(HOURS_MORE)], ASKED_SATURDAY: [Say(SATURDAY)]}
    )
    summary, line, _ = _call(
        _barge_in_over_hours, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ASKED_SATURDAY]
    )
    return summary, line, tts


def test_caller_speech_over_an_answer_stops_it_once_and_drops_what_was_not_sent(
    barge_in_call: BargeIn,
) -> None:
    summary, line, tts = barge_in_call

    assert line.stops() == 1
    assert summary.barge_ins == 1
    heard = [tts.text_of(frame) for frame in line.frames()]
    assert 5 <= heard.count(HOURS) < tts.frames_in(HOURS)
    assert heard.count(HOURS_MORE) == 0  # synthesized ahead, never sent
    assert heard.count(SATURDAY) == tts.frames_in(SATURDAY)
    stop = next(n for n, sent in enumerate(line.sent) if sent.pcm is None)
    assert [tts.text_of(s.pcm) for s in line.sent[:stop] if s.pcm].count(HOURS) >= 5
    assert all(tts.text_of(s.pcm) == SATURDAY for s in line.sent[stop + 1 :] if s.pcm)
    # StopAudio went out once the caller had spoken barge_in_ms over the answer, counted
    # from the first voiced frame: not before the 5th of the 10 voiced frames, and
    # while the caller was still speaking.
    caller_frames_before_stop = line.sent[stop].delivered - (1 + TURN_MESSAGES)
    assert TUNING.barge_in_ms // 20 <= caller_frames_before_stop <= BARGE_IN_FRAMES
    # The interrupted sentence is recorded as such; the one never started is not recorded.
    assert summary.transcript == [
        ("receptionist", GREETING),
        ("caller", ASKED_HOURS),
        ("receptionist", f"{HOURS} [interrupted]"),
        ("caller", ASKED_SATURDAY),
        ("receptionist", SATURDAY),
    ]
    assert [t.turn for t in summary.turns] == [1, 2]


def test_no_frame_of_an_interrupted_answer_follows_stop_audio(barge_in_call: BargeIn) -> None:
    _, line, tts = barge_in_call

    stop = next(n for n, sent in enumerate(line.sent) if sent.pcm is None)
    after = [tts.text_of(s.pcm) for s in line.sent[stop + 1 :] if s.pcm is not None]
    assert HOURS not in after


def test_the_interrupted_turn_is_flagged_in_its_timings(barge_in_call: BargeIn) -> None:
    summary, _, _ = barge_in_call

    assert [t.was_interrupted for t in summary.turns] == [True, False]


def _answer_with_noise_over_it(noise: list[bytes]) -> tuple[CallSummary, Line, ToneSpeech]:
    tts = ToneSpeech({GREETING: 60, HOURS: 500})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: len(line.frames()) >= 3 + 5)
        # ACS keeps streaming after a noise: silence follows it, longer than a turn's end.
        await line.stream(noise + _silence(END_OF_TURN_FRAMES + 2))
        await line.until(lambda: line.has_said(HOURS))

    summary, line, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS])
    return summary, line, tts


def test_a_click_over_an_answer_does_not_stop_it() -> None:
    summary, line, tts = _answer_with_noise_over_it(_voice(2))  # 40 ms

    assert line.stops() == 0 and summary.barge_ins == 0
    heard = [tts.text_of(frame) for frame in line.frames()]
    assert heard.count(HOURS) == tts.frames_in(HOURS)
    assert ("receptionist", HOURS) in summary.transcript
    assert len(summary.turns) == 1


def test_noise_shorter_than_the_barge_in_threshold_does_not_stop_an_answer() -> None:
    summary, line, tts = _answer_with_noise_over_it(_voice(4))  # 80 ms < 100 ms

    assert line.stops() == 0 and summary.barge_ins == 0
    heard = [tts.text_of(frame) for frame in line.frames()]
    assert heard.count(HOURS) == tts.frames_in(HOURS)


def test_malformed_messages_are_skipped_without_logging_their_content(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    tts = ToneSpeech({GREETING: 60, BIRTH_OK: 100})
    policy = ScriptedPolicy({ASKED_BIRTH: [Say(BIRTH_OK)]})
    voiced = _voice(1, seed=11)[0]
    payload = base64.b64encode(voiced).decode("ascii")
    short_payload = base64.b64encode(voiced[:320]).decode("ascii")
    audio = acs_media.encode_audio_data(voiced, timestamp="t", participant_raw_id="p")
    malformed = [
        audio[:-20],  # bad JSON: cut short
        '{"kind": "Transcription", "transcriptionData": {"text": "' + ASKED_BIRTH + '"}}',
        '{"Kind": "AudioData", "AudioData": {"Data": "' + payload + '"}}',  # outbound casing
        '{"kind": "AudioData", "audioData": {"data": "%%' + payload[2:] + '"}}',  # bad base64
        acs_media.encode_audio_data(voiced[:320], timestamp="t", participant_raw_id="p"),
        "[1, 2, 3]",
    ]

    async def script(line: Line) -> None:
        await _greeted(line)
        await line.stream(_voice(5))
        for text in malformed[:3]:
            line.put(text)
        await line.stream(_voice(5))
        for text in malformed[3:]:
            line.put(text)
        await line.stream(_silence(END_OF_TURN_FRAMES))
        await line.until(lambda: line.has_said(BIRTH_OK))

    summary, line, recognizer = _call(script, policy=policy, tts=tts, transcripts=[ASKED_BIRTH])

    assert summary.malformed_messages == len(malformed)
    assert recognizer.finished_at == [1 + 10 + len(malformed) + END_OF_TURN_FRAMES]
    assert policy.heard == [ASKED_BIRTH]
    assert [tts.text_of(frame) for frame in line.frames()].count(BIRTH_OK) == 5
    assert summary.transcript[-1] == ("receptionist", BIRTH_OK)
    skipped = [r for r in caplog.records if r.getMessage().startswith("skipped a malformed")]
    assert len(skipped) == len(malformed)
    logged = "\n".join(record.getMessage() for record in caplog.records)
    for secret in (payload[8:40], short_payload[8:40], ASKED_BIRTH, "march", BIRTH_OK, GREETING):
        assert secret not in logged


def test_a_goodbye_plays_out_and_then_the_session_hangs_up() -> None:
    tts = ToneSpeech({GREETING: 60, GOODBYE: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(GOODBYE), EndCall()]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.call is not None and line.call.done())

    summary, line, recognizer = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS])

    assert summary.ending == "completed"
    assert [tts.text_of(frame) for frame in line.frames()].count(GOODBYE) == 10
    assert summary.transcript[-1] == ("receptionist", GOODBYE)
    assert recognizer.is_closed


def test_a_caller_streaming_at_24_khz_is_heard() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 100})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        line.put(_metadata(24_000))
        await line.until(lambda: line.has_said(GREETING))
        await line.stream(
            _voice(10, sample_rate_hz=24_000)
            + _silence(END_OF_TURN_FRAMES + 2, sample_rate_hz=24_000)
        )
        await asyncio.sleep(0.1)

    _, _, recognizer = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS])

    # The same audio, resampled to 16 kHz as one stream, is voiced frame by frame (see
    # the first test), so the turn detector would start and end this turn.
    assert recognizer.frames_accepted > 0
    assert recognizer.turns_started == 1
    assert policy.heard == [ASKED_HOURS]


def test_frames_stay_paced_when_speech_streams_in_small_chunks() -> None:
    tts = ToneSpeech({GREETING: 200}, chunk_bytes=640, chunk_gap_s=0.005)  # 4x real time

    async def script(line: Line) -> None:
        line.put(_metadata())
        await line.until(lambda: line.has_said(GREETING))

    _, line, _ = _call(script, policy=ScriptedPolicy({}), tts=tts)

    assert len(line.frames()) == 10
    for n, sent in enumerate(line.sent):
        assert sent.at_s - line.sent[0].at_s >= n * FRAME_S - AHEAD_S - EARLY_S


# -- answering on the recognizer's hypothesis -------------------------------------------

ASKED_HOURS_SPOKEN = "What are your opening hours?"  # the final's form of ASKED_HOURS
ASKED_SATURDAY_TOO = "what are your opening hours on saturday"


def _frames_of(line: Line, tts: ToneSpeech, text: str) -> int:
    return sum(1 for frame in line.frames() if tts.text_of(frame) == text)


def test_a_settled_hypothesis_ends_the_turn_early_and_is_answered_before_the_final() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await asyncio.sleep(0.25)  # the final comes 300 ms after the turn ended

    summary, line, recognizer = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_HOURS_SPOKEN],
        hypotheses=[Hypothesis(ASKED_HOURS, after_silence_ms=120)], final_s=0.3,
    )  # fmt: skip

    # Asked from the settled silence (100 ms) on; the words covered the speech at 120 ms,
    # so the turn ended on the 6th silent frame, not the 10th.
    assert recognizer.asked_after_ms[:2] == [100, 120]
    assert recognizer.finished_at == [1 + TURN_VOICED_FRAMES + 6]
    (timings,) = summary.turns
    assert timings.turn_end_decided_ms is not None and timings.caller_speech_end_ms is not None
    # The frame is pinned above; on the wall clock, 6 frames of real-time streaming give
    # or take the event loop's jitter (1 ms was too tight: a CI run measured 121.07).
    silence_ms = timings.turn_end_decided_ms - timings.caller_speech_end_ms
    assert silence_ms == pytest.approx(120, abs=15)
    assert silence_ms < TUNING.end_of_turn_silence_ms  # ended before the full silence
    assert policy.heard == [ASKED_HOURS] and policy.finals == [False]
    assert timings.first_frame_sent_ms is not None and timings.transcript_final_ms is not None
    assert timings.first_frame_sent_ms < timings.transcript_final_ms  # answered first
    assert timings.early and timings.revision is None and policy.restored == []
    assert _frames_of(line, tts, HOURS) == tts.frames_in(HOURS)
    # The record keeps the final's words.
    assert summary.transcript == [
        ("receptionist", GREETING),
        ("caller", ASKED_HOURS_SPOKEN),
        ("receptionist", HOURS),
    ]


def test_a_hypothesis_that_stops_mid_sentence_waits_for_the_full_silence() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 100})
    unfinished = "what are your opening hours and"
    policy = ScriptedPolicy({unfinished: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))

    summary, _, recognizer = _call(
        script, policy=policy, tts=tts, transcripts=[unfinished],
        hypotheses=[Hypothesis(unfinished)],
    )  # fmt: skip

    assert recognizer.finished_at == [1 + TURN_VOICED_FRAMES + END_OF_TURN_FRAMES]
    # Once the full silence ended the turn, its hypothesis is still answered at once.
    assert policy.heard == [unfinished] and policy.finals == [False]
    assert summary.turns[0].early


@pytest.mark.parametrize(
    "still", ["thinking", "synthesizing"], ids=["policy-thinking", "speech-synthesizing"]
)
def test_a_final_with_other_words_withdraws_an_unheard_answer_and_answers_the_final(
    still: str,
) -> None:
    # The final (50 ms after the turn) comes while the policy still thinks about the
    # hypothesis, or while its answer is being synthesized.
    thinking: list[PolicyOutput | float] = [0.2] if still == "thinking" else []
    tts = ToneSpeech(
        {GREETING: 60, HOURS: 200, SATURDAY: 200},
        first_audio_s=0.2 if still == "synthesizing" else 0.002,
    )
    policy = ScriptedPolicy({
        ASKED_HOURS: [*thinking, Say(HOURS), EndCall()],
        ASKED_SATURDAY_TOO: [Say(SATURDAY)],
    })  # fmt: skip

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(SATURDAY))
        await asyncio.sleep(0.3)  # whatever was withdrawn would have played by now

    summary, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_SATURDAY_TOO],
        hypotheses=[Hypothesis(ASKED_HOURS)], final_s=0.05,
    )  # fmt: skip

    assert policy.heard == [ASKED_HOURS, ASKED_SATURDAY_TOO]
    assert policy.finals == [False, True]
    assert policy.restored == [0]  # no tool ran: the policy's state was put back
    assert policy.interruptions == []
    assert _frames_of(line, tts, HOURS) == 0
    assert _frames_of(line, tts, SATURDAY) == tts.frames_in(SATURDAY)
    assert summary.ending == "caller_hung_up"  # the withdrawn answer's EndCall went too
    (timings,) = summary.turns
    assert timings.early and timings.revision == "withdrawn"
    assert summary.transcript == [
        ("receptionist", GREETING),
        ("caller", ASKED_SATURDAY_TOO),
        ("receptionist", SATURDAY),
    ]
    assert line.stops() == 0 and summary.barge_ins == 0


def test_a_final_with_other_words_after_the_answer_was_heard_keeps_it() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200, SATURDAY: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)], ASKED_SATURDAY_TOO: [Say(SATURDAY)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await asyncio.sleep(0.2)  # the final (300 ms) comes after the answer began

    summary, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_SATURDAY_TOO],
        hypotheses=[Hypothesis(ASKED_HOURS)], final_s=0.3,
    )  # fmt: skip

    assert policy.heard == [ASKED_HOURS] and policy.restored == []
    assert _frames_of(line, tts, HOURS) == tts.frames_in(HOURS)
    assert _frames_of(line, tts, SATURDAY) == 0
    (timings,) = summary.turns
    assert timings.revision == "kept"
    assert ("caller", ASKED_SATURDAY_TOO) in summary.transcript


def test_a_withdrawn_answer_whose_tool_ran_keeps_the_result_and_tells_the_policy() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200, SATURDAY: 200})
    looked_up = ToolCall("find_slots", {"day": "saturday"}, {"slots": 2})
    policy = ScriptedPolicy({
        ASKED_HOURS: [looked_up, 0.2, Say(HOURS)],
        ASKED_SATURDAY_TOO: [Say(SATURDAY)],
    })  # fmt: skip

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(SATURDAY))

    summary, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_SATURDAY_TOO],
        hypotheses=[Hypothesis(ASKED_HOURS)], final_s=0.05,
    )  # fmt: skip

    assert summary.tool_calls == [looked_up]
    assert policy.restored == []  # a tool ran: its result stays in the conversation
    assert policy.interruptions == [False]  # and the policy knows its reply went unheard
    assert policy.heard == [ASKED_HOURS, ASKED_SATURDAY_TOO]
    assert _frames_of(line, tts, HOURS) == 0
    assert summary.turns[0].revision == "withdrawn"


def test_the_wait_on_tools_before_the_first_words_is_recorded_apart() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 100})
    looked_up = ToolCall("find_slots", {}, {"slots": 2})
    policy = ScriptedPolicy({ASKED_HOURS: [0.1, looked_up, Say(HOURS), 0.05, looked_up]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))

    summary, _, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS])

    (timings,) = summary.turns
    # The look-up before the first words (100 ms, plus the double's 2 ms) counts; the
    # one after them does not: the caller was already hearing the answer.
    assert timings.tool_wait_ms == pytest.approx(102, abs=15)
    assert timings.first_policy_text_ms is not None and timings.transcript_final_ms is not None
    assert timings.first_policy_text_ms - timings.transcript_final_ms >= timings.tool_wait_ms


# -- a transport that pushes its messages ---------------------------------------------


@pytest.mark.parametrize("push", [False, True], ids=["iterated", "pushed"])
def test_a_pushed_stream_is_heard_exactly_as_an_iterated_one(push: bool) -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        line.put("not json")
        await line.stream(
            _voice(6) + _silence(PAUSE_FRAMES) + _voice(6) + _silence(END_OF_TURN_FRAMES)
        )
        await line.until(lambda: line.has_said(HOURS))

    summary, line, recognizer = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_HOURS], push=push
    )

    assert (line.on_message is not None) is push
    if push:  # a transport may push a moment after the call ended: nothing happens
        line.put("not json")
        assert summary.malformed_messages == 1
    assert recognizer.finished_at == [2 + 6 + PAUSE_FRAMES + 6 + END_OF_TURN_FRAMES]
    assert recognizer.frames_accepted == 6 + PAUSE_FRAMES + 6 + END_OF_TURN_FRAMES - 1
    assert summary.malformed_messages == 1
    assert summary.transcript == [
        ("receptionist", GREETING),
        ("caller", ASKED_HOURS),
        ("receptionist", HOURS),
    ]


class BrokenRecognizer(ScriptedRecognizer):
    def accept(self, pcm: bytes) -> None:
        raise RuntimeError("the recognizer broke")


@pytest.mark.parametrize("push", [False, True], ids=["iterated", "pushed"])
def test_a_failure_on_a_message_ends_the_call_with_its_error_either_way(push: bool) -> None:
    tts = ToneSpeech({GREETING: 60})

    async def script(line: Line) -> None:
        await _greeted(line)
        await line.stream(_voice(6))
        await asyncio.sleep(0.2)

    broken = BrokenRecognizer([], progress=lambda: 0)
    with pytest.raises(ExceptionGroup) as raised:
        _call(script, policy=ScriptedPolicy({}), tts=tts, push=push, recognizer=broken)
    assert raised.group_contains(RuntimeError, match="the recognizer broke")


WAITING = dataclasses.replace(TUNING, wait_for_words_ms=100)  # a cloud recognizer's lag


@pytest.mark.parametrize("words_after_ms", [260, None], ids=["words-come", "words-never-come"])
def test_past_the_full_silence_a_turn_waits_a_little_for_words_then_for_the_final(
    words_after_ms: int | None,
) -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 100})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await line.stream(_voice(TURN_VOICED_FRAMES) + _silence(END_OF_TURN_FRAMES + 5))
        await line.until(lambda: line.has_said(HOURS))

    hypotheses = [None if words_after_ms is None else Hypothesis(ASKED_HOURS, words_after_ms)]
    summary, _, recognizer = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_HOURS], tuning=WAITING,
        hypotheses=hypotheses,
    )  # fmt: skip

    # The full silence (200 ms, 10 frames) passed without words; they came at 260 ms
    # (13 frames), or the turn ended at the end of the wait (300 ms) without them.
    silent_frames = 13 if words_after_ms else 15
    assert recognizer.finished_at == [1 + TURN_VOICED_FRAMES + silent_frames]
    (timings,) = summary.turns
    assert timings.early is (words_after_ms is not None)
    assert policy.finals == [words_after_ms is None]


def test_synthesis_runs_ahead_of_playback_only_as_far_as_the_lead() -> None:
    # A 2 s answer from a voice 50 times faster than real time, in chunks of ~5 frames.
    tts = ToneSpeech({GREETING: 60, HOURS: 2000})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})
    tuning = dataclasses.replace(TUNING, synthesis_lead_ms=200)

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS), timeout_s=5)

    summary, line, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS],
                             tuning=tuning)  # fmt: skip

    assert summary.frames_ahead_max == 200 // 20  # never more than the lead waited to go out
    answer = [s for s in line.sent if s.pcm is not None and tts.text_of(s.pcm) == HOURS]
    assert b"".join(s.pcm or b"" for s in answer) == tts.pcm(HOURS, 16_000)  # all, in order
    for n, sent in enumerate(answer):  # still paced in real time
        assert sent.at_s - answer[0].at_s >= n * FRAME_S - AHEAD_S - EARLY_S


class FailingFinalRecognizer(ScriptedRecognizer):
    """Its final fails (Speech's connection broke) after the hypothesis was given."""

    def finish_turn(self) -> Awaitable[Transcript]:
        self.finished_at.append(0)
        final: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        error = ProviderError("Azure Speech recognition canceled", retryable=True)
        asyncio.get_running_loop().call_later(0.05, final.set_exception, error)
        return final


def test_a_failed_final_leaves_the_answer_on_the_hypothesis_standing() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200, SATURDAY: 100})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)], ASKED_SATURDAY: [Say(SATURDAY)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await _turn(line)
        await line.until(lambda: line.has_said(SATURDAY))

    recognizer = FailingFinalRecognizer(
        [], progress=lambda: 0, hypotheses=[Hypothesis(ASKED_HOURS), Hypothesis(ASKED_SATURDAY)]
    )
    summary, line, _ = _call(script, policy=policy, tts=tts, recognizer=recognizer)

    # Both turns were answered on their hypotheses; the call went on after each failure.
    assert policy.heard == [ASKED_HOURS, ASKED_SATURDAY]
    assert summary.transcript == [
        ("receptionist", GREETING),
        ("caller", ASKED_HOURS),
        ("receptionist", HOURS),
        ("caller", ASKED_SATURDAY),
        ("receptionist", SATURDAY),
    ]
    assert [t.revision for t in summary.turns] == [None, None]


def test_an_answer_that_transfers_is_never_withdrawn() -> None:
    # The final (50 ms) comes while the answer's words are still being synthesized
    # (200 ms), the transfer queued behind them: nothing heard, and still it stands.
    connecting = "Of course. I am connecting you with our staff now."
    tts = ToneSpeech({GREETING: 60, connecting: 200}, first_audio_s=0.2)
    policy = ScriptedPolicy({"a person please": [Say(connecting), TransferToStaff()]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.call is not None and line.call.done(), timeout_s=5)

    summary, _, _ = _call(
        script, policy=policy, tts=tts, transcripts=["a parcel please"],
        hypotheses=[Hypothesis("a person please")], final_s=0.05,
    )  # fmt: skip

    assert summary.ending == "transfer:caller_request"
    assert summary.turns[0].revision == "kept"


CALLER_RAW_ID = "4:+15550100999"  # what Line.stream puts in every frame
RECEPTIONIST = acs_media.RECEPTIONIST_RAW_ID


@pytest.mark.parametrize("asked", [True, False])
def test_a_caller_that_asked_gets_each_line_of_the_transcript_as_it_comes(asked: bool) -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 100})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})
    greeting_done_at: list[int] = []

    async def script(line: Line) -> None:
        await _greeted(line)
        greeting_done_at.append(len(line.frames()))
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await asyncio.sleep(0.05)

    summary, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_HOURS], live_transcript=asked
    )

    if not asked:  # what goes to ACS: audio only
        assert line.lines == []
        return
    assert line.lines == [
        (RECEPTIONIST, GREETING, "Intermediate"),  # as its first frame went out
        (RECEPTIONIST, GREETING, "Final"),  # once its last did
        (CALLER_RAW_ID, ASKED_HOURS, "Final"),
        (RECEPTIONIST, HOURS, "Intermediate"),
        (RECEPTIONIST, HOURS, "Final"),
    ]
    assert [(who, text) for who, text in summary.transcript] == [
        ("receptionist", GREETING),
        ("caller", ASKED_HOURS),
        ("receptionist", HOURS),
    ]


def test_the_live_transcript_shows_the_hypothesis_then_the_final_words() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: line.has_said(HOURS))
        await asyncio.sleep(0.3)  # the final comes 300 ms after the turn ended

    _, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_HOURS_SPOKEN],
        hypotheses=[Hypothesis(ASKED_HOURS, after_silence_ms=120)], final_s=0.3,
        live_transcript=True,
    )  # fmt: skip

    caller = [(text, status) for who, text, status in line.lines if who == CALLER_RAW_ID]
    assert caller == [(ASKED_HOURS, "Intermediate"), (ASKED_HOURS_SPOKEN, "Final")]


def test_an_interrupted_answer_is_final_in_the_live_transcript_as_cut() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 600, SATURDAY: 100})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS)], ASKED_SATURDAY: [Say(SATURDAY)]})

    _, line, _ = _call(
        _barge_in_over_hours, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ASKED_SATURDAY],
        live_transcript=True,
    )  # fmt: skip

    said = [(text, status) for who, text, status in line.lines if who == RECEPTIONIST]
    assert said[2:] == [
        (HOURS, "Intermediate"),
        (HOURS + " [interrupted]", "Final"),
        (SATURDAY, "Intermediate"),
        (SATURDAY, "Final"),
    ]
