"""Spoken forms of dates, times and digit strings.

Three things live here, and they agree with each other:

* ``JSGF_RULES``: JSGF rule fragments (``<dob>``, ``<when>``, ``<clock_time>``,
  ``<digits>``) that the per-state pocketsphinx grammars paste in. Helper rules are
  prefixed ``sp_`` so they do not collide with the including grammar's own rules.
* Parsers from a recognized word string (pocketsphinx ``hyp().hypstr``: lowercase
  words, single spaces) to values. They scan the whole string and skip words that
  are not part of a date or time, so they also work on free dictation.
* The reverse: values to the words the text-to-speech says.

Every word used in the grammar is in pocketsphinx's default US English dictionary;
compound ordinals are two words ("twenty first") because "thirty-first" is not.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "JSGF_RULES",
    "When",
    "parse_date_of_birth",
    "parse_digits",
    "parse_when",
    "say_date",
    "say_date_of_birth",
    "say_time",
]

PartOfDay = Literal["morning", "afternoon", "evening"]


def _numbered(words: str, start: int = 1, step: int = 1) -> dict[str, int]:
    return {word: start + k * step for k, word in enumerate(words.split())}


_ONES = _numbered("one two three four five six seven eight nine")
_TEENS = _numbered(
    "ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen", 10
)
_TENS = _numbered("twenty thirty forty fifty sixty seventy eighty ninety", 20, 10)
_ORD_ONES = _numbered("first second third fourth fifth sixth seventh eighth ninth")
_ORD_SINGLE = (
    _ORD_ONES
    | _numbered("tenth eleventh twelfth thirteenth fourteenth fifteenth sixteenth", 10)
    | _numbered("seventeenth eighteenth nineteenth", 17)
    | {"twentieth": 20, "thirtieth": 30}
)
_MONTHS = _numbered(
    "january february march april may june july august september october november december"
)
_WEEKDAYS = _numbered("monday tuesday wednesday thursday friday saturday sunday", 0)
_PARTS: tuple[PartOfDay, ...] = ("morning", "afternoon", "evening")
_HOURS = _ONES | {"ten": 10, "eleven": 11, "twelve": 12}
_MINUTE_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_DIGITS = {"oh": 0, "zero": 0} | _ONES
_RELATIVE_DAYS = {"yesterday": -1, "today": 0, "tomorrow": 1}
_ASAP_PHRASES = tuple(
    tuple(p.split())
    for p in (
        "as soon as possible", "earliest available", "soonest available", "first available",
        "any time", "anytime", "whenever", "earliest", "soonest",
    )
)  # fmt: skip
_MAX_DIGITS = 12
_DOB_YEARS = range(1900, 2030)


def _alts(words: Iterable[str]) -> str:
    return " | ".join(words)


JSGF_RULES = f"""
<sp_one_nine> = {_alts(_ONES)};
<sp_ten_nineteen> = {_alts(_TEENS)};
<sp_two_digit> = <sp_ten_nineteen> | ({_alts(_TENS)}) [<sp_one_nine>];
<sp_month> = {_alts(_MONTHS)};
<sp_weekday> = {_alts(_WEEKDAYS)};
<sp_ordinal> = {_alts(_ORD_SINGLE)} | twenty ({_alts(_ORD_ONES)}) | thirty first;
<sp_cardinal_day> = <sp_one_nine> | <sp_ten_nineteen> | twenty [<sp_one_nine>] | thirty [one];
<sp_month_day> = <sp_month> [the] (<sp_ordinal> | <sp_cardinal_day>)
    | the <sp_ordinal> of <sp_month>;
<sp_year_tail> = <sp_ten_nineteen> | twenty [<sp_one_nine>];
<sp_year> = nineteen (hundred | oh <sp_one_nine> | <sp_two_digit>)
    | two thousand [[and] (<sp_one_nine> | <sp_year_tail>)]
    | twenty (oh <sp_one_nine> | <sp_year_tail>);
