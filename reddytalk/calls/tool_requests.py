"""The tools API's request bodies: what each field must be, checked in one place.

The Functions app parses every body with these before it touches anything; a bad
field gets a :class:`MalformedMessage` that names it (and never echoes its
value: the fields hold PHI).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reddytalk.errors import MalformedMessage
from reddytalk.ports import CallRecord

__all__ = [
    "MAX_TEXT",
    "aware_datetime",
    "body_object",
    "call_record_from_dict",
    "call_record_to_dict",
    "date",
    "optional_text",
    "text",
]

MAX_TEXT = 2_000
"""The longest text field (a message for staff is the longest)."""
_MAX_ID = 200


def body_object(body: Any) -> dict[str, Any]:
    """The body as a JSON object."""
    if not isinstance(body, dict):
        raise MalformedMessage("the body is not a JSON object")
    return body


def text(body: dict[str, Any], name: str, *, limit: int = _MAX_ID) -> str:
    """A required, non-blank string field of at most ``limit`` characters."""
    value = body.get(name)
    if not isinstance(value, str) or not value.strip():
        raise MalformedMessage(f"{name} is missing or not a string")
    if len(value) > limit:
        raise MalformedMessage(f"{name} is longer than {limit} characters")
    return value


def optional_text(body: dict[str, Any], name: str, *, limit: int = _MAX_ID) -> str | None:
    """A string field that may be absent or null."""
    if body.get(name) is None:
        return None
    return text(body, name, limit=limit)


def date(body: dict[str, Any], name: str) -> dt.date:
    """A ``YYYY-MM-DD`` date field."""
    try:
        return dt.date.fromisoformat(text(body, name))
    except ValueError:
        raise MalformedMessage(f"{name} is not a YYYY-MM-DD date") from None


def aware_datetime(body: dict[str, Any], name: str) -> dt.datetime:
    """An ISO 8601 date-time field with its UTC offset."""
    try:
        value = dt.datetime.fromisoformat(text(body, name))
    except ValueError:
        raise MalformedMessage(f"{name} is not an ISO 8601 date-time") from None
    if value.tzinfo is None:
        raise MalformedMessage(f"{name} has no UTC offset")
    return value


def call_record_to_dict(record: CallRecord) -> dict[str, Any]:
    """A finished call's record as a request body (the call and clinic are the token's)."""
    return {
        "started_at": record.started_at.isoformat(),
        "ended_at": record.ended_at.isoformat(),
        "outcome": record.outcome,
        "transcript": [list(line) for line in record.transcript],
        "tool_calls": list(record.tool_calls),
        "turn_timings": list(record.turn_timings),
    }


def call_record_from_dict(body: dict[str, Any], *, call_id: str, clinic_id: str) -> CallRecord:
    """The record :func:`call_record_to_dict` wrote, for ``call_id`` at ``clinic_id``."""
    transcript = body.get("transcript")
    if not isinstance(transcript, list) or not all(
        isinstance(line, list) and len(line) == 2 and all(isinstance(p, str) for p in line)
        for line in transcript
    ):
        raise MalformedMessage("transcript is not a list of [speaker, text] pairs")
    lists = {}
    for name in ("tool_calls", "turn_timings"):
        value = body.get(name, [])
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise MalformedMessage(f"{name} is not a list of objects")
        lists[name] = tuple(value)
    return CallRecord(
        call_id=call_id,
        clinic_id=clinic_id,
        started_at=aware_datetime(body, "started_at"),
        ended_at=aware_datetime(body, "ended_at"),
        outcome=text(body, "outcome"),
        transcript=tuple((speaker, line) for speaker, line in transcript),
        tool_calls=lists["tool_calls"],
        turn_timings=lists["turn_timings"],
    )
