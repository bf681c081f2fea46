"""Cloud speech-to-text: Azure Speech continuous recognition over a push stream.

Turn mapping. The session feeds the recognizer only the caller's turns (pre-roll,
speech and the VAD's trailing silence), so one push stream carries the turns back to
back and Speech's offsets (100 ns ticks from the start of the stream) place every
result in the turn whose audio it came from. Speech closes a segment (``recognized``)
after ``Speech_SegmentationSilenceTimeoutMs`` of *audio* silence; after the pipeline's
VAD ends a turn no more audio would come until the next turn, so ``finish_turn``
writes that much silence at once (a push stream takes audio faster than real time),
and Speech finalizes the turn's last segment without waiting for the caller.

``finish_turn`` resolves when every interim hypothesis of the turn has its final, or
at once if the turn's speech is already final; if nothing was heard yet it waits
for a final. All waits are bounded by ``final_wait_ms``: at the bound the last
interim hypothesis stands in (``is_final=False``), else the transcript is empty.
Results placed in a turn that already resolved are dropped, so nothing leaks into
the next turn. The pipeline's VAD, not Speech, decides end of turn and barge-in.

Hypothesis. Each result carries the offset and duration of the speech it covers
(duration without the trailing silence), so :meth:`AzureSpeechRecognizer.hypothesis`
knows whether Speech's latest words already reach the end of the caller's speech: the
session answers those words ~1 s before the final (which it checks them against).
Within ``_COVERAGE_SLACK_TICKS`` (100 ms), because Speech and the pipeline's VAD place
the end of the last word a frame or so apart.

SDK callbacks run on the SDK's threads: they copy plain values out of the event and
hand them to :class:`SegmentAssembler` on the event loop (``call_soon_threadsafe``),
which the tests drive with recorded event sequences.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import azure.cognitiveservices.speech as speechsdk  # type: ignore[import-untyped]

from reddytalk.errors import ProviderError
from reddytalk.frames import Transcript
from reddytalk.ports import RecognitionHints
from reddytalk.providers.azure_errors import speech_canceled_error

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

__all__ = [
    "AzureSpeechRecognizer",
    "AzureSpeechToText",
    "SegmentAssembler",
    "canceled_error",
    "post_to_loop",
]

log = logging.getLogger(__name__)

_TICKS_PER_SECOND = 10_000_000
_COVERAGE_SLACK_TICKS = _TICKS_PER_SECOND // 10


def canceled_error(error_code: str) -> ProviderError:
    """The :class:`ProviderError` for a ``canceled`` event's ``CancellationErrorCode`` name."""
    return speech_canceled_error("Azure Speech recognition", error_code)


def post_to_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any
) -> None:
    """Run ``callback(*args)`` on ``loop`` from another thread; nothing if the loop closed."""
    with contextlib.suppress(RuntimeError):  # the call ended and its loop is gone
        loop.call_soon_threadsafe(callback, *args)


@dataclass(slots=True)
class _Turn:
    start_ticks: int
    future: asyncio.Future[Transcript]
    is_finished: bool = False
    finals: list[str] = field(default_factory=list)
    interim: str = ""  # the hypothesis of the segment in progress ("" once it is final)
    timer: asyncio.TimerHandle | None = None
    covered_ticks: int = 0  # where the speech the latest result heard ends


class SegmentAssembler:
    """Turns Speech's segment events into one transcript per pipeline turn.

    All methods run on the event loop.

    Args:
        final_wait_ms: How long ``finish_turn`` waits for Speech's final results.
    """

    def __init__(self, *, final_wait_ms: int) -> None:
        self._final_wait_s = final_wait_ms / 1000
        self._turns: list[_Turn] = []  # unresolved turns, oldest first
        self._error: ProviderError | None = None

    def start_turn(self, *, at_ticks: int) -> None:
        """A turn starts at stream position ``at_ticks``; an unfinished one is dropped."""
        if self._turns and not self._turns[-1].is_finished:
            self._turns.pop().future.cancel()
        future = asyncio.get_running_loop().create_future()
        self._turns.append(_Turn(start_ticks=at_ticks, future=future))

    def finish_turn(self) -> asyncio.Future[Transcript]:
        """The pipeline ended the current turn; its transcript, resolved per the rules above."""
        loop = asyncio.get_running_loop()
        if not self._turns or self._turns[-1].is_finished:
            future: asyncio.Future[Transcript] = loop.create_future()
            self._resolve_empty(future)
            return future
        turn = self._turns[-1]
        turn.is_finished = True
        if self._error is not None:
            self._fail(turn, self._error)
        elif turn.finals and not turn.interim:
            self._resolve(turn)
        else:
            turn.timer = loop.call_later(self._final_wait_s, self._resolve, turn)
        return turn.future

    def hypothesis(self, *, through_ticks: int) -> str:
        """The current turn's words so far, if Speech's results cover its speech up to
        ``through_ticks`` (less the slack); else ""."""
        if not self._turns or self._turns[-1].is_finished:
            return ""
        turn = self._turns[-1]
        if turn.covered_ticks + _COVERAGE_SLACK_TICKS < through_ticks:
            return ""
        return " ".join([*turn.finals, turn.interim] if turn.interim else turn.finals)

    def on_recognizing(self, text: str, offset_ticks: int, duration_ticks: int) -> None:
        """An interim hypothesis of the segment starting at ``offset_ticks``."""
        turn = self._turn_at(offset_ticks)
        if turn is not None and text:
            turn.interim = text
            turn.covered_ticks = max(turn.covered_ticks, offset_ticks + duration_ticks)

    def on_recognized(self, text: str, offset_ticks: int, duration_ticks: int) -> None:
        """A final result (``text`` is "" for a segment without words)."""
        turn = self._turn_at(offset_ticks)
        if turn is None:
            return
        turn.interim = ""
        if text:
            turn.finals.append(text)
            turn.covered_ticks = max(turn.covered_ticks, offset_ticks + duration_ticks)
        if turn.is_finished:  # Speech closed the segment the turn was waiting for
            self._resolve(turn)

    def on_canceled(self, error: ProviderError | None) -> None:
        """Recognition stopped: with ``error``, every open and later turn fails with it."""
        if error is None:
            return  # end of stream: the call is closing
        self._error = error
        for turn in list(self._turns):
            if turn.is_finished:
                self._fail(turn, error)

    def close(self) -> None:
        """Drop the turns nobody will finish."""
        for turn in self._turns:
            if turn.timer is not None:
                turn.timer.cancel()
            turn.future.cancel()
        self._turns.clear()

    def _turn_at(self, offset_ticks: int) -> _Turn | None:
        for turn in reversed(self._turns):
            if turn.start_ticks <= offset_ticks:
                return turn
        return None  # a turn that resolved already (or audio before any turn)

    def _resolve(self, turn: _Turn) -> None:
        if turn.timer is not None:
            turn.timer.cancel()
        words = [*turn.finals, turn.interim] if turn.interim else turn.finals
        self._remove(turn)
        if not turn.future.done():
            turn.future.set_result(Transcript(" ".join(words), is_final=not turn.interim))

    def _fail(self, turn: _Turn, error: ProviderError) -> None:
        if turn.timer is not None:
            turn.timer.cancel()
        self._remove(turn)
        if not turn.future.done():
            turn.future.set_exception(error)

    def _remove(self, turn: _Turn) -> None:
        with contextlib.suppress(ValueError):
            self._turns.remove(turn)

    def _resolve_empty(self, future: asyncio.Future[Transcript]) -> None:
        if self._error is not None:
            future.set_exception(self._error)
        else:
            future.set_result(Transcript(""))


class AzureSpeechRecognizer:
    """One call's recognizer: frames go straight into the SDK's push stream.

    Args:
        recognizer: A ``SpeechRecognizer`` reading from ``stream``.
        stream: The push stream (16-bit mono PCM at ``sample_rate_hz``).
        assembler: Where the SDK's events meet the pipeline's turns.
        sample_rate_hz: The stream's rate.
        segmentation_silence_ms: Speech's segmentation silence timeout (written as
            silence after each turn).
    """

    def __init__(
        self,
        *,
        recognizer: Any,
        stream: Any,
        assembler: SegmentAssembler,
        sample_rate_hz: int,
        segmentation_silence_ms: int,
    ) -> None:
        self._recognizer = recognizer
        self._stream = stream
        self._phrases = speechsdk.PhraseListGrammar.from_recognizer(recognizer)
        self._assembler = assembler
        self._bytes_per_second = 2 * sample_rate_hz
        # A little more than the timeout, so the segment closes on this silence.
        self._padding = bytes(self._bytes_per_second * (segmentation_silence_ms + 100) // 1000)
        self._written_bytes = 0
        self._is_closed = False

    def set_hints(self, hints: RecognitionHints) -> None:
        """Replace the phrase list (the SDK sends it with the next recognition context)."""
        self._phrases.clear()
        for phrase in hints.phrases:
            self._phrases.addPhrase(phrase)

    def start_turn(self) -> None:
        """The caller started speaking: results from here on belong to this turn."""
        self._assembler.start_turn(at_ticks=self._ticks())

    def accept(self, pcm: bytes) -> None:
        """Write one frame to the push stream (a copy into the SDK's buffer, ~2 µs)."""
        if not self._is_closed:
            self._stream.write(pcm)
            self._written_bytes += len(pcm)

    def hypothesis(self, *, trailing_silence_ms: int) -> str:
        """Speech's words for the turn so far, if they reach the end of its speech."""
        silence_ticks = trailing_silence_ms * (_TICKS_PER_SECOND // 1000)
        return self._assembler.hypothesis(through_ticks=self._ticks() - silence_ticks)

    def finish_turn(self) -> asyncio.Future[Transcript]:
        """End the turn; Speech hears the silence it needs to finalize right away."""
        future = self._assembler.finish_turn()
        self.accept(self._padding)
        return future

    def close(self) -> None:
        """Close the stream and stop recognition on a thread of its own.

        Stopping waits for the SDK (seconds while it is still trying to connect), so it
        runs neither on the event loop nor in the loop's shared executor.
        """
        if self._is_closed:
            return
        self._is_closed = True
        self._assembler.close()
        for signal in _SIGNALS:
            getattr(self._recognizer, signal).disconnect_all()
        self._stream.close()
        recognizer = self._recognizer
        threading.Thread(
            target=lambda: recognizer.stop_continuous_recognition_async().get(),
            name="azure-speech-stop",
            daemon=True,
        ).start()

    def _ticks(self) -> int:
        return self._written_bytes * _TICKS_PER_SECOND // self._bytes_per_second


_SIGNALS = ("recognizing", "recognized", "canceled")


def _connect_events(
    recognizer: Any, assembler: SegmentAssembler, loop: asyncio.AbstractEventLoop
) -> None:
    """Forward the SDK's events (on its threads) to ``assembler`` on ``loop``."""

    def recognizing(event: Any) -> None:
        result = event.result
        post_to_loop(loop, assembler.on_recognizing, result.text, result.offset, result.duration)

    def recognized(event: Any) -> None:
        result = event.result
        text = result.text if result.reason == speechsdk.ResultReason.RecognizedSpeech else ""
        post_to_loop(loop, assembler.on_recognized, text, result.offset, result.duration)

    def canceled(event: Any) -> None:
        details = event.cancellation_details
        error = None
        if details.reason == speechsdk.CancellationReason.Error:
            error = canceled_error(details.error_code.name)
            log.warning("azure speech canceled: %s", details.error_code.name)
        post_to_loop(loop, assembler.on_canceled, error)

    recognizer.recognizing.connect(recognizing)
    recognizer.recognized.connect(recognized)
    recognizer.canceled.connect(canceled)


class AzureSpeechToText:
    """Creates one continuous recognizer per call, connected before the greeting ends.

    Args:
        key: A Speech resource key (with ``region`` or ``endpoint``); or
        credential: An azure-core ``TokenCredential`` (managed identity), with
            ``endpoint`` on the resource's custom domain; the SDK refreshes the token.
        region: The resource's region (key only).
        endpoint: The resource's endpoint.
        languages: One locale, or several for language identification at the start of
            the call (``AutoDetectSourceLanguageConfig``, e.g. ``("en-US", "es-US")``).
        segmentation_silence_ms: ``Speech_SegmentationSilenceTimeoutMs``.
        final_wait_ms: How long a turn waits for Speech's final result.
    """

    def __init__(
        self,
        *,
        key: str | None = None,
        credential: TokenCredential | None = None,
        region: str | None = None,
        endpoint: str | None = None,
        languages: Sequence[str] = ("en-US",),
        segmentation_silence_ms: int = 300,
        final_wait_ms: int = 600,
    ) -> None:
        if not languages:
            raise ProviderError("Azure Speech needs at least one language", retryable=False)
        try:
            if credential is not None:
                config = speechsdk.SpeechConfig(token_credential=credential, endpoint=endpoint)
            elif endpoint is not None:
                config = speechsdk.SpeechConfig(subscription=key, endpoint=endpoint)
            else:
                config = speechsdk.SpeechConfig(subscription=key, region=region)
        except ValueError as error:
            raise ProviderError(f"Azure Speech settings: {error}", retryable=False) from None
        config.set_property(
            speechsdk.PropertyId.Speech_SegmentationSilenceTimeoutMs, str(segmentation_silence_ms)
        )
        self._config = config
        self._languages = tuple(languages)
        self._segmentation_silence_ms = segmentation_silence_ms
        self._final_wait_ms = final_wait_ms

    async def open(
        self, *, sample_rate_hz: int, languages: Sequence[str] | None = None
    ) -> AzureSpeechRecognizer:
        """A recognizer whose session is starting; its frames may follow at once.

        ``languages``: the clinic's (one, or several to identify at the start of the
        call); None: the languages this was built with.
        """
        languages = tuple(languages or self._languages)
        stream_format = speechsdk.audio.AudioStreamFormat(
            samples_per_second=sample_rate_hz, bits_per_sample=16, channels=1
        )
        stream = speechsdk.audio.PushAudioInputStream(stream_format=stream_format)
        audio = speechsdk.audio.AudioConfig(stream=stream)
        if len(languages) == 1:
            recognizer = speechsdk.SpeechRecognizer(
                speech_config=self._config, audio_config=audio, language=languages[0]
            )
        else:
            detect = speechsdk.languageconfig.AutoDetectSourceLanguageConfig(
                languages=list(languages)
            )
            recognizer = speechsdk.SpeechRecognizer(
                speech_config=self._config,
                audio_config=audio,
                auto_detect_source_language_config=detect,
            )
        assembler = SegmentAssembler(final_wait_ms=self._final_wait_ms)
        _connect_events(recognizer, assembler, asyncio.get_running_loop())
        # Connect now, while the greeting plays, not on the caller's first frame.
        speechsdk.Connection.from_recognizer(recognizer).open(True)
        try:
            await asyncio.to_thread(recognizer.start_continuous_recognition_async().get)
        except RuntimeError as error:
            stream.close()
            raise ProviderError("Azure Speech failed to start", retryable=True) from error
        return AzureSpeechRecognizer(
            recognizer=recognizer,
            stream=stream,
            assembler=assembler,
            sample_rate_hz=sample_rate_hz,
            segmentation_silence_ms=self._segmentation_silence_ms,
        )
