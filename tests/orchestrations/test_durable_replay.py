"""The registered orchestrators, replayed through the real Durable Functions executor.

Functions Core Tools cannot run here, so each test plays the Durable extension: it
writes the history the extension would hand the orchestrator trigger and calls the
registered orchestrator's user function with it, as the Python worker does. The
executor (azure-functions-durable 1.7.0) replays the workflow through ``DurableSteps``
and answers with the state the extension reads back.

What goes in (``DurableOrchestrationContext.from_json``)::

    {"history": [event, ...], "instanceId": ..., "input": {...}, "isReplaying": false,
     "parentInstanceId": null, "upperSchemaVersion": 2, "upperSchemaVersionNew": 3,
     "maximumShortTimerDuration": "6.00:00:00", "longRunningTimerIntervalDuration": "3.00:00:00"}

    event: {"EventType": <HistoryEventType>, "EventId": <task id or -1>, "IsPlayed": bool,
            "Timestamp": ISO 8601, ...one of:}
      ExecutionStarted (0):  Name, Version, Input (a JSON string)
      TaskScheduled (4):     Name                      (EventId = the task id)
      TaskCompleted (5):     TaskScheduledId, Result (a JSON string)
      TaskFailed (6):        TaskScheduledId, Reason, Details
      TimerCreated (10):     FireAt                    (EventId = the timer id)
      TimerFired (11):       TimerId, FireAt
      OrchestratorStarted (12), OrchestratorCompleted (13): episode bounds; the last
                             OrchestratorStarted's Timestamp is ``current_utc_datetime``
      EventRaised (15):      Name, Input (a JSON string)

Only completions (TaskCompleted/Failed, TimerFired, EventRaised) move the replay; task
ids count every activity attempt and every timer in the order they were scheduled,
external-event waits take none (they are matched by name).

What comes out (``OrchestratorState``, schema V3)::

    {"isDone": bool, "schemaVersion": 2, "actions": [[action, ...]], "output": ..., "error": ...}

``actions`` lists everything the orchestrator yielded in this replay, old and new: an
activity with retry is ``{"actionType": 12 (WhenAll), "compoundActions": [{"actionType": 1,
"functionName", "input" (a JSON string), "retryOptions": {"firstRetryIntervalInMilliseconds",
"maxNumberOfAttempts"}}]}``; a ``first_event`` is ``{"actionType": 11 (WhenAny),
"compoundActions": [{"actionType": 6, "externalEventName", "reason"}..., {"actionType": 5,
"fireAt", "isCanceled"}]}`` holding only the waiters not yielded before. When the
orchestrator raises, the user function raises too, with the state JSON after
``$OutOfProcData$:`` in its message.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import json
import runpy
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from azure.durable_functions.models.actions.ActionType import ActionType
from azure.durable_functions.models.history import HistoryEventType as Kind

from reddytalk.telephony.acs_events import CallEvent
from reddytalk.workflows import booking
from reddytalk.workflows.booking import (
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    CANCEL_IN_EHR,
    HOLD_SLOT,
    RECORD_CHANGE,
    RELEASE_HOLD,
    RESCHEDULE_APPOINTMENT,
    WRITE_APPOINTMENT,
)
from reddytalk.workflows.call_session import (
    CALL_SESSION,
    CONNECT_TIMEOUT,
    FINISH_CALL,
    HANG_UP,
    MAX_CALL,
    PLAY_APOLOGY,
    PLAY_TIMEOUT,
    TRANSFER_TO_STAFF,
)
from reddytalk.workflows.steps import TRANSIENT

# The SDK decodes inputs, results and event payloads with azure.functions' df_loads
# without an expected type; the first such call in a process emits a one-time
# DeprecationWarning, which filterwarnings=error would turn into an orchestrator failure
# in whichever test replays first. The payloads are plain JSON (see the strict-typing test).
pytestmark = pytest.mark.filterwarnings(
    "ignore:azure.functions df_loads was called without expected_type:DeprecationWarning"
)

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 24, 15, 0, tzinfo=dt.UTC)
_DF_TIME = "%Y-%m-%dT%H:%M:%S.%fZ"  # azure.durable_functions.constants.DATETIME_STRING_FORMAT

# What the extension adds to every orchestrator trigger payload (its schema V3 with
# Azure Storage's timer limits); the short timers here stay plain timers.
_EXTENSION_FIELDS = {
    "isReplaying": False,
    "parentInstanceId": None,
    "upperSchemaVersion": 2,
    "upperSchemaVersionNew": 3,
    "maximumShortTimerDuration": "6.00:00:00",
    "longRunningTimerIntervalDuration": "3.00:00:00",
}


# ---------------------------------------------------------------------------
# The registered orchestrators


@functools.cache
def _functions() -> dict[str, Any]:
    """The functions of the app ``function_app.py`` defines, indexed as the host does.

    The SDK indexes an app once (a second ``get_functions()`` raises "does not have a
    unique function name"), and tests/functions indexes ``function_app.app`` in the same
    pytest process. So this runs function_app.py for an app of its own: the same file,
    the same blueprints, the same registered functions, indexed once per process.
    """
    app = runpy.run_path(str(ROOT / "function_app.py"))["app"]
    return {function.get_function_name(): function for function in app.get_functions()}


def _orchestrator(name: str) -> Callable[[str], str]:
    function = _functions()[name]
    assert function.get_trigger().get_binding_name() == "orchestrationTrigger"
    return function.get_user_function()  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------
# History events, as the extension writes them


def _time(at: dt.datetime) -> str:
    return at.strftime(_DF_TIME)


def _event(kind: Kind, at: dt.datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    return {"EventType": int(kind), "EventId": event_id, "IsPlayed": False,
            "Timestamp": _time(at), **fields}  # fmt: skip


def orchestrator_started(at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.ORCHESTRATOR_STARTED, at)


def orchestrator_completed(at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.ORCHESTRATOR_COMPLETED, at)


def execution_started(name: str, data: Any, at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.EXECUTION_STARTED, at, Name=name, Version="", Input=json.dumps(data))


def task_scheduled(task_id: int, name: str, at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.TASK_SCHEDULED, at, task_id, Name=name)


def task_completed(task_id: int, result: Any, at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.TASK_COMPLETED, at, TaskScheduledId=task_id, Result=json.dumps(result))


def task_failed(task_id: int, reason: str, at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.TASK_FAILED, at, TaskScheduledId=task_id, Reason=reason,
                  Details="ProviderError: 503")  # fmt: skip


def timer_created(timer_id: int, fire_at: dt.datetime, at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.TIMER_CREATED, at, timer_id, FireAt=_time(fire_at))


def timer_fired(timer_id: int, fire_at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.TIMER_FIRED, fire_at, TimerId=timer_id, FireAt=_time(fire_at))


def event_raised(name: str, data: Any, at: dt.datetime) -> dict[str, Any]:
    return _event(Kind.EVENT_RAISED, at, Name=name, Input=json.dumps(data))


@dataclass(frozen=True)
class Timer:
    """A durable timer the orchestrator created: its id and when it fires."""

    timer_id: int
    fire_at: dt.datetime


@dataclass
class History:
    """One instance's history, appended to as its story unfolds.

    What the orchestrator scheduled closes the current episode (TaskScheduled or
    TimerCreated, then OrchestratorCompleted); what happened next opens the following one
    (OrchestratorStarted, then the completion). Task ids are handed out in scheduling
    order, as DTFx and the Python SDK both count them.
    """

    orchestration: str
    data: dict[str, Any]
    instance_id: str
    events: list[dict[str, Any]] = field(default_factory=list, init=False)
    now: dt.datetime = field(default=T0, init=False)
    _next_id: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.events += [orchestrator_started(self.now),
                        execution_started(self.orchestration, self.data, self.now)]  # fmt: skip

    def activity(self, name: str, *, returns: Any) -> History:
        """The orchestrator scheduled activity ``name``; it returned ``returns``."""
        task_id = self._take_id()
        self.events.append(task_scheduled(task_id, name, self.now))
        done_at = self.now + dt.timedelta(seconds=1)
        self._next_episode(done_at, task_completed(task_id, returns, done_at))
        return self

    def activity_fails(self, name: str, *, attempts: int = TRANSIENT.max_attempts) -> History:
        """The orchestrator scheduled activity ``name`` with retries; every attempt failed.

        DTFx's retry interceptor schedules an attempt, and after each failure (the last
        one included) a timer for the retry interval; the task fails for good when the
        timer after the last attempt fires (see ``RetryAbleTask.try_set_value``).
        """
        interval = dt.timedelta(milliseconds=TRANSIENT.first_interval_ms)
        for _ in range(attempts):
            task_id = self._take_id()
            self.events.append(task_scheduled(task_id, name, self.now))
            failed_at = self.now + dt.timedelta(seconds=1)
            self._next_episode(failed_at, task_failed(task_id, f"{name} failed", failed_at))
            retry = self.timer(interval)
            self.fires(retry)
        return self

    def timer(self, after: dt.timedelta) -> Timer:
        """The orchestrator created a timer ``after`` from the episode's time (a wait's timeout)."""
        timer = Timer(self._take_id(), self.now + after)
        self.events.append(timer_created(timer.timer_id, timer.fire_at, self.now))
        return timer

    def fires(self, timer: Timer) -> History:
        """``timer`` fired."""
        self._next_episode(timer.fire_at, timer_fired(timer.timer_id, timer.fire_at))
        return self

    def raises(self, name: str, data: dict[str, Any], *,
               after: dt.timedelta = dt.timedelta(seconds=1)) -> History:  # fmt: skip
        """External event ``name`` was raised on the instance (``client.raise_event``)."""
        at = self.now + after
        self._next_episode(at, event_raised(name, data, at))
        return self

    def replay(self) -> State:
        """Run the registered orchestrator over this history, as the extension would."""
        return replay(self.orchestration, self.instance_id, self.data, self.to_json())

    def to_json(self) -> list[dict[str, Any]]:
        """The events, those of earlier episodes marked played (as the extension marks them)."""
        last_start = max(i for i, event in enumerate(self.events)
                         if event["EventType"] == Kind.ORCHESTRATOR_STARTED)  # fmt: skip
        return [{**event, "IsPlayed": i < last_start} for i, event in enumerate(self.events)]

    def _take_id(self) -> int:
        self._next_id += 1
        return self._next_id - 1

    def _next_episode(self, at: dt.datetime, *events: dict[str, Any]) -> None:
        self.events += [orchestrator_completed(self.now), orchestrator_started(at), *events]
        self.now = at


# ---------------------------------------------------------------------------
# What the executor answers


@dataclass(frozen=True)
class State:
    """The orchestration state the executor returned (``OrchestratorState.to_json``)."""

    raw: dict[str, Any]

    @property
    def is_done(self) -> bool:
        return bool(self.raw["isDone"])

    @property
    def output(self) -> Any:
        return self.raw.get("output")

    @property
    def error(self) -> str | None:
        return self.raw.get("error")

    @property
    def actions(self) -> list[dict[str, Any]]:
        """The top-level actions, in the order the orchestrator yielded them."""
        [actions] = self.raw["actions"]  # schema V2+: one list for the whole replay
        return list(actions)

    def leaves(self) -> Iterator[dict[str, Any]]:
        """Every atomic action, compound ones (WhenAll/WhenAny) opened."""

        def walk(action: dict[str, Any]) -> Iterator[dict[str, Any]]:
            if "compoundActions" in action:
                for child in action["compoundActions"]:
                    yield from walk(child)
            else:
                yield action

        for action in self.actions:
            yield from walk(action)

    @property
    def activities(self) -> list[tuple[str, dict[str, Any]]]:
        """Every activity scheduled so far: (name, input)."""
        calls = (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY)
        return [(action["functionName"], json.loads(action["input"]))
                for action in self.leaves() if action["actionType"] in calls]  # fmt: skip

    @property
    def activity_names(self) -> list[str]:
        return [name for name, _ in self.activities]

    @property
    def waits(self) -> list[list[str]]:
        """For each event wait yielded: the events it newly waited for, then the timer's fireAt."""
        return [
            [child.get("externalEventName") or child["fireAt"]
             for child in action["compoundActions"]]
            for action in self.actions if action["actionType"] == ActionType.WHEN_ANY
        ]  # fmt: skip

    @property
    def timers(self) -> list[dict[str, Any]]:
        return [action for action in self.leaves()
                if action["actionType"] == ActionType.CREATE_TIMER]  # fmt: skip


