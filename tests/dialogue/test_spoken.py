"""Tests for the spoken forms of dates, times and digits, down to real pocketsphinx decoding."""

from __future__ import annotations

import datetime
import io
import re
import shutil
import subprocess
import wave
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import soxr
from hypothesis import given
from hypothesis import strategies as st
from pocketsphinx import Decoder

from reddytalk.dialogue.spoken import (
    JSGF_RULES,
    When,
    parse_date_of_birth,
    parse_digits,
    parse_when,
    say_date,
    say_date_of_birth,
    say_time,
)

D = datetime.date
T = datetime.time
WEDNESDAY = D(2026, 11, 25)
SUNDAY = D(2026, 11, 29)


def _day(day: D) -> When:
    return When(day=day, part_of_day=None, clock_time=None)


WHEN_ON_WEDNESDAY = [
    ("today", _day(D(2026, 11, 25))),
    ("tomorrow", _day(D(2026, 11, 26))),
    ("yesterday", _day(D(2026, 11, 24))),
    ("the day after tomorrow", _day(D(2026, 11, 27))),
    ("monday", _day(D(2026, 11, 30))),
    ("wednesday", _day(D(2026, 11, 25))),
    ("this friday", _day(D(2026, 11, 27))),
    ("next friday", _day(D(2026, 12, 4))),
    ("next tuesday", _day(D(2026, 12, 1))),
    ("next wednesday", _day(D(2026, 12, 2))),
    ("the fifteenth", _day(D(2026, 12, 15))),
    ("the twenty fifth", _day(D(2026, 11, 25))),
    ("the thirty first", _day(D(2026, 12, 31))),
    ("december third", _day(D(2026, 12, 3))),
    ("december three", _day(D(2026, 12, 3))),
    ("the third of december", _day(D(2026, 12, 3))),
    ("november twentieth", _day(D(2027, 11, 20))),
    ("tuesday december first", _day(D(2026, 12, 1))),
    ("next week", _day(D(2026, 11, 30))),
    ("on monday", _day(D(2026, 11, 30))),
    ("how about tomorrow", _day(D(2026, 11, 26))),
    ("maybe friday", _day(D(2026, 11, 27))),
    ("i would like next tuesday please", _day(D(2026, 12, 1))),
    ("the one on tuesday", _day(D(2026, 12, 1))),
    ("tomorrow afternoon", When(D(2026, 11, 26), "afternoon", None)),
    ("monday morning", When(D(2026, 11, 30), "morning", None)),
    ("this evening", When(D(2026, 11, 25), "evening", None)),
    ("next tuesday at ten a m", When(D(2026, 12, 1), None, T(10))),
    ("the fifteenth at two p m", When(D(2026, 12, 15), None, T(14))),
    ("tomorrow afternoon at three", When(D(2026, 11, 26), "afternoon", T(15))),
    ("friday at seven in the evening", When(D(2026, 11, 27), "evening", T(19))),
    ("in the morning", When(None, "morning", None)),
    ("afternoon", When(None, "afternoon", None)),
    ("at nine thirty", When(None, None, T(9, 30))),
    ("at one", When(None, None, T(13))),
    ("nine", When(None, None, T(9))),
    ("nine a m", When(None, None, T(9))),
    ("ten o'clock", When(None, None, T(10))),
    ("two fifteen p m", When(None, None, T(14, 15))),
    ("noon", When(None, None, T(12))),
    ("nine oh five", When(None, None, T(9, 5))),
    ("twelve thirty", When(None, None, T(12, 30))),
    ("any time", When(None, None, None, is_asap=True)),
    ("as soon as possible", When(None, None, None, is_asap=True)),
    ("the earliest", When(None, None, None, is_asap=True)),
    ("the first available", When(None, None, None, is_asap=True)),
    ("any time tomorrow", When(D(2026, 11, 26), None, None, is_asap=True)),
]