<dob> = <sp_month_day> <sp_year>;
<sp_hour> = {_alts(_HOURS)};
<sp_minutes> = oh <sp_one_nine> | <sp_ten_nineteen> | ({_alts(_MINUTE_TENS)}) [<sp_one_nine>];
<sp_ampm> = a m | p m;
<sp_clock_explicit> = noon | <sp_hour> (o'clock | <sp_minutes>) [<sp_ampm>] | <sp_hour> <sp_ampm>;
<clock_time> = <sp_clock_explicit> | <sp_hour>;
<sp_at_time> = [at] <sp_clock_explicit> | at <sp_hour>;
<sp_part> = [in the | this] ({_alts(_PARTS)});
<sp_day> = today | tomorrow | yesterday | the day after tomorrow | next week
    | [this | next] <sp_weekday> | [<sp_weekday>] <sp_month_day> | the <sp_ordinal>;
<sp_asap> = as soon as possible | any time | anytime | whenever
    | [the] (earliest | soonest | first) available | [the] (earliest | soonest);
<sp_when_core> = [on] <sp_day> [<sp_part>] [<sp_at_time> [<sp_part>]]
    | <sp_part> [<sp_at_time>] | <sp_at_time> [<sp_part>] [[on] <sp_day>];
<when> = [how about | what about | maybe | um | uh]
    (<sp_asap> [<sp_when_core>] | <sp_when_core> [<sp_asap>] | <sp_hour>);
<sp_digit> = {_alts(_DIGITS)};
<digits> = <sp_digit> {"[<sp_digit> " * (_MAX_DIGITS - 1)}{"]" * (_MAX_DIGITS - 1)};
"""
"""JSGF rule definitions (no header, no ``grammar`` line, no ``public`` rules).

Public rules for including grammars: ``<dob>``, ``<when>``, ``<clock_time>``, ``<digits>``.
"""


@dataclass(frozen=True, slots=True)
class When:
    """A requested appointment time, resolved against the caller's ``today``.

    Attributes:
        day: The calendar day said, or None if no day was said.
        part_of_day: "morning", "afternoon" or "evening" if said, else None.
        clock_time: The wall-clock time said (24 h), or None.
        is_asap: True if the caller asked for the earliest slot ("as soon as
            possible", "any time", "earliest", "first available"); the other fields
            still hold whatever else was said ("any time tomorrow").
    """

    day: datetime.date | None
    part_of_day: PartOfDay | None
    clock_time: datetime.time | None
    is_asap: bool = False


def _tokens(words: str) -> list[str]:
    return re.findall(r"[a-z']+", words.lower())


def _at(w: list[str], i: int) -> str:
    return w[i] if 0 <= i < len(w) else ""


def _number_alts(w: list[str], i: int) -> list[tuple[int, int]]:
    """Readings of 1..99 starting at ``w[i]`` as (value, end), longest first."""
    head = _at(w, i)
    if head in _TENS:
        alts = [(_TENS[head], i + 1)]
        if _at(w, i + 1) in _ONES:
            alts.insert(0, (_TENS[head] + _ONES[w[i + 1]], i + 2))
        return alts
    value = _ONES.get(head) or _TEENS.get(head)
    return [(value, i + 1)] if value else []


def _ordinal_alts(w: list[str], i: int) -> list[tuple[int, int]]:
    """Readings of an ordinal 1st..31st at ``w[i]``, longest first."""
    head, nxt = _at(w, i), _at(w, i + 1)
    if head in ("twenty", "thirty") and nxt in _ORD_ONES and _TENS[head] + _ORD_ONES[nxt] <= 31:
        return [(_TENS[head] + _ORD_ONES[nxt], i + 2)]
    return [(_ORD_SINGLE[head], i + 1)] if head in _ORD_SINGLE else []


def _month_day_alts(w: list[str], i: int) -> list[tuple[int, int, int]]:
    """Readings of "march fifteenth" / "the fifteenth of march" as (month, day, end)."""
    if _at(w, i) in _MONTHS:
        j = i + 2 if _at(w, i + 1) == "the" else i + 1
        days = _ordinal_alts(w, j) + [(n, e) for n, e in _number_alts(w, j) if n <= 31]
        return [(_MONTHS[w[i]], d, e) for d, e in sorted(days, key=lambda a: -a[1])]
    if _at(w, i) == "the":
        return [
            (_MONTHS[w[e + 1]], d, e + 2)
            for d, e in _ordinal_alts(w, i + 1)
            if _at(w, e) == "of" and _at(w, e + 1) in _MONTHS
        ]
    return []


def _year_alts(w: list[str], i: int) -> list[tuple[int, int]]:
    """Readings of a spoken year 1900..2029 at ``w[i]`` as (year, end), longest first."""
    head, nxt = _at(w, i), _at(w, i + 1)
    alts: list[tuple[int, int]] = []
    if head in ("nineteen", "twenty") and nxt == "oh" and _at(w, i + 2) in _ONES:
        alts = [((1900 if head == "nineteen" else 2000) + _ONES[w[i + 2]], i + 3)]
    elif head == "nineteen" and nxt == "hundred":
        alts = [(1900, i + 2)]
    elif head in ("nineteen", "twenty"):
        base = 1900 if head == "nineteen" else 2000
        alts = [(base + n, e) for n, e in _number_alts(w, i + 1) if n >= 10]
    elif head == "two" and nxt == "thousand":
        j = i + 3 if _at(w, i + 2) == "and" else i + 2
        alts = [(2000 + n, e) for n, e in _number_alts(w, j)] + [(2000, i + 2)]
    return [(y, e) for y, e in alts if y in _DOB_YEARS]


def _date_or_none(year: int, month: int, day: int) -> datetime.date | None:
    try:
        return datetime.date(year, month, day)
    except ValueError:
        return None


def _next_month_day(today: datetime.date, month: int, day: int) -> datetime.date | None:
    for year in (today.year, today.year + 1):
        found = _date_or_none(year, month, day)
        if found is not None and found >= today:
            return found
    return None


def _next_day_of_month(today: datetime.date, day: int) -> datetime.date | None:
    for offset in range(13):
        year, month = divmod(today.month - 1 + offset, 12)
        found = _date_or_none(today.year + year, month + 1, day)
        if found is not None and found >= today:
            return found
    return None


def _weekday_date(today: datetime.date, weekday: int, *, is_next: bool) -> datetime.date:
    delta = (weekday - today.weekday()) % 7
    if not is_next:
        return today + datetime.timedelta(days=delta)
    day = today + datetime.timedelta(days=delta or 7)
    if day.isocalendar()[:2] == today.isocalendar()[:2]:
        day += datetime.timedelta(days=7)
    return day


# A day match is (resolved day, end); a None day means "a date was said but it does not exist".
_DayMatch = tuple[datetime.date | None, int]


def _match_date(w: list[str], i: int, today: datetime.date) -> _DayMatch | None:
    alts = _month_day_alts(w, i)
    if alts:
        month, day, end = alts[0]
        years = _year_alts(w, end)
        if years:
            return _date_or_none(years[0][0], month, day), years[0][1]
        return _next_month_day(today, month, day), end
    ordinals = _ordinal_alts(w, i + 1) if _at(w, i) == "the" else []
    if ordinals:
        return _next_day_of_month(today, ordinals[0][0]), ordinals[0][1]
    return None


def _match_day(w: list[str], i: int, today: datetime.date) -> _DayMatch | None:
    head, nxt = _at(w, i), _at(w, i + 1)
    if w[i : i + 4] == ["the", "day", "after", "tomorrow"]:
        return today + datetime.timedelta(days=2), i + 4
    if head in _RELATIVE_DAYS:
        return today + datetime.timedelta(days=_RELATIVE_DAYS[head]), i + 1
    if head == "next" and nxt == "week":
        return today + datetime.timedelta(days=7 - today.weekday()), i + 2
    j = i + 1 if head in ("this", "next") and nxt in _WEEKDAYS else i
    if _at(w, j) in _WEEKDAYS:
        # "tuesday december first": the date that follows names the day.
        dated = _match_date(w, j + 1, today)
        if dated is not None:
            return dated
        return _weekday_date(today, _WEEKDAYS[w[j]], is_next=head == "next"), j + 1
    return _match_date(w, i, today)


def _match_asap(w: list[str], i: int) -> int | None:
    j = i + 1 if _at(w, i) == "the" else i
    for phrase in _ASAP_PHRASES:
        if tuple(w[j : j + len(phrase)]) == phrase:
            return j + len(phrase)
    return None


def _match_part(w: list[str], i: int) -> tuple[PartOfDay, bool, int] | None:
    """Part of day at ``w[i]`` as (part, whether it means today ("this morning"), end)."""
    for part in _PARTS:
        if _at(w, i) == part:
            return part, False, i + 1
        if _at(w, i) == "this" and _at(w, i + 1) == part:
            return part, True, i + 2
    return None


# A clock match is (hour 1..12, minute, "a" / "p" / "", whether it stands on its own, end).
_ClockMatch = tuple[int, int, str, bool, int]


def _match_clock(w: list[str], i: int) -> _ClockMatch | None:
    if _at(w, i) == "noon":
        return 12, 0, "p", True, i + 1
    if _at(w, i) not in _HOURS:
        return None
    hour, minute, j = _HOURS[w[i]], 0, i + 1
    head, nxt = _at(w, j), _at(w, j + 1)
    if head == "o'clock":
        j += 1
    elif head == "oh" and nxt in _ONES:
        minute, j = _ONES[nxt], j + 2
    elif head in _TEENS:
        minute, j = _TEENS[head], j + 1
    elif head in _MINUTE_TENS:
        minute, j = _MINUTE_TENS[head] + _ONES.get(nxt, 0), j + (2 if nxt in _ONES else 1)
    ampm = ""
    if _at(w, j) in ("a", "p") and _at(w, j + 1) == "m":
        ampm, j = w[j], j + 2
    return hour, minute, ampm, j > i + 1, j


def _resolve_clock(hour: int, minute: int, ampm: str, part: PartOfDay | None) -> datetime.time:
    if not ampm and part is not None:
        ampm = "a" if part == "morning" else "p"
    if ampm == "a":
        return datetime.time(hour % 12, minute)
    if ampm == "p":
        return datetime.time(hour % 12 + 12, minute)
    return datetime.time(hour + 12 if hour <= 6 else hour, minute)  # clinic hours 7 a.m.-6 p.m.


def parse_when(words: str, *, today: datetime.date) -> When | None:
    """Parses a requested appointment day and time, ignoring other words.

    Days: "today", "tomorrow", "yesterday" (today - 1; refusing past days is the
    caller's policy), "the day after tomorrow". A bare weekday or "this <weekday>"
    is the soonest such day on or after ``today``; "next <weekday>" is the soonest
    such day strictly after ``today``, plus 7 days if that falls in today's ISO week
    (Mon-Sun). "next week" is the Monday of next week. "the fifteenth" is the next
    15th on or after ``today`` (this month, else the next month that has a 15th).
    "december third" / "the third of december" is the next Dec 3 on or after
    ``today``, this year or next; a spoken year ("december third twenty twenty
    six") is used as said. A weekday followed by a date ("tuesday december first")
    is the date. "this morning" / "this afternoon" / "this evening" also sets the
    day to ``today`` if no other day was said.

    Times: "noon"; "<hour> [o'clock | <minutes>] [a m | p m]". An hour without
    a m / p m is a.m. if a morning was said, p.m. if an afternoon or evening was said,
    else read as clinic hours: 7-11 a.m., 12 noon, 1-6 p.m. A lone hour word with no
    minutes, "o'clock" or a m / p m ("nine") counts only after "at" or as the whole
    utterance, so that "the one on tuesday" is not one o'clock.

    The first day, part of day and time found win; "as soon as possible", "any
    time", "anytime", "whenever", "earliest", "soonest", "[the] first available"
    set ``is_asap``.

    Args:
        words: Recognized words, e.g. "next tuesday at ten a m"; case and
            punctuation are ignored.
        today: The clinic's local date that relative days resolve against.

    Returns:
        The parsed request, or None if nothing date- or time-like was understood or
        the date said does not exist ("february thirtieth").
    """
    w = _tokens(words)
    day: datetime.date | None = None
    part: PartOfDay | None = None
    clock: _ClockMatch | None = None
    is_asap = is_this_part = False
    i = 0
    while i < len(w):
        if (asap_end := _match_asap(w, i)) is not None:
            is_asap, i = True, asap_end
        elif (day_match := _match_day(w, i, today)) is not None:
            if day_match[0] is None:
                return None
            day = day or day_match[0]
            i = day_match[1]
        elif (part_match := _match_part(w, i)) is not None:
            if part is None:
                part, is_this_part = part_match[0], part_match[1]
            i = part_match[2]
        elif (clock_match := _match_clock(w, i)) is not None and (
            clock_match[3] or _at(w, i - 1) == "at" or len(w) == 1
        ):
            clock, i = clock or clock_match, clock_match[4]
        else:
            i += 1
    if day is None and is_this_part:
        day = today
    if day is None and part is None and clock is None and not is_asap:
        return None
    time = None if clock is None else _resolve_clock(clock[0], clock[1], clock[2], part)
    return When(day=day, part_of_day=part, clock_time=time, is_asap=is_asap)


def parse_date_of_birth(words: str) -> datetime.date | None:
    """Parses a date of birth such as "march fifteenth nineteen eighty four".

    Accepts "<month> [the] <day> <year>" and "the <ordinal> of <month> <year>",
    with the day as an ordinal or a cardinal ("march fifteen two thousand one") and
    the year as "nineteen hundred", "nineteen oh five", "nineteen eighty four",
    "two thousand [and] twelve", "twenty twelve" or "twenty oh five" (1900-2029).
    Other words are ignored; the first month-day followed by a year wins.

    Args:
        words: Recognized words; case and punctuation are ignored.

    Returns:
        The date, or None if no day with a spoken year was found or the date does
        not exist ("february thirtieth ...").
    """
    w = _tokens(words)
    for i in range(len(w)):
        for month, day, end in _month_day_alts(w, i):
            years = _year_alts(w, end)
            if years:
                return _date_or_none(years[0][0], month, day)
    return None


def parse_digits(words: str) -> str | None:
    """Parses spoken digits ("five five five one two one two" -> "5551212").

    "oh" and "zero" are 0. Other words are ignored: the longest run of consecutive
    digit words is taken (the first if several are equally long).

    Args:
        words: Recognized words; case and punctuation are ignored.

    Returns:
        The digits, or None if there are none or the run is longer than 12.
    """
    best: list[str] = []
    run: list[str] = []
    for word in [*_tokens(words), ""]:
        if word in _DIGITS:
            run.append(str(_DIGITS[word]))
            continue
        if len(run) > len(best):
            best = run
        run = []
    return "".join(best) if 0 < len(best) <= _MAX_DIGITS else None


_NUMBER_WORDS = {n: w for w, n in (_ONES | _TEENS | _TENS).items()}
_ORDINAL_WORDS = {n: w for w, n in _ORD_SINGLE.items()}
_MONTH_NAMES = {n: w.capitalize() for w, n in _MONTHS.items()}


def _say_number(n: int) -> str:
    tens, ones = divmod(n, 10)
    if n < 20 or ones == 0:
        return _NUMBER_WORDS[n]
    return f"{_NUMBER_WORDS[tens * 10]} {_NUMBER_WORDS[ones]}"


def _say_minutes_like(n: int) -> str:
    """Says 1..99 as the last two digits of a year or the minutes of a time: 5 -> "oh five"."""
    return f"oh {_say_number(n)}" if n < 10 else _say_number(n)


def _say_ordinal(n: int) -> str:
    if n in _ORDINAL_WORDS:
        return _ORDINAL_WORDS[n]
    return f"{_NUMBER_WORDS[n // 10 * 10]} {_ORDINAL_WORDS[n % 10]}"


def _say_year(year: int) -> str:
    century, rest = divmod(year, 100)
    if 2000 <= year <= 2009:
        return "two thousand" + (f" {_say_number(rest)}" if rest else "")
    if rest == 0:
        return f"{_say_number(century)} hundred"
    return f"{_say_number(century)} {_say_minutes_like(rest)}"


def say_date(day: datetime.date) -> str:
    """Says an appointment day: ``date(2026, 12, 1)`` -> "Tuesday, December first"."""
    return f"{day.strftime('%A')}, {_MONTH_NAMES[day.month]} {_say_ordinal(day.day)}"


def say_date_of_birth(day: datetime.date) -> str:
    """Says a date of birth: ``date(1984, 3, 15)`` -> "March fifteenth, nineteen eighty four".

    Years 2000-2009 are "two thousand [one..nine]", others "nineteen oh five",
    "twenty twelve"; every year 1900-2029 parses back with `parse_date_of_birth`.
    """
    return f"{_MONTH_NAMES[day.month]} {_say_ordinal(day.day)}, {_say_year(day.year)}"


def say_time(t: datetime.time) -> str:
    """Says a wall-clock time, ignoring seconds.

    Examples: 09:30 -> "nine thirty A M", 14:00 -> "two P M", 12:00 -> "noon",
    09:05 -> "nine oh five A M", 00:15 -> "twelve fifteen A M".
    """
    if (t.hour, t.minute) == (12, 0):
        return "noon"
    minutes = f" {_say_minutes_like(t.minute)}" if t.minute else ""
    return f"{_say_number(t.hour % 12 or 12)}{minutes} {'A M' if t.hour < 12 else 'P M'}"
