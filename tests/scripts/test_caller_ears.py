"""The caller's ears hear the read-back that was said, and nothing else as one."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from caller_ears import ReadBackEars, read_back_grammar

from reddytalk.dialogue.phrasing import say_appointment
from reddytalk.providers.seed import demo_clinic
from reddytalk.providers.tts.espeak import EspeakTextToSpeech

CLINIC = demo_clinic()
TODAY = dt.date(2026, 11, 25)  # a Wednesday


def _speak(text: str, rate: int = 16_000) -> bytes:
    tts = EspeakTextToSpeech(voice="en-us+m3")

    async def run() -> bytes:
        return b"".join([c async for c in tts.synthesize(text, sample_rate_hz=rate)])

    return asyncio.run(run())


def _read_back(day: dt.date, hour: int, minute: int, provider: str = "Doctor Chen") -> str:
    start = dt.datetime.combine(day, dt.time(hour, minute), CLINIC.tz)
    details = say_appointment(
        type_name="check-up", provider_name=provider, start=start, clinic=CLINIC
    )
    return f"Let me confirm: {details}. Shall I book it?"


def test_grammar_offers_only_the_clinics_days_and_slot_times() -> None:
    grammar = read_back_grammar(CLINIC, today=TODAY, days=2)
    assert "wednesday november twenty fifth" in grammar
    assert "friday november twenty seventh" in grammar
    assert "saturday november twenty eighth" not in grammar  # beyond two days
    assert "eight a m" in grammar and "four thirty p m" in grammar
    assert "five p m" not in grammar  # closing time is not a slot start
    assert "doctor rivera" in grammar


@pytest.mark.parametrize(
    ("day", "hour", "minute", "day_words", "time_words"),
    [
        (dt.date(2026, 12, 1), 9, 0, "tuesday december first", "nine a m"),
        (dt.date(2026, 11, 27), 14, 30, "friday november twenty seventh", "two thirty p m"),
        (dt.date(2026, 12, 5), 11, 30, "saturday december fifth", "eleven thirty a m"),
    ],
)
@pytest.mark.parametrize("rate", [16_000, 24_000])
def test_hears_the_day_and_time_that_were_said(
    day: dt.date, hour: int, minute: int, day_words: str, time_words: str, rate: int
) -> None:
    ears = ReadBackEars(CLINIC, today=TODAY)
    heard = ears.hear(_speak(_read_back(day, hour, minute), rate), sample_rate_hz=rate)
    assert heard is not None
    assert (heard.day, heard.time) == (day_words, time_words)
    assert "with doctor chen on" in heard.words


def test_other_answers_are_not_heard_as_a_read_back() -> None:
    ears = ReadBackEars(CLINIC, today=TODAY)
    for text in (
        "What day or time works best for you?",
        "We are open Monday to Friday from eight A M to five P M.",
    ):
        assert ears.hear(_speak(text), sample_rate_hz=16_000) is None
    assert ears.hear(bytes(32_000), sample_rate_hz=16_000) is None