WHEN_ON_SUNDAY = [
    ("today", _day(D(2026, 11, 29))),
    ("yesterday", _day(D(2026, 11, 28))),
    ("sunday", _day(D(2026, 11, 29))),
    ("monday", _day(D(2026, 11, 30))),
    ("next monday", _day(D(2026, 11, 30))),
    ("this friday", _day(D(2026, 12, 4))),
    ("next friday", _day(D(2026, 12, 4))),
    ("next sunday", _day(D(2026, 12, 6))),
    ("next week", _day(D(2026, 11, 30))),
    ("the fifteenth", _day(D(2026, 12, 15))),
    ("the twenty ninth", _day(D(2026, 11, 29))),
    ("december third", _day(D(2026, 12, 3))),
    ("the third of december at nine", When(D(2026, 12, 3), None, T(9))),
]

NOT_WHEN = ["", "hello", "i am not sure", "february thirtieth", "the thirtieth of february"]

DATES_OF_BIRTH = [
    ("march fifteenth nineteen eighty four", D(1984, 3, 15)),
    ("the fifteenth of march nineteen eighty four", D(1984, 3, 15)),
    ("march fifteen two thousand one", D(2001, 3, 15)),
    ("march first two thousand", D(2000, 3, 1)),
    ("march twenty two thousand", D(2000, 3, 20)),
    ("july fourth nineteen oh five", D(1905, 7, 4)),
    ("january first nineteen hundred", D(1900, 1, 1)),
    ("may the fifth two thousand and twelve", D(2012, 5, 5)),
    ("may fifth twenty twelve", D(2012, 5, 5)),
    ("december thirty first twenty twenty nine", D(2029, 12, 31)),
    ("february twenty ninth two thousand", D(2000, 2, 29)),
    ("uh my birthday is june second nineteen ninety thanks", D(1990, 6, 2)),
]

NOT_DATES_OF_BIRTH = [
    "march fifteenth",
    "february thirtieth nineteen eighty four",
    "february twenty ninth nineteen oh one",
    "march fifteenth twenty fifty",
    "nineteen eighty four",
]

DIGITS = [
    ("five five five one two one two", "5551212"),
    ("oh", "0"),
    ("zero one two three four five six seven eight nine oh one", "012345678901"),
    ("my number is two oh six five five five oh one nine nine thanks", "2065550199"),
    ("oh my member id is four four two", "442"),
]

NOT_DIGITS = ["", "hello", "one two three four five six seven eight nine one two three four"]


@pytest.mark.parametrize(("words", "expected"), WHEN_ON_WEDNESDAY)
def test_parse_when_on_a_wednesday(words: str, expected: When) -> None:
    assert parse_when(words, today=WEDNESDAY) == expected


@pytest.mark.parametrize(("words", "expected"), WHEN_ON_SUNDAY)
def test_parse_when_on_a_sunday(words: str, expected: When) -> None:
    assert parse_when(words, today=SUNDAY) == expected


@pytest.mark.parametrize("words", NOT_WHEN)
def test_parse_when_returns_none_without_a_day_or_time(words: str) -> None:
    assert parse_when(words, today=WEDNESDAY) is None


@pytest.mark.parametrize(
    ("today", "expected"),
    [(D(2026, 11, 25), None), (D(2027, 11, 25), D(2028, 2, 29)), (D(2028, 3, 1), None)],
)
def test_leap_day_resolves_only_within_this_or_next_year(today: D, expected: D | None) -> None:
    parsed = parse_when("february twenty ninth", today=today)
    assert (parsed and parsed.day) == expected


def test_a_spoken_year_is_used_as_said() -> None:
    assert parse_when("december third twenty twenty six", today=WEDNESDAY) == _day(D(2026, 12, 3))


def test_parsers_ignore_case_and_punctuation() -> None:
    assert parse_when("Tuesday, December first.", today=WEDNESDAY) == _day(D(2026, 12, 1))
    assert parse_date_of_birth(
        "March 15th? No: March fifteenth, 1984... nineteen eighty four"
    ) == D(1984, 3, 15)


@pytest.mark.parametrize(("words", "expected"), DATES_OF_BIRTH)
def test_parse_date_of_birth(words: str, expected: D) -> None:
    assert parse_date_of_birth(words) == expected


@pytest.mark.parametrize("words", NOT_DATES_OF_BIRTH)
def test_parse_date_of_birth_needs_a_real_date_with_a_year(words: str) -> None:
    assert parse_date_of_birth(words) is None


@pytest.mark.parametrize(("words", "expected"), DIGITS)
def test_parse_digits(words: str, expected: str) -> None:
    assert parse_digits(words) == expected