def replay(
    name: str, instance_id: str, data: dict[str, Any], history: list[dict[str, Any]]
) -> State:
    """Call the registered orchestrator ``name`` with ``history``; the state it answers."""
    body = json.dumps({"history": history, "instanceId": instance_id, "input": data,
                       **_EXTENSION_FIELDS})  # fmt: skip
    try:
        answer = _orchestrator(name)(body)
    except Exception as failure:  # the orchestrator raised: the state is in the message
        _, marker, state = str(failure).partition("\n\n$OutOfProcData$:")
        if not marker:
            raise
        answer = state
    return State(json.loads(answer))


# ---------------------------------------------------------------------------
# Booking, moving and cancelling

CALL_ID = "c1"
CLINIC_ID = "clinic-1"
BOOKING = {"call_id": CALL_ID, "clinic_id": CLINIC_ID, "slot_id": "s1", "patient_id": "p1",
           "appointment_type": "new-patient"}  # fmt: skip
BOOK_ID = "c1:book_appointment:s1"
APPOINTMENT = {"appointment_id": "a-new", "patient_id": "p1", "provider_id": "dr-1",
               "appointment_type": "new-patient", "slot_id": "s1",
               "start": "2026-11-26T09:00:00+00:00", "status": "booked"}  # fmt: skip
