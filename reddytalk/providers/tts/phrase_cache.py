"""Fixed phrases synthesized once and replayed from memory: a text-to-speech wrapper.

Why. The deterministic tier speaks a handful of fixed sentences over and over ("I'm
sorry, I didn't catch that.", "Could you repeat that?"), and the holding phrase ("One
moment.") covers every slow tool call. A cloud voice costs ~75-300 ms to its first
audio and money per character on every one of them; replayed from memory the phrase
starts at once and costs nothing. Everything else (the sentences that name a patient,
a time, a doctor) passes through to the wrapped voice unchanged and streamed, and is
never kept.

Rules. A listed phrase is kept per ``(text, sample_rate_hz)`` after one whole, successful
synthesis; its first synthesis streams to its caller as it arrives. Concurrent first
requests for one phrase synthesize it once (an ``asyncio.Lock`` per key: the later ones
replay it when it is done). A failed synthesis is not kept (the error propagates, and
the next request tries again), nor is one the consumer stopped (barge-in). At most
``max_entries`` are kept, the least recently used evicted first. Whitespace is
normalized before matching, so ``"One moment. "`` is the listed ``"One moment."``.

Where. Wrap the voice itself, inside the fallback:
``FallbackTextToSpeech(PhraseCache(primary), secondary)``; wrapped around the fallback,
a phrase first spoken by the fallback voice would be replayed in it after the primary
recovered. The cache holds one voice's audio: a clinic with its own voice has its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterable

from reddytalk.errors import ProviderError
from reddytalk.ports import TextToSpeech
from reddytalk.providers.tts.fallback import close_stream

__all__ = ["DEFAULT_PHRASES", "PhraseCache"]

log = logging.getLogger(__name__)

#: Phrases every receptionist says often: the holding phrase, the acknowledgements said
#: as a turn goes to a model (``reddytalk.dialogue.tiered.ACKNOWLEDGEMENTS``) and the
#: repair prompts.
DEFAULT_PHRASES: tuple[str, ...] = (
    "One moment.",
    "Let me check.",
    "Okay.",
    "I'm sorry, I didn't catch that.",
    "Could you repeat that?",
    "Is there anything else I can help you with?",
)

_Key = tuple[str, int]


def _normalized(text: str) -> str:
    return " ".join(text.split())


class PhraseCache:
    """Replays listed phrases from memory; passes other text through to ``voice``.

    Args:
        voice: The text-to-speech to wrap.
        phrases: The phrases to keep, in addition to :data:`DEFAULT_PHRASES`.
        max_entries: How many ``(phrase, rate)`` recordings to keep at most.
    """

    def __init__(
        self,
        voice: TextToSpeech,
        *,
        phrases: Iterable[str] = (),
        max_entries: int = 64,
    ) -> None:
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self._voice = voice
        listed = (_normalized(phrase) for phrase in (*DEFAULT_PHRASES, *phrases))
        self._phrases: tuple[str, ...] = tuple(dict.fromkeys(p for p in listed if p))
        self._max_entries = max_entries
        self._entries: OrderedDict[_Key, tuple[bytes, ...]] = OrderedDict()
        self._locks: dict[_Key, asyncio.Lock] = {}

    @property
    def voice(self) -> TextToSpeech:
        """The wrapped voice."""
        return self._voice

    @property
    def phrases(self) -> tuple[str, ...]:
        """The phrases kept, normalized, defaults first."""
        return self._phrases

    def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        """A listed phrase's recording (synthesized the first time); else ``voice``'s stream.

        Raises:
            ProviderError: As the wrapped voice raises it; a failed phrase is not kept.
        """
        phrase = _normalized(text)
        if phrase not in self._phrases:
            return self._voice.synthesize(text, sample_rate_hz=sample_rate_hz)
        return self._phrase(phrase, sample_rate_hz)

    async def warm(self, sample_rate_hz: int) -> None:
        """Synthesize every listed phrase at ``sample_rate_hz`` that is not kept yet.

        Every phrase is tried (one at a time, not to burst the service's rate limit);
        the ones that succeed are kept.

        Raises:
            ProviderError: The first failure, after trying them all.
        """
        failed: ProviderError | None = None
        for phrase in self._phrases:
            try:
                async for _chunk in self._phrase(phrase, sample_rate_hz):
                    pass
            except ProviderError as error:
                log.warning("tts phrase cache: a phrase failed to warm (%s)", error)
                failed = failed or error
        if failed is not None:
            raise failed

    def __len__(self) -> int:
        """How many recordings are kept."""
        return len(self._entries)

    async def _phrase(self, phrase: str, sample_rate_hz: int) -> AsyncIterator[bytes]:
        key = (phrase, sample_rate_hz)
        kept = self._hit(key)
        if kept is None:
            lock = self._locks.setdefault(key, asyncio.Lock())
            async with lock:
                kept = self._hit(key)  # a concurrent first request may have kept it
                if kept is None:
                    chunks: list[bytes] = []
                    stream = self._voice.synthesize(phrase, sample_rate_hz=sample_rate_hz)
                    try:
                        async for chunk in stream:
                            chunks.append(chunk)
                            yield chunk
                    finally:
                        await close_stream(stream)  # now, so a barged-in voice stops at once
                    # Reached only when the voice finished: an error or a consumer
                    # that stopped iterating leaves nothing behind.
                    self._keep(key, tuple(chunks))
                    return
        for chunk in kept:
            yield chunk

    def _hit(self, key: _Key) -> tuple[bytes, ...] | None:
        kept = self._entries.get(key)
        if kept is not None:
            self._entries.move_to_end(key)
        return kept

    def _keep(self, key: _Key, chunks: tuple[bytes, ...]) -> None:
        if not any(chunks):
            return  # a voice that said nothing: try again next time
        self._entries[key] = chunks
        self._entries.move_to_end(key)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
