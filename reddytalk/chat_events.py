"""What a streamed chat completion turns into, as it arrives, and the clause cutter.

A language model adapter yields these in order: ``TextDelta`` for every piece of text,
``Clause`` as soon as a piece of the answer can be spoken on its own (so text to
speech starts on the first clause, not the whole answer), ``FirstTokenLate`` at most
once while nothing has come yet (the policy may say "one moment"), ``ToolCallRequest``
or ``InvalidToolCall`` when the model finished asking for tools, and ``Finished`` last.

On barge-in the consumer stops iterating (or its task is cancelled); the adapter then
closes the HTTP stream and nothing more is yielded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = [
    "ChatEvent",
    "Clause",
    "ClauseCutter",
    "Finished",
    "FirstTokenLate",
    "InvalidToolCall",
    "TextDelta",
    "ToolCallRequest",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text, as the model streamed it."""

    text: str


@dataclass(frozen=True, slots=True)
class Clause:
    """A piece of the answer that can be spoken on its own (stripped, never empty)."""

    text: str


@dataclass(frozen=True, slots=True)
class FirstTokenLate:
    """Nothing came within the first-token bound; the stream goes on."""

    after_ms: float


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    """The model asks for a tool; ``arguments`` is its JSON object, parsed."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InvalidToolCall:
    """The model asked for a tool with arguments that are not a JSON object.

    The arguments themselves are left out (they may hold PHI); the policy can answer
    the model with a tool error under ``id`` or try again.
    """

    id: str
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts of one completion; ``cached_prompt_tokens`` came from the prompt cache."""

    prompt_tokens: int
    completion_tokens: int
    cached_prompt_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Finished:
    """The completion ended (``reason``: stop, tool_calls, length, content_filter, …).

    ``first_token_ms`` is from the request to the first text or tool-call delta, None
    if none came.
    """

    reason: str
    usage: Usage | None
    first_token_ms: float | None


ChatEvent = TextDelta | Clause | FirstTokenLate | ToolCallRequest | InvalidToolCall | Finished

_ENDS = frozenset(".?!")
_PAUSES = frozenset(",;")
# A full stop after these is not the end of a clause ("Dr. Patel", "St. Mary's").
_ABBREVIATIONS = frozenset(
    {"dr", "mr", "mrs", "ms", "st", "jr", "sr", "vs", "e.g", "i.e", "a.m", "p.m"}
)


class ClauseCutter:
    """Cuts streamed text into clauses: after ``.``, ``?`` or ``!``, and after ``,`` or
    ``;`` once the clause is at least ``min_pause_chars`` long (short ones like "Sure,"
    sound choppy on their own).

    A mark counts only when whitespace follows it, so "9.30" and "Dr. Patel" stay
    whole; the last clause comes from :meth:`flush`.
    """

    def __init__(self, *, min_pause_chars: int = 24) -> None:
        self._min_pause_chars = min_pause_chars
        self._buffer = ""

    def feed(self, text: str) -> list[str]:
        """Add streamed ``text``; the clauses it completed."""
        self._buffer += text
        clauses: list[str] = []
        start = 0
        for i in range(len(self._buffer) - 1):
            if not self._buffer[i + 1].isspace() or not self._is_cut(start, i):
                continue
            clause = self._buffer[start : i + 1].strip()
            if clause:
                clauses.append(clause)
            start = i + 1
        self._buffer = self._buffer[start:]
        return clauses

    def flush(self) -> str | None:
        """The text left over at the end of the stream, if any."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None

    def _is_cut(self, start: int, i: int) -> bool:
        mark = self._buffer[i]
        if mark in _PAUSES:
            return len(self._buffer[start:i].strip()) >= self._min_pause_chars
        if mark not in _ENDS:
            return False
        if mark == ".":
            words = self._buffer[start:i].split()
            return not words or words[-1].lower() not in _ABBREVIATIONS
        return True