HELD = {"held": True}
WRITTEN = {"appointment": APPOINTMENT}
TAKEN = {"refused": "That time was just taken."}


def booking_history() -> History:
    return History(BOOK_APPOINTMENT, BOOKING, BOOK_ID)


def booked_history() -> History:
    """A booking that went through: hold, write, record."""
    return (booking_history().activity(HOLD_SLOT, returns=HELD)
            .activity(WRITE_APPOINTMENT, returns=WRITTEN)
            .activity(RECORD_CHANGE, returns={}))  # fmt: skip


def test_book_first_episode_holds_the_slot_with_retries_keyed_by_the_instance() -> None:
    state = booking_history().replay()

    assert not state.is_done
    assert state.actions == [{
        "actionType": ActionType.WHEN_ALL,  # the SDK's RetryAbleTask is a WhenAll of one
        "compoundActions": [{
            "actionType": ActionType.CALL_ACTIVITY_WITH_RETRY,
            "functionName": HOLD_SLOT,
            "input": json.dumps({**BOOKING, "key": BOOK_ID}),
            "retryOptions": {"firstRetryIntervalInMilliseconds": 250, "maxNumberOfAttempts": 3},
        }],
    }]  # fmt: skip
    [(_, hold)] = state.activities
    assert hold["key"] == BOOK_ID


