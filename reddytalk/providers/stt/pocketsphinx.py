"""Embedded speech-to-text: pocketsphinx with a JSGF grammar per dialogue state.

The pocketsphinx wheel ships its US English acoustic model and dictionary, so
nothing is downloaded at run time. Free dictation of synthetic speech is poor; the
same audio against the state's grammar was exact when measured here (see
shared/WHAT-WORKS-HERE.md), so the recognizer always decodes with the grammar the
dialogue state hands it.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading

from pocketsphinx import Decoder

from reddytalk.errors import ProviderError
from reddytalk.frames import Transcript
from reddytalk.ports import RecognitionHints

__all__ = ["PocketsphinxRecognizer", "PocketsphinxSpeechToText"]

_DECODER_RATE_HZ = 16_000


def _word(token: str) -> str:
    """A dictionary word without its pronunciation variant; "" for fillers."""
    if token.startswith(("<", "[")):
        return ""
    return token.split("(", 1)[0]


class PocketsphinxRecognizer:
    """One call's recognizer. Frames must be 16 kHz (the pipeline resamples)."""

    def __init__(self, decoder: Decoder) -> None:
        self._decoder = decoder
        self._searches: dict[str, str] = {}
        self._pending: RecognitionHints | None = None
        self._is_in_turn = False
        self._lock = threading.Lock()

    def set_hints(self, hints: RecognitionHints) -> None:
        """Use ``hints`` (its JSGF grammar) from the next turn on."""
        self._pending = hints

    def _activate_pending(self) -> None:
        hints = self._pending
        if hints is None:
            return
        self._pending = None
        name = "g" + hashlib.sha1(hints.jsgf.encode()).hexdigest()[:16]
        if name not in self._searches:
            self._decoder.add_jsgf_string(name, hints.jsgf)
            self._searches[name] = hints.state
        self._decoder.activate_search(name)

    def start_turn(self) -> None:
        """Begin an utterance (the grammar switch happens here, between turns)."""
        with self._lock:
            if self._is_in_turn:
                self._decoder.end_utt()
            self._activate_pending()
            self._decoder.start_utt()
            self._is_in_turn = True

    def accept(self, pcm: bytes) -> None:
        """Decode one frame (about 0.2 ms for 20 ms of audio when measured here)."""
        if self._is_in_turn:
            with self._lock:
                self._decoder.process_raw(pcm, False, False)

    def _finish(self) -> Transcript:
        with self._lock:
            if not self._is_in_turn:
                return Transcript("")
            self._is_in_turn = False
            self._decoder.end_utt()
            # No lattice: with bestpath on, hyp() and seg() build one and compute its
            # posteriors, which took 650 ms for the date-and-time grammar (measured
            # here); the grammar search's own backtrace takes under 1 ms.
            words = [_word(segment.word) for segment in self._decoder.seg()]
        return Transcript(" ".join(w for w in words if w))

    def finish_turn(self) -> asyncio.Future[Transcript]:
        """End the utterance now (1-5 ms) and return the grammar's best match ("" if none)."""
        future: asyncio.Future[Transcript] = asyncio.get_running_loop().create_future()
        future.set_result(self._finish())
        return future

    def close(self) -> None:
        """Drop the decoder."""
        with self._lock:
            if self._is_in_turn:
                self._decoder.end_utt()
                self._is_in_turn = False


class PocketsphinxSpeechToText:
    """Creates one decoder per call (about 110 ms, done off the event loop)."""

    async def open(self, *, sample_rate_hz: int) -> PocketsphinxRecognizer:
        """A recognizer; ``sample_rate_hz`` must be 16 kHz (the pipeline resamples)."""
        if sample_rate_hz != _DECODER_RATE_HZ:
            raise ProviderError("pocketsphinx decodes 16 kHz audio", retryable=False)
        try:
            decoder = await asyncio.to_thread(
                Decoder, samprate=_DECODER_RATE_HZ, loglevel="FATAL", lm=None, bestpath=False
            )
        except (RuntimeError, ValueError) as error:
            raise ProviderError("pocketsphinx failed to start", retryable=False) from error
        return PocketsphinxRecognizer(decoder)
