"""Embedded speech-to-text: pocketsphinx with a JSGF grammar per dialogue state.

The pocketsphinx wheel ships its US English acoustic model and dictionary, so
nothing is downloaded at run time. Free dictation of synthetic speech is poor; the
same audio against the state's grammar was exact when measured here (see
shared/WHAT-WORKS-HERE.md), so the recognizer decodes with the grammar the dialogue
state hands it. Hints without a grammar (the caller's message for staff, which no
grammar holds) are decoded with the wheel's general n-gram language model; the
measurements behind that choice are in :mod:`reddytalk.dialogue.grammar`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections.abc import Sequence
from pathlib import Path

from pocketsphinx import Decoder, NGramModel, get_model_path

from reddytalk.errors import ProviderError
from reddytalk.frames import Transcript
from reddytalk.ports import RecognitionHints

__all__ = ["PocketsphinxRecognizer", "PocketsphinxSpeechToText"]

log = logging.getLogger(__name__)

_DECODER_RATE_HZ = 16_000
_LANGUAGE_MODEL = Path(get_model_path()) / "en-us" / "en-us.lm.bin"
_DICTATION = "dictation"


# A word of a JSGF rule's body: not a <rule> reference, a /weight/ or an operator.
_JSGF_WORD = re.compile(r"(?<![<\w'/.])[a-z][a-z']*(?![\w'>/])")


def _in_vocabulary(decoder: Decoder, jsgf: str) -> tuple[str, int]:
    """``jsgf`` with each word the dictionary lacks replaced by ``<NULL>`` (nothing to
    say), and how many there were.

    A clinic's own words (a provider's family name such as "Okafor") may not be in the
    wheel's dictionary, and pocketsphinx refuses a whole grammar for one unknown word.
    Without them the caller is still understood, only not by those words (they would
    need a pronunciation, and no letter-to-sound model ships with the wheel). ``<VOID>``
    (an alternative that can never be said) would be the exact meaning, but measured
    here it wrecked recognition of the whole grammar ("i would like to book an
    appointment" heard as "i want to talk to a human"); ``<NULL>`` does not.
    """
    if not jsgf:
        return jsgf, 0
    header, _, rules = jsgf.partition("grammar ")
    grammar_line, _, body = rules.partition(";")
    unknown: set[str] = set()

    def replace(match: re.Match[str]) -> str:
        word = match.group(0)
        if decoder.lookup_word(word) is not None:
            return word
        unknown.add(word)
        return "<NULL>"

    body = _JSGF_WORD.sub(replace, body)
    return f"{header}grammar {grammar_line};{body}", len(unknown)


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
        self._language_model: NGramModel | None = None

    def set_hints(self, hints: RecognitionHints) -> None:
        """Use ``hints`` (its JSGF grammar, or dictation if it has none) from the next turn on."""
        self._pending = hints

    def _add_dictation(self) -> bool:
        """Set up the n-gram search; False if the language model cannot be loaded.

        It takes 130 to 300 ms and about 65 MB (measured here), paid once and only by a call
        that needs it, when the caller starts speaking their message: pocketsphinx holds
        the GIL throughout, so a thread would not spare the event loop, and at that
        moment the wait delays no answer (the first frames wait in the socket and are
        decoded right after).
        """
        try:
            model = NGramModel(self._decoder.config, self._decoder.logmath, str(_LANGUAGE_MODEL))
            self._decoder.add_lm(_DICTATION, model)
        except (OSError, RuntimeError, ValueError) as error:
            log.warning("pocketsphinx language model unavailable: %s", type(error).__name__)
            return False
        self._language_model = model  # kept alive as long as the decoder's search
        self._searches[_DICTATION] = _DICTATION
        return True

    def _activate_pending(self) -> None:
        hints = self._pending
        if hints is None:
            return
        self._pending = None
        if not hints.jsgf:
            if _DICTATION in self._searches or self._add_dictation():
                self._decoder.activate_search(_DICTATION)
            return  # without the language model, the last grammar is the best there is
        name = "g" + hashlib.sha1(hints.jsgf.encode()).hexdigest()[:16]
        if name not in self._searches:
            jsgf, unknown = _in_vocabulary(self._decoder, hints.jsgf)
            if unknown:  # counted, not named: the words may include a caller's name one day
                log.warning("%d grammar words are not in the dictionary; left out", unknown)
            self._decoder.add_jsgf_string(name, jsgf)
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
        """Decode one frame (for 20 ms of audio about 0.2 ms with a grammar, 3 ms dictating)."""
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
            # seg() is None when no path reached the grammar's end (noise, a cut-off word).
            words = [_word(segment.word) for segment in self._decoder.seg() or ()]
        return Transcript(" ".join(w for w in words if w))

    def hypothesis(self, *, trailing_silence_ms: int) -> str:
        """None: the final is ready within milliseconds of the end of the turn."""
        return ""

    def finish_turn(self) -> asyncio.Future[Transcript]:
        """End the utterance now and return the best match ("" if none).

        1-5 ms for a grammar, about 10 ms (at most 20 ms) for dictation, measured here.
        """
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

    async def open(
        self, *, sample_rate_hz: int, languages: Sequence[str] = ("en-US",)
    ) -> PocketsphinxRecognizer:
        """A recognizer; ``sample_rate_hz`` must be 16 kHz (the pipeline resamples).

        The model is US English: for a clinic that lists other languages too, callers
        are recognized as English (the cloud profile's Azure Speech identifies them).
        """
        if sample_rate_hz != _DECODER_RATE_HZ:
            raise ProviderError("pocketsphinx decodes 16 kHz audio", retryable=False)
        try:
            # No second (flat lexicon) pass for dictation: it lowered the word error rate
            # of clinic messages from 43 % to 37 % but took 130 ms (up to 250 ms) at the end
            # of every turn, measured here; grammar searches do not use it.
            decoder = await asyncio.to_thread(
                Decoder,
                samprate=_DECODER_RATE_HZ,
                loglevel="FATAL",
                lm=None,
                bestpath=False,
                fwdflat=False,
            )
        except (RuntimeError, ValueError) as error:
            raise ProviderError("pocketsphinx failed to start", retryable=False) from error
        return PocketsphinxRecognizer(decoder)
