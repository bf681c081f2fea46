"""One live call: caller audio in → end of turn → transcript → policy → speech out.

Three named tasks in one ``asyncio.TaskGroup`` per call:

* ``listen``: parses every inbound message, runs VAD and the recognizer on every
  frame, decides the end of each turn, and detects barge-in;
* ``think``: takes each finished turn, awaits its transcript and runs the policy;
  what the policy says is queued for speech as it comes (sentence by sentence);
* ``synthesize``: turns queued sentences into 20 ms frames, running ahead of playback;
* ``send``: sends frames paced in real time on an absolute schedule.

Barge-in cancels synthesis, drops the frames not yet sent and sends ``StopAudio``
within the frame that detected it. Then:

* the policy is never cancelled: a tool call that started (a look-up, a booking the
  caller confirmed) finishes and its result stays in the conversation, even when it
  arrives while the caller is still speaking;
* the policy is told (``reply_interrupted``): a write or an end the interrupted reply
  still holds back does not run; a goodbye that was cut does not hang up (a transfer
  still happens: the caller asked for a person, or it is an emergency);
* a false interruption (noise, or an echo of our own voice) ends as a turn without
  words: the cut answer, from the start of the sentence that was cut, is said again,
  and a cut goodbye still ends the call.

Answering before the final transcript. A cloud recognizer's final result comes about a
second after the caller stops; its interim hypothesis is there much sooner. After a
short silence (``settled_end_of_turn_silence_ms``), when the hypothesis reaches the end
of the caller's speech and does not stop mid-sentence, the turn ends and the policy
answers that hypothesis at once (and a turn the full silence ended is answered on its
hypothesis too, when there is one). The final still comes, and is what the call record
keeps. When it says other words: if nobody has heard any of the answer yet, the answer
is withdrawn (its queued speech dropped, the policy's state put back, or, when a tool
already ran, the policy told its reply went unheard) and the final is answered instead;
once the caller has heard it, the answer stands, as after any mishearing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from reddytalk.audio.pacing import Pacer
from reddytalk.audio.pcm import StreamResampler, frames_of
from reddytalk.audio.turns import SpeechEnded, SpeechStarted, TurnDetector
from reddytalk.dialogue.understanding import same_words, sounds_unfinished
from reddytalk.errors import MalformedMessage, ProviderError
from reddytalk.frames import (
    AudioChunk,
    AudioFormat,
    DtmfTone,
    EndCall,
    Say,
    ToolCall,
    Transcript,
    TransferToStaff,
    TurnTimings,
)
from reddytalk.ports import DialoguePolicy, SpeechRecognizer, TextToSpeech
from reddytalk.telephony import acs_media

__all__ = ["CallSummary", "CallTuning", "CallSession", "PushedInbound"]

log = logging.getLogger(__name__)
_RECOGNIZER_RATE_HZ = 16_000
_FRAME_16K_BYTES = 640  # 20 ms of 16-bit mono at 16 kHz: what VAD and recognizer take
_PREROLL_FRAMES = 10


@runtime_checkable
class PushedInbound(Protocol):
    """An inbound stream that can push its messages instead (a transport's direct path).

    ``attach`` returns whether it will: from then on every message goes to
    ``on_message`` as it arrives, and iterating the stream only waits for its end.
    """

    def attach(self, on_message: Callable[[str], None]) -> bool: ...

    def __aiter__(self) -> AsyncIterator[str]: ...


@dataclass(frozen=True, slots=True)
class CallTuning:
    """Per-call timing knobs.

    Attributes:
        end_of_turn_silence_ms: Silence after speech that ends the caller's turn.
        settled_end_of_turn_silence_ms: The shorter silence that ends it once the
            recognizer's hypothesis covers the speech and does not stop mid-sentence.
        wait_for_words_ms: How much longer than ``end_of_turn_silence_ms`` a turn
            whose hypothesis does not cover the speech yet waits for it (a cloud
            recognizer's interim results lag the audio), rather than waiting for the
            final (about a second); 0 for a recognizer without hypotheses.
        barge_in_ms: Caller speech over an answer that interrupts it.
        synthesis_lead_ms: How far synthesis runs ahead of playback at most: the frames
            a call holds waiting to go out, so its memory does not grow with the length
            of an answer.
        metadata_wait_ms: How long the greeting waits for ``AudioMetadata``
            before assuming ACS's default format (16 kHz).
        hangup_grace_ms: Pause after the last frame of a goodbye before hanging up.
        send_ahead_ms: How early an outbound frame may go out before its real-time
            slot (:class:`~reddytalk.audio.pacing.Pacer`): 20 ms halves the sender's
            wake-ups, and ACS queues what arrives early.
    """

    end_of_turn_silence_ms: int = 400
    settled_end_of_turn_silence_ms: int = 200
    wait_for_words_ms: int = 0
    barge_in_ms: int = 200
    synthesis_lead_ms: int = 2000
    metadata_wait_ms: int = 50
    hangup_grace_ms: int = 300
    send_ahead_ms: int = 20


_DEFAULT_TUNING = CallTuning()


@dataclass(slots=True)
class CallSummary:
    """What happened on the call, for the call record."""

    transcript: list[tuple[str, str]] = field(default_factory=list)
    tool_calls: list[ToolCall] = field(default_factory=list)
    turns: list[TurnTimings] = field(default_factory=list)
    ending: str = "caller_hung_up"
    greeting_first_frame_ms: float | None = None
    malformed_messages: int = 0
    barge_ins: int = 0
    frames_ahead_max: int = 0
    """The most frames that waited to go out at once (bounded by the synthesis lead)."""


@dataclass(slots=True)
class _Utterance:
    text: str
    timings: TurnTimings | None
    pcm: list[bytes] | None = None  # pre-synthesized audio (the greeting)
    is_filler: bool = False  # an acknowledgement or holding phrase, not the answer
    is_started: bool = False
    is_dropped: bool = False  # interrupted: none of its frames may go out any more
    is_noted: bool = False  # in the transcript (or never started): accounted for


@dataclass(slots=True)
class _Answer:
    """What one turn's answer queued, so that it can be withdrawn."""

    queued: list[_Utterance | EndCall | TransferToStaff] = field(default_factory=list)
    tool_calls: int = 0
    revised: bool = False  # the final transcript said other words than the hypothesis
    withdrawn: bool = False  # dropped before anyone heard it: say nothing more of it
    ending_dropped: bool = False


@dataclass(frozen=True, slots=True)
class _Frame:
    message: str | None  # an encoded AudioData message; None marks the utterance's end
    utterance: _Utterance


_Hangup = EndCall | TransferToStaff
Speech = _Utterance | _Hangup


class CallSession:
    """Runs one call over any transport that moves ACS media messages.

    Args:
        policy: The call's dialogue policy.
        recognizer: Opens the call's recognizer (awaited while the greeting plays).
        tts: Text to speech.
        greeting_audio: Optional cache lookup: (text, rate) → PCM of the greeting.
        tuning: Timing knobs.
        live_transcript: Send each line of the transcript to the caller as it is heard
            or said (``TranscriptionData``; only for a local caller that asked, such as
            the browser softphone: ACS has no such message).
    """

    def __init__(
        self,
        *,
        policy: DialoguePolicy,
        recognizer: Awaitable[SpeechRecognizer],
        tts: TextToSpeech,
        greeting_audio: Callable[[str, int], Awaitable[bytes]] | None = None,
        tuning: CallTuning = _DEFAULT_TUNING,
        live_transcript: bool = False,
    ) -> None:
        self._policy = policy
        self._live_transcript = live_transcript
        self._caller_raw_id = ""  # the caller's participantRawID, for its live lines
        self._aside: set[asyncio.Task[None]] = set()  # live lines being sent
        self._recognizer_pending = recognizer
        self._recognizer: SpeechRecognizer | None = None
        self._tts = tts
        self._greeting_audio = greeting_audio
        self._tuning = tuning
        self._t0 = time.monotonic()
        self._format = AudioFormat()
        self._format_known = asyncio.Event()
        # The detector ends a turn only at the longest silence; the shorter rules are the
        # session's (_on_frame_16k), which know the recognizer's hypothesis.
        self._turns = TurnDetector(
            end_of_turn_silence_ms=tuning.end_of_turn_silence_ms + tuning.wait_for_words_ms
        )
        self._to_16k: StreamResampler | None = None
        self._carry16 = b""  # resampled audio short of a whole 20 ms frame
        self._preroll: collections.deque[bytes] = collections.deque(maxlen=_PREROLL_FRAMES)
        self._turn_queue: asyncio.Queue[tuple[Awaitable[Transcript], str, TurnTimings]] = (
            asyncio.Queue()
        )
        self._speech_queue: asyncio.Queue[Speech] = asyncio.Queue()
        self._frame_queue: asyncio.Queue[_Frame | _Hangup] = asyncio.Queue()
        self._lead_frames = max(2, tuning.synthesis_lead_ms // 20)
        self._room = asyncio.Event()  # set: synthesis may queue more frames
        self._room.set()
        self._synthesizing: asyncio.Task[None] | None = None
        self._synth_item: _Utterance | None = None
        self._stop_task: asyncio.Task[None] | None = None
        self._send_lock = asyncio.Lock()
        self._sending: _Utterance | None = None  # the utterance whose frames are going out
        self._in_flight = 0
        self._pacer = Pacer(ahead_ms=self._tuning.send_ahead_ms)
        self._cut: list[_Utterance] = []  # what the last barge-in cut, to resume
        self._cut_ending: EndCall | None = None  # an end the barge-in held back
        self._send: Callable[[str], Awaitable[None]] | None = None
        self._listen_task: asyncio.Task[None] | None = None
        self._pushed_error: Exception | None = None
        self._is_over = False
        self.summary = CallSummary()

    def now_ms(self) -> float:
        """Milliseconds since the stream opened."""
        return (time.monotonic() - self._t0) * 1000

    async def run(
        self, inbound: AsyncIterator[str], send: Callable[[str], Awaitable[None]]
    ) -> CallSummary:
        """Hold the call until either side hangs up; return what happened."""
        self._send = send
        try:
            async with asyncio.TaskGroup() as tasks:
                listen = tasks.create_task(self._listen(inbound), name="listen")
                self._listen_task = listen
                think = tasks.create_task(self._think(), name="think")
                synthesize = tasks.create_task(self._synthesize(), name="synthesize")
                sender = tasks.create_task(self._send_frames(), name="send")
                opener = tasks.create_task(self._open_recognizer(), name="open-recognizer")
                await asyncio.wait({listen, sender}, return_when=asyncio.FIRST_COMPLETED)
                for task in (listen, think, synthesize, sender, opener):
                    task.cancel()
        finally:
            self._is_over = True
            if self._recognizer is not None:
                self._recognizer.close()
            cut_off = self._sending
            if cut_off is not None and cut_off.is_started and not cut_off.is_noted:
                self._note_said(cut_off, interrupted=True)  # the call ended mid-sentence
        return self.summary

    async def _open_recognizer(self) -> None:
        recognizer = await self._recognizer_pending
        recognizer.set_hints(self._policy.hints())
        self._recognizer = recognizer
        if self._turns.is_speaking:  # the caller started before the recognizer was ready
            recognizer.start_turn()
            for frame in self._preroll:
                recognizer.accept(frame)

    # -- listen ---------------------------------------------------------------

    async def _listen(self, inbound: AsyncIterator[str]) -> None:
        if isinstance(inbound, PushedInbound) and inbound.attach(self._on_pushed):
            # Messages now come through _on_pushed; the iteration ends at the hang-up.
            try:
                async for text in inbound:
                    self._on_message(text)
            except asyncio.CancelledError:
                if self._pushed_error is not None:
                    raise self._pushed_error from None
                raise
            return
        async for text in inbound:
            self._on_message(text)

    def _on_pushed(self, text: str) -> None:
        """A message the transport pushed; a failure ends the call as in ``_listen``."""
        if self._pushed_error is not None or self._is_over:
            return  # the transport may push a little longer than the call lasts
        try:
            self._on_message(text)
        except Exception as error:
            self._pushed_error = error
            if self._listen_task is not None:
                self._listen_task.cancel()

    def _on_message(self, text: str) -> None:
        try:
            message = acs_media.parse_inbound(text, audio_format=self._format)
        except MalformedMessage as error:
            self.summary.malformed_messages += 1
            log.warning("skipped a malformed media message: %s", error)
            return
        if isinstance(message, AudioChunk):
            if not self._caller_raw_id:
                self._caller_raw_id = message.participant_raw_id or "caller"
            self._on_audio(message.pcm)
        elif isinstance(message, AudioFormat):
            self._on_metadata(message)
        elif isinstance(message, DtmfTone):
            log.info("caller pressed a key")

    def _on_metadata(self, audio_format: AudioFormat) -> None:
        if self._format_known.is_set() and audio_format == self._format:
            return
        self._format = audio_format
        self._to_16k = StreamResampler(from_hz=audio_format.sample_rate_hz,
                                       to_hz=_RECOGNIZER_RATE_HZ)  # fmt: skip
        self._format_known.set()

    def _on_audio(self, pcm: bytes) -> None:
        if self._to_16k is None:
            self._on_metadata(self._format)
        assert self._to_16k is not None
        pcm16 = self._to_16k.push(pcm)
        if not self._carry16 and len(pcm16) == _FRAME_16K_BYTES:  # 16 kHz: one frame
            self._on_frame_16k(pcm16)
            return
        # A streaming resampler does not return one 20 ms frame per 20 ms frame (from
        # 24 kHz, soxr gives 0 or ~980 bytes at a time): re-frame what it returns.
        self._carry16 += pcm16
        whole = len(self._carry16) // _FRAME_16K_BYTES * _FRAME_16K_BYTES
        frames, self._carry16 = self._carry16[:whole], self._carry16[whole:]
        for pcm16 in frames_of(frames, _FRAME_16K_BYTES):
            self._on_frame_16k(pcm16)

    def _on_frame_16k(self, pcm16: bytes) -> None:
        now = self.now_ms()
        event = self._turns.push(pcm16, at_ms=now - 20)
        self._preroll.append(pcm16)
        recognizer = self._recognizer
        if isinstance(event, SpeechStarted) and recognizer is not None:
            recognizer.start_turn()
            for frame in self._preroll:
                recognizer.accept(frame)
        elif self._turns.is_speaking and recognizer is not None:
            recognizer.accept(pcm16)
        if self._turns.voiced_ms() >= self._tuning.barge_in_ms and self._is_answering:
            self._barge_in()
        hypothesis = ""
        if event is None and self._turns.is_speaking:
            event, hypothesis = self._end_of_turn(recognizer, now)
        if isinstance(event, SpeechEnded):
            timings = TurnTimings(
                turn=len(self.summary.turns) + 1,
                caller_speech_end_ms=event.speech_end_ms,
                turn_end_decided_ms=event.decided_ms,
            )
            self.summary.turns.append(timings)
            if recognizer is not None:
                if not hypothesis:
                    silence_ms = event.decided_ms - event.speech_end_ms
                    hypothesis = recognizer.hypothesis(trailing_silence_ms=int(silence_ms))
                pending = recognizer.finish_turn()
            else:
                pending = asyncio.get_running_loop().create_future()
                pending.set_result(Transcript(""))
            self._turn_queue.put_nowait((pending, hypothesis, timings))

    def _end_of_turn(
        self, recognizer: SpeechRecognizer | None, now: float
    ) -> tuple[SpeechEnded | None, str]:
        """The session's end-of-turn rules, on a silent frame in a turn (or a voiced one):

        * from ``settled_end_of_turn_silence_ms``: the hypothesis covers the speech and
          does not stop mid-sentence;
        * from ``end_of_turn_silence_ms``: the hypothesis covers the speech; or, without
          one, when there is nothing to wait for (``wait_for_words_ms`` is 0);
        * the detector's own longest silence ends the turn regardless (in ``push``).
        """
        silence_ms = self._turns.silence_ms()
        tuning = self._tuning
        if silence_ms < tuning.settled_end_of_turn_silence_ms:
            return None, ""
        hypothesis = ""
        if recognizer is not None:
            hypothesis = recognizer.hypothesis(trailing_silence_ms=int(silence_ms))
        if hypothesis and not sounds_unfinished(hypothesis):
            return self._turns.end_turn(at_ms=now), hypothesis
        if silence_ms >= tuning.end_of_turn_silence_ms and (
            hypothesis or not tuning.wait_for_words_ms
        ):
            return self._turns.end_turn(at_ms=now), hypothesis
        return None, ""

    def _barge_in(self) -> None:
        """The caller is talking over the answer: flush ACS's queue and stop speaking."""
        self.summary.barge_ins += 1
        cut: list[_Utterance] = []  # in the order they would have been heard
        # The sender may hold one frame, waiting for its slot: it must not follow StopAudio.
        if self._sending is not None and not self._sending.is_noted:
            cut.append(self._sending)
        transfers: list[TransferToStaff] = []
        synth_item = self._synth_item
        if self._synthesizing is not None and synth_item is not None:
            self._synthesizing.cancel()
            self._synth_item = None
        for queue in (self._frame_queue, self._speech_queue):
            while not queue.empty():
                item = queue.get_nowait()
                if isinstance(item, TransferToStaff):
                    transfers.append(item)  # a transfer still happens
                elif isinstance(item, EndCall):
                    self._cut_ending = item  # not before the goodbye was heard
                elif isinstance(item, _Utterance):
                    cut.append(item)
                elif item.utterance not in cut:
                    cut.append(item.utterance)
            if queue is self._frame_queue and synth_item is not None and synth_item not in cut:
                cut.append(synth_item)
        for item in cut:
            self._note_said(item, interrupted=True)
        self._cut += cut
        for transfer in transfers:
            self._frame_queue.put_nowait(transfer)
        if cut or self._cut_ending is not None:
            self._policy.reply_interrupted(ending_dropped=self._cut_ending is not None)
        if self._send is not None:
            self._stop_task = asyncio.create_task(self._send_stop_audio(), name="stop-audio")

    async def _send_stop_audio(self) -> None:
        try:
            async with self._send_lock:
                assert self._send is not None
                await self._send(acs_media.STOP_AUDIO)
        except Exception as error:  # the transport is gone; the listen task will see it too
            log.warning("StopAudio could not be sent: %s", type(error).__name__)

    # -- think ----------------------------------------------------------------

    async def _think(self) -> None:
        await self._say_greeting()
        while True:
            pending, hypothesis, timings = await self._turn_queue.get()
            cut, ending = self._cut, self._cut_ending
            self._cut, self._cut_ending = [], None
            heard: Transcript | None
            if hypothesis:
                heard = await self._answer_early(hypothesis, pending, timings)
            else:
                heard = await pending
                timings.transcript_final_ms = self.now_ms()
                self.summary.transcript.append(("caller", heard.text))
                self._publish("caller", heard.text, is_final=True)
            if heard is not None:
                if not heard.text:
                    log.info("turn %d: nothing recognized", timings.turn)
                if not heard.text and (cut or ending is not None):
                    timings.resumed = True  # a false interruption: say it again
                    self._resume(cut, ending, timings)
                else:
                    await self._respond(heard, timings, _Answer())
            if self._recognizer is not None:
                self._recognizer.set_hints(self._policy.hints())

    async def _respond(self, heard: Transcript, timings: TurnTimings, answer: _Answer) -> None:
        """Run the policy on ``heard`` and queue what it says; once ``answer`` is
        withdrawn, its tools still finish (and are recorded) but nothing more is said."""
        since = self.now_ms()
        async for output in self._policy.respond(heard):
            if isinstance(output, ToolCall):
                if timings.first_policy_text_ms is None:  # the tool ran since the last output
                    now = self.now_ms()
                    timings.tool_wait_ms += now - since
                    since = now
                answer.tool_calls += 1
                self.summary.tool_calls.append(output)
                log.info("tool %s called", output.name)
            elif answer.withdrawn and not isinstance(output, TransferToStaff):
                continue  # a transfer still happens (the caller asked, or an emergency)
            elif isinstance(output, Say):
                if timings.first_policy_text_ms is None:
                    timings.first_policy_text_ms = self.now_ms()
                self._in_flight += 1
                utterance = _Utterance(output.text, timings, is_filler=output.is_filler)
                answer.queued.append(utterance)
                self._speech_queue.put_nowait(utterance)
            else:
                answer.queued.append(output)
                self._speech_queue.put_nowait(output)
        timings.tier = self._policy.last_tier

    async def _answer_early(
        self, hypothesis: str, pending: Awaitable[Transcript], timings: TurnTimings
    ) -> Transcript | None:
        """Answer the turn on the recognizer's hypothesis while its final is coming.

        Returns None when that answer stands, or the final transcript to answer instead
        (the early answer was withdrawn; see the module's docstring).
        """
        timings.early = True
        entry = len(self.summary.transcript)
        self.summary.transcript.append(("caller", hypothesis))
        self._publish("caller", hypothesis, is_final=False)
        restore = self._policy.checkpoint()
        answer = _Answer()
        final = asyncio.ensure_future(pending)

        def check(done: asyncio.Future[Transcript]) -> None:
            # As soon as the final comes, while the answer may still be unheard.
            if done.cancelled() or done.exception() is not None:
                return
            timings.transcript_final_ms = self.now_ms()
            if not same_words(done.result().text, hypothesis):
                answer.revised = True
                answer.withdrawn = self._withdraw(answer)

        final.add_done_callback(check)
        try:
            await self._respond(Transcript(hypothesis, is_final=False), timings, answer)
            heard = await final
        except ProviderError as error:  # the answer on the hypothesis stands
            log.warning("turn %d: no final transcript: %s", timings.turn, error)
            return None
        finally:
            final.cancel()  # nothing once it is done; else this task is being cancelled
        self.summary.transcript[entry] = ("caller", heard.text)  # the record keeps the final
        self._publish("caller", heard.text, is_final=True)
        if not answer.revised:
            return None
        if not answer.withdrawn:
            timings.revision = "kept"
            log.info("turn %d: the final transcript differs; the answer was heard", timings.turn)
            return None
        timings.revision = "withdrawn"
        log.info("turn %d: the final transcript differs; the unheard answer was withdrawn",
                 timings.turn)  # fmt: skip
        if answer.tool_calls:  # a tool ran: its result stays, the policy knows it went unheard
            self._policy.reply_interrupted(ending_dropped=answer.ending_dropped)
        else:
            restore()
        timings.first_policy_text_ms = timings.first_tts_audio_ms = None
        timings.tool_wait_ms = 0.0
        return heard

    def _withdraw(self, answer: _Answer) -> bool:
        """Drop everything ``answer`` queued, if none of it was heard yet; say if it was."""
        utterances = [item for item in answer.queued if isinstance(item, _Utterance)]
        if any(item.is_started for item in utterances):
            return False
        if any(isinstance(item, TransferToStaff) for item in answer.queued):
            return False  # a transfer stands, as after a barge-in

        def mine(item: _Frame | Speech) -> bool:
            owner = item.utterance if isinstance(item, _Frame) else item
            return any(owner is queued for queued in answer.queued)

        if self._synthesizing is not None and self._synth_item in utterances:
            self._synthesizing.cancel()
            self._synth_item = None
        for queue in (self._speech_queue, self._frame_queue):
            kept = []
            while not queue.empty():
                item = queue.get_nowait()
                if not mine(item):
                    kept.append(item)
            for item in kept:
                queue.put_nowait(item)  # type: ignore[arg-type]
        for item in utterances:
            self._note_said(item, interrupted=True)  # never started: not in the transcript
        answer.ending_dropped = any(isinstance(item, EndCall) for item in answer.queued)
        answer.queued.clear()
        answer.withdrawn = True
        return True

    def _resume(self, cut: list[_Utterance], ending: EndCall | None, timings: TurnTimings) -> None:
        """Say again what a false interruption cut, from the start of the cut sentence."""
        for item in cut:
            self._in_flight += 1
            self._speech_queue.put_nowait(
                _Utterance(item.text, timings, item.pcm, is_filler=item.is_filler)
            )
        if ending is not None:
            self._speech_queue.put_nowait(ending)

    async def _say_greeting(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._format_known.wait(), self._tuning.metadata_wait_ms / 1000)
        text = self._policy.greeting()
        pcm = None
        if self._greeting_audio is not None:
            pcm = [await self._greeting_audio(text, self._format.sample_rate_hz)]
        self._in_flight += 1
        self._speech_queue.put_nowait(_Utterance(text, None, pcm))

    # -- speak ----------------------------------------------------------------

    async def _synthesize(self) -> None:
        """Turn queued sentences into frames as fast as the engine allows.

        Synthesis runs ahead of playback, so the next sentence is ready before the
        current one ends and an answer has no gaps.
        """
        while True:
            item = await self._speech_queue.get()
            if isinstance(item, EndCall | TransferToStaff):
                self._frame_queue.put_nowait(item)
                continue
            self._synth_item = item
            self._synthesizing = asyncio.create_task(self._synthesize_one(item), name="tts")
            try:
                await self._synthesizing
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
            finally:
                self._synthesizing = self._synth_item = None

    async def _synthesize_one(self, item: _Utterance) -> None:
        frame_bytes = self._format.frame_bytes
        carry = b""
        chunks = (
            _replay(item.pcm)
            if item.pcm is not None
            else self._tts.synthesize(item.text, sample_rate_hz=self._format.sample_rate_hz)
        )
        frames: list[bytes] = []
        try:
            async for chunk in chunks:
                if item.timings is not None and item.timings.first_tts_audio_ms is None:
                    item.timings.first_tts_audio_ms = self.now_ms()
                carry += chunk
                whole = len(carry) // frame_bytes * frame_bytes
                frames = frames_of(carry[:whole], frame_bytes)
                carry = carry[whole:]
                for frame in frames:
                    await self._queue_frame(_Frame(acs_media.encode_audio(frame), item))
        except ProviderError as error:
            log.error("speech failed: %s", error)
        for frame in frames_of(carry, frame_bytes):
            await self._queue_frame(_Frame(acs_media.encode_audio(frame), item))
        self._synth_item = None  # from here on its end marker accounts for it
        self._frame_queue.put_nowait(_Frame(None, item))

    async def _queue_frame(self, frame: _Frame) -> None:
        """Queue a frame to go out, first waiting while the synthesis lead is used up."""
        while not self._room.is_set():
            await self._room.wait()
        self._frame_queue.put_nowait(frame)
        ahead = self._frame_queue.qsize()
        if ahead > self.summary.frames_ahead_max:
            self.summary.frames_ahead_max = ahead
        if ahead >= self._lead_frames:
            self._room.clear()

    async def _send_frames(self) -> None:
        """Send frames paced in real time; stop after a hang-up marker."""
        assert self._send is not None
        while True:
            if self._frame_queue.empty():
                self._room.set()
                frame = await self._frame_queue.get()
                # Checked after the wait: a gap between answers is idleness, not lateness,
                # and must not make the next answer's first frames go out in a burst.
                self._pacer.restart_if_idle()
            else:
                frame = self._frame_queue.get_nowait()
                if self._frame_queue.qsize() < self._lead_frames // 2:
                    self._room.set()  # synthesis may run ahead again
            if isinstance(frame, EndCall | TransferToStaff):
                await asyncio.sleep(self._tuning.hangup_grace_ms / 1000)
                self.summary.ending = (
                    "completed" if isinstance(frame, EndCall) else f"transfer:{frame.reason}"
                )
                return
            item = frame.utterance
            if frame.message is None:  # the utterance's last frame went out
                self._note_said(item, interrupted=False)
                self._sending = None
                continue
            if item.is_dropped:
                continue
            self._sending = item
            await self._pacer.wait_for_slot()
            if item.is_dropped:  # barged in on while this frame waited for its slot
                continue
            first = not item.is_started
            item.is_started = True  # before the send: from here on it may be heard
            async with self._send_lock:
                await self._send(frame.message)
            if first:
                self._publish("receptionist", item.text, is_final=False)
                now = self.now_ms()
                if item.timings is None:
                    self.summary.greeting_first_frame_ms = now
                else:
                    if item.timings.first_frame_sent_ms is None:
                        item.timings.first_frame_sent_ms = now
                    if not item.is_filler and item.timings.first_content_sent_ms is None:
                        item.timings.first_content_sent_ms = now

    def _publish(self, speaker: str, text: str, *, is_final: bool) -> None:
        """Send a line of the live transcript, if the caller asked for it (beside the
        frames, under the same lock: a line never splits or delays a frame in flight)."""
        if not self._live_transcript or self._send is None or self._is_over or not text:
            return
        raw_id = self._caller_raw_id if speaker == "caller" else acs_media.RECEPTIONIST_RAW_ID
        message = acs_media.encode_transcription(text, participant_raw_id=raw_id, is_final=is_final)
        task = asyncio.create_task(self._send_aside(message), name="live-transcript")
        self._aside.add(task)
        task.add_done_callback(self._aside.discard)

    async def _send_aside(self, message: str) -> None:
        assert self._send is not None
        try:
            async with self._send_lock:
                await self._send(message)
        except Exception as error:  # the caller hung up: the line has nobody to go to
            log.info("a live transcript line was not sent: %s", type(error).__name__)

    @property
    def _is_answering(self) -> bool:
        return self._in_flight > 0

    def _note_said(self, item: _Utterance, *, interrupted: bool) -> None:
        if item.is_noted:
            return
        item.is_noted = True
        item.is_dropped = interrupted
        self._in_flight -= 1
        if item.is_started:
            suffix = " [interrupted]" if interrupted else ""
            self.summary.transcript.append(("receptionist", item.text + suffix))
            self._publish("receptionist", item.text + suffix, is_final=True)
            if interrupted and item.timings is not None:
                item.timings.was_interrupted = True


async def _replay(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk
