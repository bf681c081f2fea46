"""Voice activity and end of turn, decided on every inbound 20 ms frame.

webrtcvad classifies each frame (about 2 µs per frame); a short run of voiced
frames starts the caller's speech, and a configurable stretch of silence after
it (default 400 ms) ends the turn. The end of speech is the end of the last
voiced frame, which is what the latency figures are measured from. A caller of
the detector may end a turn sooner (:meth:`TurnDetector.end_turn`), when the words
heard so far already make a complete turn.
"""

from __future__ import annotations

from dataclasses import dataclass

import webrtcvad

from reddytalk.audio.pcm import rms_of

__all__ = ["SpeechEnded", "SpeechStarted", "TurnDetector"]

_VAD_RATES_HZ = (8_000, 16_000, 32_000, 48_000)


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """The caller started speaking; ``at_ms`` is the start of the first voiced frame."""

    at_ms: float


@dataclass(frozen=True, slots=True)
class SpeechEnded:
    """The caller's turn ended.

    Attributes:
        speech_end_ms: End of the last voiced frame.
        decided_ms: When the silence that ends a turn had lasted long enough.
    """

    speech_end_ms: float
    decided_ms: float


class TurnDetector:
    """Turns a stream of frames into speech-started and turn-ended events.

    Args:
        sample_rate_hz: 8, 16, 32 or 48 kHz (webrtcvad's rates).
        end_of_turn_silence_ms: Silence after speech that ends a turn.
        speech_start_ms: Voiced audio in a row needed to call it speech.
        aggressiveness: webrtcvad mode 0 (least) to 3 (most aggressive filtering).
        min_rms: Frames quieter than this RMS (about -50 dBFS) are never speech.
    """

    def __init__(
        self,
        *,
        sample_rate_hz: int = 16_000,
        end_of_turn_silence_ms: int = 400,
        speech_start_ms: int = 60,
        aggressiveness: int = 2,
        frame_ms: int = 20,
        min_rms: float = 100.0,
    ) -> None:
        if sample_rate_hz not in _VAD_RATES_HZ:
            raise ValueError(f"webrtcvad needs one of {_VAD_RATES_HZ} Hz, not {sample_rate_hz}")
        self._vad = webrtcvad.Vad(aggressiveness)
        self._min_rms = min_rms
        self._rate = sample_rate_hz
        self._frame_ms = frame_ms
        self._start_frames = max(1, speech_start_ms // frame_ms)
        self._end_frames = max(1, end_of_turn_silence_ms // frame_ms)
        self._voiced_run = 0
        self._silent_run = 0
        self._is_speaking = False
        self._speech_started_ms = 0.0
        self._last_voiced_end_ms = 0.0
        self._frames_in_turn = 0  # since the speech started
        self._span_frames = 0  # from the speech's start to its last voiced frame

    @property
    def is_speaking(self) -> bool:
        """Whether the caller is in the middle of a turn."""
        return self._is_speaking

    def voiced_ms(self) -> float:
        """From the start of the current speech to its last voiced frame (0 when not speaking).

        It stops growing in the silence after a sound, so a click or a cough
        followed by silence never adds up to a barge-in while the detector waits
        for the end of the turn. Counted in frames, not from the frames' timestamps:
        under load the first frames of speech may be processed late, and a timestamp
        difference would then reach the barge-in threshold a frame or more late.
        """
        return self._span_frames * self._frame_ms if self._is_speaking else 0.0

    def silence_ms(self) -> float:
        """The silence since the last voiced frame of the current speech (0 when not
        speaking)."""
        return self._silent_run * self._frame_ms if self._is_speaking else 0.0

    def end_turn(self, *, at_ms: float) -> SpeechEnded:
        """End the current turn now (the caller is speaking): the turn was understood as
        complete before the silence that ends a turn had passed."""
        if not self._is_speaking:
            raise RuntimeError("no turn to end: the caller is not speaking")
        self._is_speaking = False
        self._silent_run = 0
        return SpeechEnded(speech_end_ms=self._last_voiced_end_ms, decided_ms=at_ms)

    def is_voiced(self, pcm: bytes) -> bool:
        """webrtcvad's verdict on one frame, gated by energy.

        webrtcvad keeps answering "speech" for 4-6 frames after speech stops (its
        hangover; measured here), which would start turns on a click and put the
        end of speech 80-120 ms late. The energy gate removes that tail.
        """
        is_speech = bool(self._vad.is_speech(pcm, self._rate))  # always run: VAD keeps state
        return is_speech and rms_of(pcm) >= self._min_rms  # energy only when it may be speech

    def push(self, pcm: bytes, *, at_ms: float) -> SpeechStarted | SpeechEnded | None:
        """Classify one frame that starts at ``at_ms``; return an event when one happens."""
        end_ms = at_ms + self._frame_ms
        if self.is_voiced(pcm):
            self._voiced_run += 1
            self._silent_run = 0
            self._last_voiced_end_ms = end_ms
            if not self._is_speaking and self._voiced_run >= self._start_frames:
                self._is_speaking = True
                self._speech_started_ms = end_ms - self._voiced_run * self._frame_ms
                self._frames_in_turn = self._span_frames = self._voiced_run
                return SpeechStarted(at_ms=self._speech_started_ms)
            if self._is_speaking:
                self._frames_in_turn += 1
                self._span_frames = self._frames_in_turn
            return None
        self._voiced_run = 0
        if not self._is_speaking:
            return None
        self._frames_in_turn += 1
        self._silent_run += 1
        if self._silent_run >= self._end_frames:
            self._is_speaking = False
            self._silent_run = 0
            return SpeechEnded(speech_end_ms=self._last_voiced_end_ms, decided_ms=end_ms)
        return None
