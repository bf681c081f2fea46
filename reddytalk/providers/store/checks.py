"""Input checks both stores make before they touch anything, so both refuse alike.

The clinic's admin console reaches the store through these (its calls' listing, its
messages' status); a refused request changes nothing and reads nothing.
"""

from __future__ import annotations

import datetime as dt

from reddytalk.providers.store.sqlite_db import to_utc_iso

__all__ = [
    "MAX_LISTED_CALLS",
    "MESSAGE_STATUSES",
    "check_call_listing",
    "check_message_status",
]

MAX_LISTED_CALLS = 200
"""The most calls one ``list_calls`` returns: a page, not an export."""

MESSAGE_STATUSES = frozenset({"open", "done"})
"""What a message's status may be set to (``open`` when it is taken)."""


def check_call_listing(limit: int, before: dt.datetime | None) -> str | None:
    """Check ``list_calls``'s paging; ``before`` as stored text (fixed-width UTC ISO).

    Raises:
        ValueError: ``limit`` is not 1 to :data:`MAX_LISTED_CALLS`, or ``before`` is naive.
    """
    # bool is an int: True would list one call, and is surely a mistake.
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise ValueError("limit must be an integer")
    if not 1 <= limit <= MAX_LISTED_CALLS:
        raise ValueError(f"limit must be 1 to {MAX_LISTED_CALLS}, not {limit}")
    return None if before is None else to_utc_iso(before)


def check_message_status(status: str) -> None:
    """Check a status ``set_message_status`` is asked to set.

    Raises:
        ValueError: ``status`` is not one of :data:`MESSAGE_STATUSES`.
    """
    # The value is not echoed: it came from a request, and may be anything.
    if not isinstance(status, str) or status not in MESSAGE_STATUSES:
        raise ValueError("a message's status is 'open' or 'done'")
