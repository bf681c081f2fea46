"""Durable's orchestration context as :class:`reddytalk.workflows.steps.Steps`.

Replay-safe by construction: every method only creates Durable tasks, and the
event waiters persist across ``first_event`` calls. A waiter left pending when
another event or the timer won stays registered, so the next wait for that
event name reuses it instead of creating a second one (with the Python SDK, an
abandoned waiter would swallow the next event of its name).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import azure.durable_functions as df

from reddytalk.workflows.steps import Event, Retry

__all__ = ["DurableSteps"]


class DurableSteps:
    """Adapts one orchestration context; create one per orchestrator invocation."""

    def __init__(self, context: df.DurableOrchestrationContext) -> None:
        self._context = context
        self._waiters: dict[str, Any] = {}
        self._last_wait: tuple[dict[Any, str], Any] | None = None

    def input(self) -> dict[str, Any]:
        data = self._context.get_input()
        return dict(data) if isinstance(data, dict) else {}

    def instance_id(self) -> str:
        return str(self._context.instance_id)

    def now(self) -> dt.datetime:
        now: dt.datetime = self._context.current_utc_datetime
        return now if now.tzinfo else now.replace(tzinfo=dt.UTC)

    def activity(self, name: str, data: dict[str, Any], *, retry: Retry | None = None) -> Any:
        if retry is None:
            return self._context.call_activity(name, data)
        options = df.RetryOptions(
            first_retry_interval_in_milliseconds=retry.first_interval_ms,
            max_number_of_attempts=retry.max_attempts,
        )
        return self._context.call_activity_with_retry(name, options, data)

    def first_event(self, names: tuple[str, ...], *, timeout: dt.timedelta) -> Any:
        by_task: dict[Any, str] = {}
        for name in names:
            if name not in self._waiters:
                self._waiters[name] = self._context.wait_for_external_event(name)
            by_task[self._waiters[name]] = name
        timer = self._context.create_timer(self._context.current_utc_datetime + timeout)
        self._last_wait = (by_task, timer)
        return self._context.task_any([*by_task, timer])

    def received(self, outcome: Any) -> Event | None:
        assert self._last_wait is not None, "received() follows a first_event() yield"
        by_task, timer = self._last_wait
        self._last_wait = None
        name = by_task.get(outcome)
        if name is None:  # the timer won
            return None
        if not timer.is_completed:
            timer.cancel()
        del self._waiters[name]
        data = outcome.result
        return Event(name, data if isinstance(data, dict) else {})
