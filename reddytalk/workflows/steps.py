"""The vocabulary workflows are written in, understood by both of their runners.

A workflow is a generator function over :class:`Steps`: it yields what ``steps``
returns (an activity to run, events to wait for) and receives its result, exactly
as a Durable Functions orchestrator yields tasks. In Azure the orchestrations
registered in ``orchestrations/`` run each workflow through Durable's replay
(``orchestrations/durable_steps.py`` adapts the orchestration context); in the
embedded profile :mod:`reddytalk.workflows.runner` runs the same generator in
process with its activities inline. One definition of each sequence, two hosts.

Workflow code follows the orchestrator rules: no I/O, no clock but ``steps.now()``,
no randomness; all of that happens in activities.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = ["Event", "Retry", "Steps", "TRANSIENT", "Workflow"]


@dataclass(frozen=True, slots=True)
class Retry:
    """Retry an activity that raised: ``max_attempts`` in all, from ``first_interval_ms`` on."""

    first_interval_ms: int
    max_attempts: int


TRANSIENT = Retry(first_interval_ms=250, max_attempts=3)
"""For activities whose failures are transient (a provider's 429 or 5xx, a timeout)."""


@dataclass(frozen=True, slots=True)
class Event:
    """An external event the workflow waited for (a Call Automation callback)."""

    name: str
    data: dict[str, Any]


class Steps(Protocol):
    """What a workflow can do. Yield what the methods return; receive the result."""

    def input(self) -> dict[str, Any]:
        """The workflow's input."""
        ...

    def instance_id(self) -> str:
        """The instance's id (derived from the call and the request)."""
        ...

    def now(self) -> dt.datetime:
        """The current time, replay-safe (aware, UTC)."""
        ...

    def activity(self, name: str, data: dict[str, Any], *, retry: Retry | None = None) -> Any:
        """Run activity ``name`` with ``data``; yields its result (a dict), or raises
        into the workflow when it failed (after the retries)."""
        ...

    def first_event(self, names: tuple[str, ...], *, timeout: dt.timedelta) -> Any:
        """Wait for the first of the events ``names`` or the timeout; pass what the
        yield returns to :meth:`received`."""
        ...

    def received(self, outcome: Any) -> Event | None:
        """The event a :meth:`first_event` yield returned, or None on timeout."""
        ...


Workflow = Callable[[Steps], Generator[Any, Any, dict[str, Any]]]
