"""The caller's ears: what a caller heard the receptionist read back.

The end-to-end test must not trust the receptionist's own record of what it said;
it asks what reached the caller as sound. This module decodes one answer's audio
with pocketsphinx against a grammar of the read-back sentence ("Let me confirm: a
check-up with Doctor Chen on Tuesday, December first at nine A M. Shall I book
it?") whose days and times are the ones a caller of this clinic could be offered:
every day of the booking horizon and every slot start within opening hours.

Why a grammar this narrow: free dictation of espeak-ng speech is useless here,
and the general clock grammar (any hour, any minute) confused "eight A M" with
"six oh two" in a third of the read-backs (measured on 54 synthesized
read-backs). Against the clinic's own days and slot times the same audio was
recognized 54/54 at the receptionist's speaking rate. A wrong time read back is
still a valid alternative in this grammar, so the test can fail.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pocketsphinx import Decoder

from reddytalk.audio.pcm import resample
from reddytalk.dialogue.spoken import say_date, say_time
from reddytalk.dialogue.understanding import normalize
from reddytalk.scheduling.model import Clinic

__all__ = ["ReadBack", "ReadBackEars"]

_DECODER_RATE_HZ = 16_000


@dataclass(frozen=True, slots=True)
class ReadBack:
    """The read-back as heard: the whole sentence, and its day and time as words."""

    words: str
    day: str
    time: str


def _slot_times(clinic: Clinic) -> list[str]:
    step = dt.timedelta(minutes=clinic.slot_minutes)
    spoken = set()
    for hours in clinic.hours:
        at = dt.datetime.combine(dt.date(2000, 1, 3), hours.opens)
        closes = dt.datetime.combine(at.date(), hours.closes)
        while at + step <= closes:
            spoken.add(normalize(say_time(at.time())))
            at += step
    return sorted(spoken)


def read_back_grammar(clinic: Clinic, *, today: dt.date, days: int) -> str:
    """The JSGF grammar of the read-back for ``clinic`` over ``days`` days from ``today``."""
    types = sorted({normalize(t.display_name) for t in clinic.appointment_types})
    providers = sorted({normalize(p.display_name) for p in clinic.providers})
    day_phrases = sorted(
        {normalize(say_date(today + dt.timedelta(days=n))) for n in range(days + 1)}
    )
    return (
        "#JSGF V1.0;\ngrammar readback;\n"
        "public <readback> = let me confirm a <type> with <provider> on <day> at <time>"
        " shall i (book it | move your appointment);\n"
        f"<type> = {' | '.join(types)};\n"
        f"<provider> = {' | '.join(providers)};\n"
        f"<day> = {' | '.join(day_phrases)};\n"
        f"<time> = {' | '.join(_slot_times(clinic))};\n"
    )


class ReadBackEars:
    """Hears read-backs of ``clinic``'s appointments (about 80 ms per answer)."""

    def __init__(self, clinic: Clinic, *, today: dt.date, days: int = 15) -> None:
        self._decoder = Decoder(
            samprate=_DECODER_RATE_HZ, loglevel="FATAL", lm=None, bestpath=False
        )
        self._decoder.add_jsgf_string("readback", read_back_grammar(clinic, today=today, days=days))
        self._decoder.activate_search("readback")
        self._days = {normalize(say_date(today + dt.timedelta(days=n))) for n in range(days + 1)}
        self._times = set(_slot_times(clinic))

    def hear(self, pcm: bytes, *, sample_rate_hz: int) -> ReadBack | None:
        """The read-back in ``pcm`` (16-bit mono), or None if the audio is not one."""
        if sample_rate_hz != _DECODER_RATE_HZ:
            pcm = resample(pcm, from_hz=sample_rate_hz, to_hz=_DECODER_RATE_HZ)
        self._decoder.start_utt()
        self._decoder.process_raw(pcm, False, True)
        self._decoder.end_utt()
        words = " ".join(
            segment.word.split("(", 1)[0]
            for segment in self._decoder.seg() or ()
            if not segment.word.startswith(("<", "[", "("))
        )
        if not words.startswith("let me confirm"):
            return None
        middle = words.split(" on ", 1)[1].rsplit(" shall i ", 1)[0]
        day, time = middle.rsplit(" at ", 1)
        if day not in self._days or time not in self._times:
            return None
        return ReadBack(words, day, time)