def test_book_holds_writes_and_records() -> None:
    state = booked_history().replay()

    assert state.is_done and state.error is None
    assert state.output == {"status": "booked", "appointment": APPOINTMENT}
    assert state.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT, RECORD_CHANGE]
    _, record = state.activities[-1]
    assert record == {**BOOKING, "key": BOOK_ID, "change": "booked", "appointment": APPOINTMENT}


def test_book_waits_for_each_activity_before_the_next() -> None:
    history = booking_history().activity(HOLD_SLOT, returns=HELD)

    state = history.replay()

    assert not state.is_done
    assert state.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT]


def test_book_refused_hold_ends_without_writing() -> None:
    state = booking_history().activity(HOLD_SLOT, returns=TAKEN).replay()

    assert state.is_done
    assert state.output == {"status": "refused", "reason": TAKEN["refused"]}
    assert state.activity_names == [HOLD_SLOT]


def test_book_write_failing_after_its_retries_releases_the_hold() -> None:
    history = (booking_history().activity(HOLD_SLOT, returns=HELD)
               .activity_fails(WRITE_APPOINTMENT))  # fmt: skip

    compensating = history.replay()
    assert not compensating.is_done
    assert compensating.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT, RELEASE_HOLD]
    assert compensating.activities[-1][1] == {**BOOKING, "key": BOOK_ID}

    done = history.activity(RELEASE_HOLD, returns={}).replay()
    assert done.is_done
    assert done.output["status"] == "failed" and done.output["reason"]


