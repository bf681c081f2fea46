"""The embedded profile's workflow host: runs a workflow in this process.

It drives the same generator Durable Functions replays in Azure, but forward only:
each activity the workflow yields is awaited inline (retried as its :class:`Retry`
says), each event wait is served from the events raised on the instance. A
completed instance's result is kept, so a retried request with the same instance
id gets the first result and runs nothing again (for this process's lifetime;
the activities' own idempotency covers a restart).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from reddytalk.workflows.activities import ACTIVITIES, Activity, ActivityDeps
from reddytalk.workflows.booking import (
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    RESCHEDULE_APPOINTMENT,
    book_appointment,
    cancel_appointment,
    reschedule_appointment,
)
from reddytalk.workflows.call_session import CALL_SESSION, call_session
from reddytalk.workflows.steps import Event, Retry, Workflow

__all__ = ["WORKFLOWS", "InlineRunner"]

WORKFLOWS: dict[str, Workflow] = {
    BOOK_APPOINTMENT: book_appointment,
    RESCHEDULE_APPOINTMENT: reschedule_appointment,
    CANCEL_APPOINTMENT: cancel_appointment,
    CALL_SESSION: call_session,
}
"""Every workflow by its registered (orchestration) name."""


@dataclass(frozen=True, slots=True)
class _ActivityCall:
    name: str
    data: dict[str, Any]
    retry: Retry | None


@dataclass(frozen=True, slots=True)
class _EventWait:
    names: tuple[str, ...]
    timeout: dt.timedelta


class _InlineSteps:
    """:class:`reddytalk.workflows.steps.Steps` for :class:`InlineRunner`."""

    def __init__(self, instance_id: str, data: dict[str, Any], clock: Callable[[], dt.datetime]):
        self._instance_id = instance_id
        self._data = data
        self._clock = clock

    def input(self) -> dict[str, Any]:
        return dict(self._data)

    def instance_id(self) -> str:
        return self._instance_id

    def now(self) -> dt.datetime:
        return self._clock()

    def activity(self, name: str, data: dict[str, Any], *, retry: Retry | None = None) -> Any:
        return _ActivityCall(name, data, retry)

    def first_event(self, names: tuple[str, ...], *, timeout: dt.timedelta) -> Any:
        return _EventWait(names, timeout)

    def received(self, outcome: Any) -> Event | None:
        return outcome if isinstance(outcome, Event) else None


class InlineRunner:
    """Runs workflows in process with their activities inline.

    Args:
        deps: What the activities work with.
        activities: Activities by name (all of them unless a test replaces some).
        workflows: Workflows by name (all of them unless a test adds its own).
        sleep: Async sleep between retries (injectable for tests).
    """

    def __init__(
        self,
        *,
        deps: ActivityDeps,
        activities: dict[str, Activity] | None = None,
        workflows: dict[str, Workflow] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._deps = deps
        self._activities = ACTIVITIES if activities is None else activities
        self._workflows = WORKFLOWS if workflows is None else workflows
        self._sleep = sleep
        self._results: dict[str, dict[str, Any]] = {}
        self._running: dict[str, asyncio.Task[dict[str, Any]]] = {}
        self._events: dict[str, list[Event]] = {}
        self._arrivals: dict[str, asyncio.Condition] = {}

    async def run(self, name: str, *, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run workflow ``name`` as ``instance_id`` to its end; its result.

        The same instance id again returns the first run's result (waiting for it
        if it is still running).

        Raises:
            KeyError: No workflow has this name.
        """
        workflow = self._workflows[name]
        if instance_id in self._results:
            return self._results[instance_id]
        task = self._running.get(instance_id)
        if task is None:
            task = asyncio.create_task(self._execute(workflow, instance_id, data), name=name)
            self._running[instance_id] = task
            task.add_done_callback(lambda _: self._running.pop(instance_id, None))
        result = await asyncio.shield(task)
        self._results[instance_id] = result
        return result

    def is_running(self, instance_id: str) -> bool:
        """Whether the instance is running now."""
        return instance_id in self._running

    async def raise_event(self, instance_id: str, name: str, data: dict[str, Any]) -> None:
        """Deliver an external event to the instance (buffered until it waits for it)."""
        self._events.setdefault(instance_id, []).append(Event(name, data))
        arrival = self._arrivals.setdefault(instance_id, asyncio.Condition())
        async with arrival:
            arrival.notify_all()

    async def _execute(
        self, workflow: Workflow, instance_id: str, data: dict[str, Any]
    ) -> dict[str, Any]:
        steps = _InlineSteps(instance_id, data, self._deps.clock)
        generator = workflow(steps)
        result: Any = None
        error: BaseException | None = None
        while True:
            try:
                request = generator.send(result) if error is None else generator.throw(error)
            except StopIteration as stop:
                return dict(stop.value)
            result, error = None, None
            try:
                result = await self._perform(instance_id, request)
            except Exception as failure:  # thrown into the workflow, as Durable does
                error = failure

    async def _perform(self, instance_id: str, request: Any) -> Any:
        if isinstance(request, _ActivityCall):
            return await self._call(request)
        if isinstance(request, _EventWait):
            return await self._wait(instance_id, request)
        raise TypeError(f"a workflow yielded {type(request).__name__}, not a step")

    async def _call(self, call: _ActivityCall) -> dict[str, Any]:
        activity = self._activities[call.name]
        attempts = call.retry.max_attempts if call.retry else 1
        for attempt in range(1, attempts + 1):
            try:
                return await activity(self._deps, call.data)
            except Exception:
                if attempt == attempts:
                    raise
                assert call.retry is not None
                await self._sleep(call.retry.first_interval_ms / 1000)
        raise AssertionError("unreachable")

    async def _wait(self, instance_id: str, wait: _EventWait) -> Event | None:
        arrival = self._arrivals.setdefault(instance_id, asyncio.Condition())
        buffered = self._events.setdefault(instance_id, [])

        def first() -> Event | None:
            for index, event in enumerate(buffered):
                if event.name in wait.names:
                    return buffered.pop(index)
            return None

        async with arrival:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait.timeout.total_seconds()):
                    while (event := first()) is None:
                        await arrival.wait()
                    return event
        return first()
