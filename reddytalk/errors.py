"""The few named errors of ReddyTalk. The edges map them to status codes and apologies.

ReddyTalkError
├── MalformedMessage        bad input from the wire (JSON, kind, base64, frame size)
├── Unauthorized            a request or connection whose credentials do not check out
├── Forbidden               authenticated, but not allowed to do this (a role or a clinic)
├── ProviderError           an engine or service failed; ``retryable`` says if a retry may help
├── ClinicBusy              a clinic cannot be removed while calls to it are in progress
└── SchedulingError         a request the schedule refuses, with a reason the caller can hear
    ├── SlotUnavailable     someone else took the slot, or it never existed
    ├── TimeNotBookable     in the past, or outside opening hours
    └── BookingRefused      a guardrail: identity not verified or the read-back not confirmed
"""

from __future__ import annotations

__all__ = [
    "BookingRefused",
    "ClinicBusy",
    "Forbidden",
    "MalformedMessage",
    "ProviderError",
    "ReddyTalkError",
    "SchedulingError",
    "SlotUnavailable",
    "TimeNotBookable",
    "Unauthorized",
]


class ReddyTalkError(Exception):
    """Base of every error ReddyTalk raises on purpose."""


class MalformedMessage(ReddyTalkError):
    """A message from the wire that cannot be understood. It is skipped, never fatal."""


class Unauthorized(ReddyTalkError):
    """A request or connection failed authentication; ``str(error)`` names why, no token."""


class Forbidden(ReddyTalkError):
    """An authenticated caller lacks the role, or the clinic, for what it asked;
    ``str(error)`` names what is missing (no token, no PHI). Nothing was changed."""


class ProviderError(ReddyTalkError):
    """A provider (engine, service, store) failed.

    Args:
        message: What failed, without PHI.
        retryable: Whether the same request may succeed if tried again.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ClinicBusy(ReddyTalkError):
    """A clinic was not removed: calls to it are in progress (nothing was changed).

    Args:
        message: What was refused, naming the clinic (an id, not PHI).
        calls_in_progress: How many calls to the clinic were in progress.
    """

    def __init__(self, message: str, *, calls_in_progress: int) -> None:
        super().__init__(message)
        self.calls_in_progress = calls_in_progress


class SchedulingError(ReddyTalkError):
    """The schedule refused a request; ``str(error)`` is safe to say to the caller."""


class SlotUnavailable(SchedulingError):
    """The slot is taken or does not exist."""


class TimeNotBookable(SchedulingError):
    """The time is in the past or outside the clinic's opening hours."""


class BookingRefused(SchedulingError):
    """A guardrail refused the write (identity not verified, read-back not confirmed)."""