def test_book_write_succeeding_on_its_last_attempt_is_recorded_not_compensated() -> None:
    history = (booking_history().activity(HOLD_SLOT, returns=HELD)
               .activity_fails(WRITE_APPOINTMENT, attempts=2))  # fmt: skip
    history.activity(WRITE_APPOINTMENT, returns=WRITTEN)  # the third attempt succeeds

    state = history.replay()

    # The extension runs the retries: they add no actions, only history.
    assert state.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT, RECORD_CHANGE]


def test_book_refused_write_releases_the_hold_then_refuses() -> None:
    history = (booking_history().activity(HOLD_SLOT, returns=HELD)
               .activity(WRITE_APPOINTMENT, returns=TAKEN))  # fmt: skip

    releasing = history.replay()
    assert not releasing.is_done
    assert releasing.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT, RELEASE_HOLD]

    done = history.activity(RELEASE_HOLD, returns={}).replay()
    assert done.is_done
    assert done.output == {"status": "refused", "reason": TAKEN["refused"]}


def test_book_record_failing_leaves_the_booking_standing() -> None:
    history = (booking_history().activity(HOLD_SLOT, returns=HELD)
               .activity(WRITE_APPOINTMENT, returns=WRITTEN)
               .activity_fails(RECORD_CHANGE))  # fmt: skip

    state = history.replay()

    assert state.is_done and state.error is None
    assert state.output == {"status": "booked", "appointment": APPOINTMENT}
    assert RELEASE_HOLD not in state.activity_names


def test_book_replays_deterministically_and_a_duplicate_request_gets_the_first_result() -> None:
    # The instance id is derived from the call and the request, so the same request
    # again is the same instance: the extension replays its history, never runs it anew.
    assert booking.instance_id(BOOK_APPOINTMENT, CALL_ID, BOOKING["slot_id"]) == BOOK_ID
    history = booked_history()

    first, second = history.replay(), history.replay()

    assert first == second
    assert second.output == {"status": "booked", "appointment": APPOINTMENT}
    # A fresh history for the same instance id (a purged instance, started again) asks the
    # EHR with the same idempotency key the first run used.
    assert booking_history().replay().actions == first.actions[:1]
    assert {data["key"] for _, data in first.activities} == {BOOK_ID}


def test_book_works_under_the_sdks_strict_typing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_FUNCTIONS_DURABLE_STRICT_TYPING", "1")

    state = booked_history().replay()

    assert state.output == {"status": "booked", "appointment": APPOINTMENT}


MOVE = {**BOOKING, "appointment_id": "a-old"}
MOVE_ID = "c1:reschedule_appointment:a-old"
CANCELLED_OLD = {"appointment": {**APPOINTMENT, "appointment_id": "a-old", "status": "cancelled"}}


def reschedule_history() -> History:
    return History(RESCHEDULE_APPOINTMENT, MOVE, MOVE_ID)


def test_reschedule_books_the_new_time_then_cancels_the_old() -> None:
    history = (reschedule_history().activity(HOLD_SLOT, returns=HELD)
               .activity(WRITE_APPOINTMENT, returns=WRITTEN)
               .activity(CANCEL_IN_EHR, returns=CANCELLED_OLD)
               .activity(RECORD_CHANGE, returns={}))  # fmt: skip

    state = history.replay()

    assert state.is_done
    assert state.output == {"status": "rescheduled", "appointment": APPOINTMENT}
    assert state.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT, CANCEL_IN_EHR, RECORD_CHANGE]
    _, cancel = state.activities[2]
    assert cancel["appointment_id"] == "a-old"
    _, record = state.activities[3]
    assert (record["change"], record["appointment"]) == ("moved", APPOINTMENT)


