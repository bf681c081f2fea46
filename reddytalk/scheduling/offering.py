"""Which free slots to offer for what the caller asked, and why a time is refused.

Pure functions over the clinic and a list of free slots, so that every rule here
is tested without a store.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from reddytalk.errors import TimeNotBookable
from reddytalk.scheduling.model import Clinic, Slot

__all__ = ["SearchWindow", "choose_offers", "search_window"]

_PARTS_OF_DAY = {
    "morning": (dt.time(0, 0), dt.time(12, 0)),
    "afternoon": (dt.time(12, 0), dt.time(17, 0)),
    "evening": (dt.time(16, 0), dt.time(23, 59)),
}
_WEEKDAYS = ("Mondays", "Tuesdays", "Wednesdays", "Thursdays", "Fridays", "Saturdays", "Sundays")
HORIZON_DAYS = 14
LEAD_TIME = dt.timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class SearchWindow:
    """Where to look for slots: ``[start, end)`` plus an optional time-of-day filter."""

    start: dt.datetime
    end: dt.datetime
    part_of_day: str | None = None
    preferred_time: dt.time | None = None

    def admits(self, slot: Slot) -> bool:
        """Whether ``slot`` falls in the window and its part of the day."""
        if not self.start <= slot.start < self.end:
            return False
        if self.part_of_day is None:
            return True
        low, high = _PARTS_OF_DAY[self.part_of_day]
        return low <= slot.start.timetz().replace(tzinfo=None) < high


def _say_hour(t: dt.time) -> str:
    hour = t.hour % 12 or 12
    minutes = f":{t.minute:02d}" if t.minute else ""
    return f"{hour}{minutes} {'A M' if t.hour < 12 else 'P M'}"


def search_window(
    clinic: Clinic,
    *,
    day: dt.date | None,
    part_of_day: str | None,
    clock_time: dt.time | None,
    now: dt.datetime,
) -> SearchWindow:
    """The window to search for a request, in the clinic's time zone.

    Raises:
        TimeNotBookable: The day or time is in the past, the clinic is closed
            then, or it is beyond the bookable horizon; the message says why.
    """
    tz = clinic.tz
    local_now = now.astimezone(tz)
    earliest = local_now + LEAD_TIME
    horizon = dt.datetime.combine(local_now.date(), dt.time(), tz) + dt.timedelta(
        days=HORIZON_DAYS
    )
    if day is None:
        return SearchWindow(earliest, horizon, part_of_day, clock_time)
    if day < local_now.date():
        raise TimeNotBookable("That day has already passed.")
    if day >= horizon.date():
        raise TimeNotBookable(f"I can only book up to {HORIZON_DAYS} days ahead.")
    hours = clinic.hours_on(day)
    if hours is None:
        raise TimeNotBookable(f"We are closed on {_WEEKDAYS[day.weekday()]}.")
    opens = dt.datetime.combine(day, hours.opens, tz)
    closes = dt.datetime.combine(day, hours.closes, tz)
    if clock_time is not None:
        at = dt.datetime.combine(day, clock_time, tz)
        if at < local_now:
            raise TimeNotBookable("That time has already passed.")
        if not hours.opens <= clock_time < hours.closes:
            raise TimeNotBookable(
                f"We are open from {_say_hour(hours.opens)} to {_say_hour(hours.closes)} "
                f"on {_WEEKDAYS[day.weekday()]}."
            )
    if closes <= earliest:
        raise TimeNotBookable("There is no time left to book that day.")
    return SearchWindow(max(opens, earliest), closes, part_of_day, clock_time)


def choose_offers(slots: list[Slot], window: SearchWindow, *, limit: int = 3) -> list[Slot]:
    """Up to ``limit`` slots to offer: the closest to a preferred time, else the earliest.

    Distinct start times are preferred, so that the caller hears a real choice
    rather than the same time with three providers.
    """
    candidates = sorted((s for s in slots if window.admits(s)), key=lambda s: s.start)
    if window.preferred_time is not None:
        wanted = window.preferred_time

        def distance(slot: Slot) -> float:
            local = slot.start.timetz().replace(tzinfo=None)
            return abs(
                (local.hour * 60 + local.minute) - (wanted.hour * 60 + wanted.minute)
            ) + slot.start.toordinal() * 24 * 60

        candidates.sort(key=distance)
    offers: list[Slot] = []
    seen_starts: set[dt.datetime] = set()
    for slot in candidates:
        if slot.start not in seen_starts:
            offers.append(slot)
            seen_starts.add(slot.start)
        if len(offers) == limit:
            break
    for slot in candidates:
        if len(offers) == limit:
            break
        if slot not in offers:
            offers.append(slot)
    return sorted(offers, key=lambda s: (s.start, s.provider_id))