@pytest.mark.parametrize("words", NOT_DIGITS)
def test_parse_digits_needs_one_to_twelve_digits(words: str) -> None:
    assert parse_digits(words) is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (T(9, 30), "nine thirty A M"),
        (T(14), "two P M"),
        (T(12), "noon"),
        (T(9, 5), "nine oh five A M"),
        (T(12, 45), "twelve forty five P M"),
        (T(0, 15), "twelve fifteen A M"),
        (T(18, 10), "six ten P M"),
    ],
)
def test_say_time(value: T, expected: str) -> None:
    assert say_time(value) == expected


def test_say_date() -> None:
    assert say_date(D(2026, 12, 1)) == "Tuesday, December first"
    assert say_date(D(2026, 12, 22)) == "Tuesday, December twenty second"
    assert say_date_of_birth(D(1984, 3, 15)) == "March fifteenth, nineteen eighty four"
    assert say_date_of_birth(D(2005, 7, 31)) == "July thirty first, two thousand five"
    assert say_date_of_birth(D(1900, 1, 1)) == "January first, nineteen hundred"


def test_every_clinic_time_on_a_five_minute_grid_round_trips() -> None:
    grid = [T(h, m) for h in range(7, 19) for m in range(0, 60, 5)]
    for value in grid:
        assert parse_when(say_time(value), today=WEDNESDAY) == When(None, None, value)


@given(st.times().map(lambda t: t.replace(second=0, microsecond=0)))
def test_any_time_round_trips(value: T) -> None:
    parsed = parse_when(say_time(value), today=WEDNESDAY)
    assert parsed is not None
    assert parsed.clock_time == value


@given(st.dates(D(1990, 1, 1), D(2100, 1, 1)), st.integers(0, 364))
def test_any_day_within_a_year_round_trips(today: D, offset: int) -> None:
    day = today + datetime.timedelta(days=offset)
    assert parse_when(say_date(day), today=today) == _day(day)


@given(st.dates(D(1900, 1, 1), D(2029, 12, 31)))
def test_any_date_of_birth_round_trips(day: D) -> None:
    assert parse_date_of_birth(say_date_of_birth(day)) == day


# --- pocketsphinx -------------------------------------------------------------------------


def _grammar_words() -> set[str]:
    return set(re.sub(r"<[^>]+>|[=;|()\[\]]", " ", JSGF_RULES).split())


@pytest.fixture(scope="module")
def decoder_dictionary() -> Decoder:
    return Decoder(loglevel="FATAL")


def test_every_grammar_word_is_in_the_default_dictionary(decoder_dictionary: Decoder) -> None:
    words = _grammar_words()
    assert {"o'clock", "a", "m", "p", "oh", "noon"} <= words
    assert [w for w in sorted(words) if decoder_dictionary.lookup_word(w) is None] == []


def _grammar(tmp_path: Path, public: str) -> Path:
    path = tmp_path / "test.gram"
    path.write_text(f"#JSGF V1.0;\ngrammar test;\npublic <s> = {public};\n{JSGF_RULES}")
    return path


@pytest.fixture(scope="module")
def full_decoder(tmp_path_factory: pytest.TempPathFactory) -> Decoder:
    path = _grammar(tmp_path_factory.mktemp("grammar"), "<dob> | <when> | <digits>")
    return Decoder(jsgf=str(path), samprate=16000, loglevel="FATAL")


def _spoken_examples() -> Iterator[str]:
    for words, _ in [*WHEN_ON_WEDNESDAY, *WHEN_ON_SUNDAY, *DATES_OF_BIRTH, *DIGITS]:
        if not words.startswith(("i ", "uh ", "my ", "oh my", "the one")):  # free-text examples
            yield words
    yield from ("march fifteen two thousand one", "any time tomorrow")


def test_the_grammar_accepts_every_spoken_example(full_decoder: Decoder) -> None:
    fsg = full_decoder.get_fsg()
    assert [w for w in _spoken_examples() if not fsg.accept(w)] == []