def test_reschedule_failing_to_cancel_the_old_cancels_the_new_one() -> None:
    history = (reschedule_history().activity(HOLD_SLOT, returns=HELD)
               .activity(WRITE_APPOINTMENT, returns=WRITTEN)
               .activity_fails(CANCEL_IN_EHR))  # fmt: skip

    compensating = history.replay()
    assert not compensating.is_done
    assert compensating.activity_names == [HOLD_SLOT, WRITE_APPOINTMENT, CANCEL_IN_EHR,
                                           CANCEL_IN_EHR]  # fmt: skip
    [(_, old), (_, new)] = [call for call in compensating.activities if call[0] == CANCEL_IN_EHR]
    assert (old["appointment_id"], new["appointment_id"]) == ("a-old", "a-new")
    assert new["key"] == MOVE_ID

    cancelled_new = {"appointment": {**APPOINTMENT, "status": "cancelled"}}
    done = history.activity(CANCEL_IN_EHR, returns=cancelled_new).replay()
    assert done.is_done
    assert done.output["status"] == "failed" and done.output["reason"]
    assert RECORD_CHANGE not in done.activity_names


def test_cancel_cancels_and_records() -> None:
    data = {"call_id": CALL_ID, "clinic_id": CLINIC_ID, "appointment_id": "a-old"}
    history = (History(CANCEL_APPOINTMENT, data, "c1:cancel_appointment:a-old")
               .activity(CANCEL_IN_EHR, returns=CANCELLED_OLD)
               .activity(RECORD_CHANGE, returns={}))  # fmt: skip

    state = history.replay()

    assert state.is_done
    assert state.output == {"status": "cancelled", **CANCELLED_OLD}
    assert state.activity_names == [CANCEL_IN_EHR, RECORD_CHANGE]
    _, record = state.activities[1]
    assert (record["change"], record["key"]) == ("cancelled", "c1:cancel_appointment:a-old")


# ---------------------------------------------------------------------------
# The call session

CORRELATION_ID = "corr-1"
SESSION = {"call_id": CORRELATION_ID, "clinic_id": CLINIC_ID}
CONNECTION_ID = "conn-1"
CONNECTION = {**SESSION, "call_connection_id": CONNECTION_ID}


def call_event(name: str, **fields: Any) -> dict[str, Any]:
    """An event as functions/calls.py raises it: ``dataclasses.asdict(CallEvent)``."""
    return dataclasses.asdict(CallEvent(event_id=f"evt-{name}", name=name,
                                        correlation_id=CORRELATION_ID,
                                        call_connection_id=CONNECTION_ID, **fields))  # fmt: skip


def session_history() -> History:
    return History(CALL_SESSION, SESSION, CORRELATION_ID)


def connected_call() -> History:
    """A call that connected; the session now follows it (its MAX_CALL wait is open)."""
    history = session_history()
    history.timer(CONNECT_TIMEOUT)
    history.raises("CallConnected", call_event("CallConnected"))
    history.timer(MAX_CALL)
    return history


def finishes_with(history: History, outcome: str) -> State:
    """Check finish_call was scheduled with ``outcome``, complete it, and replay to the end."""
    state = history.replay()
    assert state.activities[-1] == (FINISH_CALL, {**SESSION, "outcome": outcome})
    assert not state.is_done
    done = history.activity(FINISH_CALL, returns={}).replay()
    assert done.is_done and done.error is None
    assert done.output == {"outcome": outcome}
    return done


def test_session_first_waits_for_the_connection_or_45_seconds() -> None:
    state = session_history().replay()

    assert not state.is_done
    assert state.actions == [{
        "actionType": ActionType.WHEN_ANY,
        "compoundActions": [
            {"actionType": ActionType.WAIT_FOR_EXTERNAL_EVENT,
             "externalEventName": "CallConnected", "reason": "ExternalEvent"},
            {"actionType": ActionType.WAIT_FOR_EXTERNAL_EVENT,
             "externalEventName": "CallDisconnected", "reason": "ExternalEvent"},
            {"actionType": ActionType.CREATE_TIMER, "fireAt": "2026-11-24T15:00:45.000000Z",
             "isCanceled": False},
        ],
    }]  # fmt: skip


