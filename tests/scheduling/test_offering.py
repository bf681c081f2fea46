"""Which slots to offer and why a time is refused, on the demo clinic (America/Chicago)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reddytalk.errors import TimeNotBookable
from reddytalk.providers.seed import demo_clinic
from reddytalk.scheduling.model import Slot
from reddytalk.scheduling.offering import SearchWindow, choose_offers, search_window

CLINIC = demo_clinic()
CHICAGO = ZoneInfo("America/Chicago")
NOW = dt.datetime(2026, 11, 25, 9, 0, tzinfo=CHICAGO)  # a Wednesday morning
TODAY = NOW.date()


def _window(day: dt.date | None, part: str | None = None, at: dt.time | None = None,
            now: dt.datetime = NOW) -> SearchWindow:
    return search_window(CLINIC, day=day, part_of_day=part, clock_time=at, now=now)


def _slot(day: dt.date, hour: int, minute: int = 0, provider: str = "dr-patel") -> Slot:
    start = dt.datetime.combine(day, dt.time(hour, minute), CHICAGO)
    return Slot(f"{provider}-{start:%m%d%H%M}", provider, start, start + dt.timedelta(minutes=30))


def test_past_day_is_refused() -> None:
    with pytest.raises(TimeNotBookable, match="already passed"):
        _window(TODAY - dt.timedelta(days=1))


def test_sunday_is_closed() -> None:
    sunday = dt.date(2026, 11, 29)
    assert sunday.weekday() == 6
    with pytest.raises(TimeNotBookable, match="closed on Sundays"):
        _window(sunday)


def test_clock_time_outside_hours_names_the_hours() -> None:
    thursday = dt.date(2026, 11, 26)
    with pytest.raises(TimeNotBookable) as error:
        _window(thursday, at=dt.time(18, 0))
    assert str(error.value) == "We are open from 8 A M to 5 P M on Thursdays."
    saturday = dt.date(2026, 11, 28)
    with pytest.raises(TimeNotBookable) as error:
        _window(saturday, at=dt.time(13, 30))
    assert str(error.value) == "We are open from 9 A M to 12 P M on Saturdays."


def test_closing_time_itself_is_outside_hours() -> None:
    with pytest.raises(TimeNotBookable, match="open from"):
        _window(dt.date(2026, 11, 26), at=dt.time(17, 0))
    window = _window(dt.date(2026, 11, 26), at=dt.time(8, 0))
    assert window.preferred_time == dt.time(8, 0)


def test_a_time_earlier_today_has_passed() -> None:
    with pytest.raises(TimeNotBookable, match="time has already passed"):
        _window(TODAY, at=dt.time(8, 30))


@pytest.mark.parametrize("local_now", [dt.time(16, 0), dt.time(16, 30), dt.time(18, 0)])
def test_today_after_closing_is_refused(local_now: dt.time) -> None:
    now = dt.datetime.combine(TODAY, local_now, CHICAGO)
    with pytest.raises(TimeNotBookable, match="no time left"):
        _window(TODAY, now=now)


def test_today_starts_an_hour_from_now() -> None:
    window = _window(TODAY)
    assert window.start == NOW + dt.timedelta(hours=1)
    assert window.end == dt.datetime(2026, 11, 25, 17, 0, tzinfo=CHICAGO)


def test_now_in_utc_is_read_in_the_clinic_zone() -> None:
    # 03:00 UTC on Thursday is still Wednesday evening in Chicago: "today" is Wednesday.
    now = dt.datetime(2026, 11, 26, 3, 0, tzinfo=dt.UTC)
    with pytest.raises(TimeNotBookable, match="no time left"):
        _window(dt.date(2026, 11, 25), now=now)
    window = _window(dt.date(2026, 11, 26), now=now)
    assert window.start == dt.datetime(2026, 11, 26, 8, 0, tzinfo=CHICAGO)


def test_horizon_is_fourteen_days() -> None:
    last = TODAY + dt.timedelta(days=13)  # Tuesday, December 8
    assert _window(last).end == dt.datetime.combine(last, dt.time(17, 0), CHICAGO)
    with pytest.raises(TimeNotBookable, match="14 days ahead"):
        _window(TODAY + dt.timedelta(days=14))
    with pytest.raises(TimeNotBookable, match="14 days ahead"):
        _window(TODAY + dt.timedelta(days=60))


def test_no_day_searches_from_an_hour_ahead_to_the_horizon() -> None:
    window = _window(None, "morning")
    assert window.start == NOW + dt.timedelta(hours=1)
    assert window.end == dt.datetime(2026, 12, 9, 0, 0, tzinfo=CHICAGO)
    assert window.part_of_day == "morning"


def test_part_of_day_filters_slots() -> None:
    day = dt.date(2026, 11, 27)
    morning = _window(day, "morning")
    afternoon = _window(day, "afternoon")
    at_1130, at_noon, at_1630 = _slot(day, 11, 30), _slot(day, 12), _slot(day, 16, 30)
    assert morning.admits(at_1130)
    assert not morning.admits(at_noon)
    assert afternoon.admits(at_noon)
    assert afternoon.admits(at_1630)
    assert not afternoon.admits(at_1130)
    assert not morning.admits(_slot(day + dt.timedelta(days=3), 9))  # another day
    offers = choose_offers([at_noon, at_1630, at_1130, _slot(day, 8)], morning)
    assert [s.start.time() for s in offers] == [dt.time(8, 0), dt.time(11, 30)]


def test_choose_offers_prefers_distinct_times_limit_three_sorted() -> None:
    day = dt.date(2026, 11, 27)
    slots = [
        _slot(day, 9, 0, "dr-patel"),
        _slot(day, 9, 0, "dr-chen"),
        _slot(day, 9, 0, "dr-rivera"),
        _slot(day, 10, 0, "dr-chen"),
        _slot(day, 9, 30, "dr-rivera"),
        _slot(day, 11, 0, "dr-patel"),
    ]
    offers = choose_offers(slots, _window(day))
    assert len(offers) == 3
    assert [s.start.time() for s in offers] == [dt.time(9), dt.time(9, 30), dt.time(10)]
    assert offers[0].provider_id == "dr-patel"  # the earliest of the 9:00 slots in order


def test_choose_offers_fills_with_same_times_when_few_distinct() -> None:
    day = dt.date(2026, 11, 27)
    slots = [_slot(day, 9, 0, p) for p in ("dr-rivera", "dr-patel", "dr-chen")]
    slots.append(_slot(day, 14, 0, "dr-chen"))
    offers = choose_offers(slots, _window(day), limit=3)
    assert [(s.start.hour, s.provider_id) for s in offers] == [
        (9, "dr-patel"),  # the filler: the next 9:00 slot in input order
        (9, "dr-rivera"),  # the first 9:00 slot given
        (14, "dr-chen"),
    ]
    assert len({s.slot_id for s in offers}) == 3


def test_choose_offers_excludes_slots_outside_the_window() -> None:
    window = _window(TODAY)  # from 10:00 today
    early = _slot(TODAY, 9, 30)
    later = _slot(TODAY, 10, 0)
    tomorrow = _slot(TODAY + dt.timedelta(days=1), 8)
    assert choose_offers([early, later, tomorrow], window) == [later]
    assert choose_offers([], window) == []


def test_preferred_time_picks_the_nearest_times() -> None:
    day = dt.date(2026, 11, 27)
    slots = [_slot(day, h, m) for h in range(8, 17) for m in (0, 30)]
    offers = choose_offers(slots, _window(day, at=dt.time(14, 0)))
    assert [s.start.time() for s in offers] == [dt.time(13, 30), dt.time(14), dt.time(14, 30)]


def test_preferred_time_without_a_day_prefers_the_earliest_day() -> None:
    first, second = dt.date(2026, 11, 27), dt.date(2026, 11, 30)
    slots = [_slot(first, 8), _slot(first, 16), _slot(second, 14), _slot(second, 15)]
    offers = choose_offers(slots, _window(None, at=dt.time(14, 0)), limit=2)
    assert [s.start for s in offers] == [slots[0].start, slots[1].start]


@given(
    day_offset=st.integers(min_value=-30, max_value=30),
    minutes=st.integers(min_value=0, max_value=24 * 60 - 1),
    part=st.sampled_from([None, "morning", "afternoon", "evening"]),
)
def test_any_window_lies_in_opening_hours_and_after_the_lead_time(
    day_offset: int, minutes: int, part: str | None
) -> None:
    day = TODAY + dt.timedelta(days=day_offset)
    at = dt.time(minutes // 60, minutes % 60)
    try:
        window = _window(day, part, at)
    except TimeNotBookable:
        return
    hours = CLINIC.hours_on(day)
    assert hours is not None
    assert hours.opens <= at < hours.closes
    assert window.start >= NOW + dt.timedelta(hours=1)
    assert window.end == dt.datetime.combine(day, hours.closes, CHICAGO)
    assert window.start < window.end