def test_the_grammar_accepts_what_the_assistant_says(full_decoder: Decoder) -> None:
    fsg = full_decoder.get_fsg()
    said = [say_date(WEDNESDAY + datetime.timedelta(days=k)) for k in range(0, 366, 7)]
    said += [say_time(T(h, m)) for h in range(24) for m in range(0, 60, 5)]
    said += [say_date_of_birth(D(y, 12, 31)) for y in range(1900, 2030)]
    spoken = [" ".join(re.findall(r"[a-z']+", s.lower())) for s in said]
    assert [s for s in spoken if not fsg.accept(s)] == []


def test_the_grammar_rejects_what_the_parsers_do_not_understand(full_decoder: Decoder) -> None:
    fsg = full_decoder.get_fsg()
    assert not fsg.accept("the one on tuesday")
    assert not fsg.accept("march fifteenth nineteen")
    assert not fsg.accept("one two three four five six seven eight nine one two three four")


# espeak-ng's en-us+m3 voice decodes exactly against a grammar of a few fixed phrases, but not
# against these rules (every date, time and digit string): the confusions named below
# ("march the thirteenth", "next tuesday at two", "the sixteenth at two p m") score better
# acoustically even in a two-phrase grammar holding only the right and the wrong phrase
# (measured 2026-11-25, pocketsphinx 5.1.1, default en-us model). strict xfail: a better
# model or voice turns them into failures to be promoted to passing cases.
ACOUSTIC = [
    ("tomorrow afternoon", "<when>", lambda w: parse_when(w, today=WEDNESDAY), None),
    ("five five five one two one two", "<digits>", parse_digits, None),
    ("as soon as possible", "<when>", lambda w: parse_when(w, today=WEDNESDAY), None),
    ("the day after tomorrow", "<when>", lambda w: parse_when(w, today=WEDNESDAY), None),
    ("march fifteenth nineteen eighty four", "<dob>", parse_date_of_birth, "thirteenth"),
    ("next tuesday at ten a m", "<when>", lambda w: parse_when(w, today=WEDNESDAY), "at two"),
    ("the fifteenth at two p m", "<when>", lambda w: parse_when(w, today=WEDNESDAY), "sixteenth"),
]


def _speak(text: str) -> bytes:
    wav = subprocess.run(
        ["espeak-ng", "-v", "en-us+m3", "-s", "160", "--stdout", text],
        capture_output=True,
        check=True,
    ).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        samples = np.frombuffer(reader.readframes(reader.getnframes()), dtype=np.int16)
    resampled = soxr.resample(samples.astype(np.float32) / 32768, rate, 16000)
    return bytes(np.clip(resampled * 32768, -32768, 32767).astype(np.int16).tobytes())


def _decode(decoder: Decoder, pcm: bytes, *, full_utt: bool = False) -> str:
    decoder.start_utt()
    if full_utt:
        decoder.process_raw(pcm, False, True)
    else:
        for start in range(0, len(pcm), 640):  # 20 ms of 16 kHz 16-bit mono, as a call streams
            decoder.process_raw(pcm[start : start + 640], False, False)
    decoder.end_utt()
    hypothesis = decoder.hyp()
    return "" if hypothesis is None else str(hypothesis.hypstr)


@pytest.fixture(scope="module")
def converged_cmn() -> str:
    """A cepstral mean for this voice, as live CMN holds after the first seconds of a call.

    A fresh decoder's initial mean is far from espeak's, which wrecks the first utterance.
    """
    decoder = Decoder(samprate=16000, loglevel="FATAL")
    _decode(decoder, b"".join(_speak(text) for text, *_ in ACOUSTIC), full_utt=True)
    return str(decoder.get_cmn(True))


needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


@needs_espeak
@pytest.mark.parametrize(
    ("text", "rule", "parse", "known_confusion"),
    [
        pytest.param(
            *case,
            marks=[pytest.mark.xfail(strict=True, reason=f"decoded with {case[3]!r}")]
            if case[3]
            else [],
            id=case[0],
        )
        for case in ACOUSTIC
    ],
)
def test_espeak_speech_decodes_to_the_value_it_says(
    tmp_path: Path,
    converged_cmn: str,
    text: str,
    rule: str,
    parse: Callable[[str], object],
    known_confusion: str | None,
) -> None:
    decoder = Decoder(jsgf=str(_grammar(tmp_path, rule)), samprate=16000, loglevel="FATAL")
    decoder.set_cmn(converged_cmn)
    heard = _decode(decoder, _speak(text))
    assert parse(heard) == parse(text), heard