def test_session_connected_then_disconnected_completes() -> None:
    history = connected_call()
    history.raises(
        "CallDisconnected", call_event("CallDisconnected"), after=dt.timedelta(minutes=5)
    )

    state = finishes_with(history, "completed")

    # The follow-up wait reused the CallDisconnected waiter (no second WaitForExternalEvent
    # for it) and its timer runs an hour from the episode that created it.
    assert state.waits == [
        ["CallConnected", "CallDisconnected", _time(T0 + CONNECT_TIMEOUT)],
        ["MediaStreamingFailed", "CallTransferAccepted", "CallTransferFailed",
         "HangUpRequested", "TransferRequested", _time(T0 + dt.timedelta(seconds=1) + MAX_CALL)],
    ]  # fmt: skip
    # The connection timer lost and was cancelled; the call timer too.
    assert [timer["isCanceled"] for timer in state.timers] == [True, True]


def test_session_never_connected_gives_up_after_45_seconds() -> None:
    history = session_history()
    history.fires(history.timer(CONNECT_TIMEOUT))

    state = finishes_with(history, "not_connected")

    assert state.activity_names == [FINISH_CALL]


def test_session_disconnected_before_connecting_is_not_connected() -> None:
    history = session_history()
    history.timer(CONNECT_TIMEOUT)
    history.raises("CallDisconnected", call_event("CallDisconnected"))

    finishes_with(history, "not_connected")


def test_session_media_failure_apologizes_then_transfers() -> None:
    history = connected_call()
    history.raises("MediaStreamingFailed", call_event("MediaStreamingFailed", result_code=500))

    apologizing = history.replay()
    assert apologizing.activities[-1] == (PLAY_APOLOGY, {**CONNECTION, "why": "media"})

    history.activity(PLAY_APOLOGY, returns={})
    assert history.replay().waits[-1] == ["PlayCompleted", "PlayFailed",
                                          _time(history.now + PLAY_TIMEOUT)]  # fmt: skip
    history.timer(PLAY_TIMEOUT)
    history.raises("PlayCompleted", call_event("PlayCompleted", operation_context="apology:media"))

    transferring = history.replay()
    assert transferring.activities[-1] == (TRANSFER_TO_STAFF, CONNECTION)

    history.activity(TRANSFER_TO_STAFF, returns={"transferred": True})
    history.timer(MAX_CALL)
    history.raises("CallDisconnected", call_event("CallDisconnected"))
    done = finishes_with(history, "transferred:media_failed")
    assert done.activity_names == [PLAY_APOLOGY, TRANSFER_TO_STAFF, FINISH_CALL]


def test_session_failed_transfer_apologizes_then_hangs_up() -> None:
    history = connected_call()
    history.raises("CallTransferFailed", call_event("CallTransferFailed", result_code=500))

    apologizing = history.replay()
    assert apologizing.activities[-1] == (PLAY_APOLOGY, {**CONNECTION, "why": "transfer"})

    history.activity(PLAY_APOLOGY, returns={})
    history.timer(PLAY_TIMEOUT)
    history.raises("PlayFailed", call_event("PlayFailed", result_code=400))

    hanging_up = history.replay()
    assert hanging_up.activities[-1] == (HANG_UP, CONNECTION)

    history.activity(HANG_UP, returns={})
    history.timer(MAX_CALL)
    history.raises("CallDisconnected", call_event("CallDisconnected"))
    finishes_with(history, "transfer_failed")


def test_session_transfer_accepted_ends_as_transferred() -> None:
    history = connected_call()
    history.raises("CallTransferAccepted", call_event("CallTransferAccepted"))
    history.timer(MAX_CALL)
    history.raises("CallDisconnected", call_event("CallDisconnected"))

    finishes_with(history, "transferred")


def test_session_hangs_up_a_call_longer_than_an_hour() -> None:
    history = session_history()
    history.timer(CONNECT_TIMEOUT)
    history.raises("CallConnected", call_event("CallConnected"))
    history.fires(history.timer(MAX_CALL))

    hanging_up = history.replay()
    assert hanging_up.activities[-1] == (HANG_UP, CONNECTION)

    history.activity(HANG_UP, returns={})
    finishes_with(history, "too_long")


