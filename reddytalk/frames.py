"""What flows through a call: small frozen values with units in their names.

Every stage of the per-call pipeline exchanges these and nothing else, so a turn
can be replayed in a test as a timeline of frames.

On barge-in (the caller speaks over an answer) frames of the answer that were not
yet sent are dropped; inbound frames are never dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "AudioChunk",
    "AudioFormat",
    "DtmfTone",
    "PolicyOutput",
    "Say",
    "ToolCall",
    "Transcript",
    "TurnTimings",
    "EndCall",
    "TransferToStaff",
]


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """The stream's audio format, from ACS's first ``AudioMetadata`` message."""

    sample_rate_hz: int = 16_000
    channels: int = 1
    frame_bytes: int = 640

    @property
    def frame_ms(self) -> int:
        """Duration of one frame (20 ms for ACS)."""
        return self.frame_bytes * 1000 // (2 * self.channels * self.sample_rate_hz)


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """One inbound 20 ms frame of 16-bit little-endian mono PCM."""

    pcm: bytes
    is_silent: bool = False
    participant_raw_id: str = ""


@dataclass(frozen=True, slots=True)
class DtmfTone:
    """A key the caller pressed (``0-9``, ``*``, ``#``)."""

    tone: str


@dataclass(frozen=True, slots=True)
class Transcript:
    """What the recognizer heard in one caller turn. PHI: never logged."""

    text: str
    is_final: bool = True


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool the policy called, with its arguments and the tool's result."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    result: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Say:
    """Text for the caller to hear; one clause or sentence at a time.

    ``is_filler``: a cached acknowledgement or holding phrase ("Let me check.", "One
    moment."), said while the answer is being worked out: not the answer's content.
    """

    text: str
    is_filler: bool = False


@dataclass(frozen=True, slots=True)
class EndCall:
    """Hang up once everything said so far has played."""

    reason: str = "completed"


@dataclass(frozen=True, slots=True)
class TransferToStaff:
    """Hand the caller to a person once everything said so far has played."""

    reason: str = "caller_request"


PolicyOutput = Say | ToolCall | EndCall | TransferToStaff


@dataclass(slots=True)
class TurnTimings:
    """Monotonic timestamps of one caller turn, in ms since the stream opened.

    ``None`` means the stage did not happen (for instance a turn cut short by
    barge-in never sent a frame).
    """

    turn: int
    caller_speech_end_ms: float | None = None
    turn_end_decided_ms: float | None = None
    transcript_final_ms: float | None = None
    first_policy_text_ms: float | None = None
    first_tts_audio_ms: float | None = None
    first_frame_sent_ms: float | None = None
    first_content_sent_ms: float | None = None
    """The first frame of words that answer the caller (not a filler such as "Let me
    check."): the issue's "first content", on the worker's clock."""
    was_interrupted: bool = False
    tier: str | None = None
    """Who answered the turn (the policy's ``last_tier``)."""
    resumed: bool = False
    """The turn was a false interruption (no words): the cut answer was said again."""
    tool_wait_ms: float = 0.0
    """How long the answer's first words waited on the tools it called first (a look-up:
    the EHR's time, not the pipeline's)."""
    early: bool = False
    """The turn was answered on the recognizer's hypothesis, before its final transcript."""
    revision: str | None = None
    """The final transcript said other words than the hypothesis answered: ``withdrawn``
    (nobody had heard the answer: it was dropped and the final answered) or ``kept``."""

    def stage_durations_ms(self) -> dict[str, float | None]:
        """Each stage as a duration from the end of the caller's speech."""
        start = self.caller_speech_end_ms

        def since(at: float | None) -> float | None:
            return None if start is None or at is None else round(at - start, 1)

        return {
            "end_of_turn": since(self.turn_end_decided_ms),
            "transcript_final": since(self.transcript_final_ms),
            "first_policy_text": since(self.first_policy_text_ms),
            "first_tts_audio": since(self.first_tts_audio_ms),
            "first_frame_sent": since(self.first_frame_sent_ms),
            "first_content_sent": since(self.first_content_sent_ms),
        }