def test_session_keeps_a_disconnect_raised_while_waiting_for_the_apology() -> None:
    history = connected_call()
    history.raises("MediaStreamingFailed", call_event("MediaStreamingFailed", result_code=500))
    history.activity(PLAY_APOLOGY, returns={})
    play_wait = history.timer(PLAY_TIMEOUT)
    history.raises("CallDisconnected", call_event("CallDisconnected"))

    still_waiting = history.replay()
    assert not still_waiting.is_done
    assert still_waiting.activity_names == [PLAY_APOLOGY]  # the apology wait is not over

    history.fires(play_wait)  # no PlayCompleted ever comes: the caller is gone
    transferring = history.replay()
    assert transferring.activities[-1] == (TRANSFER_TO_STAFF, CONNECTION)

    # The session's next wait finds the disconnect that came in meanwhile and ends the
    # call at once, without another event. (A real ACS refuses to transfer a call that
    # has ended; see the transfer-failure test below for what that does.)
    history.activity(TRANSFER_TO_STAFF, returns={"transferred": True})
    history.timer(MAX_CALL)
    finishes_with(history, "transferred:media_failed")


def test_session_second_apology_waits_for_its_own_play_to_finish() -> None:
    history = connected_call()
    history.raises("MediaStreamingFailed", call_event("MediaStreamingFailed", result_code=500))
    history.activity(PLAY_APOLOGY, returns={})
    history.timer(PLAY_TIMEOUT)
    history.raises("PlayCompleted", call_event("PlayCompleted", operation_context="apology:media"))
    history.activity(TRANSFER_TO_STAFF, returns={"transferred": True})
    history.timer(MAX_CALL)
    history.raises("CallTransferFailed", call_event("CallTransferFailed", result_code=500))
    history.activity(PLAY_APOLOGY, returns={})

    state = history.replay()

    assert state.activity_names == [PLAY_APOLOGY, TRANSFER_TO_STAFF, PLAY_APOLOGY]
    # A new PlayCompleted waiter and a new timer; the first apology's PlayFailed waiter
    # is still pending and serves this wait too (waiters persist across waits).
    assert state.waits[-1] == ["PlayCompleted", _time(history.now + PLAY_TIMEOUT)]


def test_session_transfer_failing_after_its_retries_still_finishes_the_call() -> None:
    history = connected_call()
    history.raises("MediaStreamingFailed", call_event("MediaStreamingFailed", result_code=500))
    history.activity(PLAY_APOLOGY, returns={})
    history.timer(PLAY_TIMEOUT)
    history.raises("PlayCompleted", call_event("PlayCompleted", operation_context="apology:media"))
    history.activity_fails(TRANSFER_TO_STAFF)

    hanging_up = history.replay()
    assert hanging_up.error is None
    assert hanging_up.activities[-1] == (HANG_UP, CONNECTION)  # nobody could take the call

    history.activity(HANG_UP, returns={})
    history.timer(MAX_CALL)
    history.raises("CallDisconnected", call_event("CallDisconnected"))
    finishes_with(history, "media_failed")


def test_session_hangs_up_when_the_receptionist_said_goodbye() -> None:
    history = connected_call()
    history.raises("HangUpRequested", {})
    asked = history.replay()
    assert asked.activities[-1] == (HANG_UP, CONNECTION)
    history.activity(HANG_UP, returns={})
    history.timer(MAX_CALL)
    history.raises("CallDisconnected", call_event("CallDisconnected"))
    finishes_with(history, "completed")


def test_session_transfers_when_the_receptionist_hands_the_caller_over() -> None:
    history = connected_call()
    history.raises("TransferRequested", {"reason": "emergency"})
    asked = history.replay()
    assert asked.activities[-1] == (TRANSFER_TO_STAFF, CONNECTION)
    history.activity(TRANSFER_TO_STAFF, returns={"transferred": True})
    history.timer(MAX_CALL)
    history.raises("CallTransferAccepted", call_event("CallTransferAccepted"))
    history.timer(MAX_CALL)
    history.raises("CallDisconnected", call_event("CallDisconnected"))
    finishes_with(history, "transferred:emergency")
