"""The workflows run in process (the embedded profile): real EHR, real store, real ACS SDK.

The booking workflows run against the embedded EHR on a SQLite file; the call
session drives the real callautomation SDK against the local ACS. Failures are
made by replacing one activity with one that fails, never by patching our code.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from local_acs import LocalAcs, TlsFiles, make_tls

from reddytalk.composition import open_embedded_records
from reddytalk.errors import ProviderError
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_STAFF_NUMBER, demo_clinic, seed_demo
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.scheduling.model import AfterHours, Slot
from reddytalk.settings import Settings
from reddytalk.telephony.call_automation import AcsCallControl
from reddytalk.workflows import booking
from reddytalk.workflows.activities import ACTIVITIES, ActivityDeps
from reddytalk.workflows.call_session import CALL_SESSION
from reddytalk.workflows.runner import WORKFLOWS, InlineRunner
from reddytalk.workflows.steps import Steps

CHICAGO = ZoneInfo("America/Chicago")
NOW = dt.datetime(2026, 3, 2, 6, 0, tzinfo=CHICAGO)


@dataclass
class Env:
    store: SqliteStore
    ehr: EmbeddedEhr
    sleeps: list[float]

    def runner(self, **replaced: Any) -> InlineRunner:
        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        deps = ActivityDeps(ehr=self.ehr, store=self.store, control=None, clock=lambda: NOW)
        return InlineRunner(deps=deps, activities={**ACTIVITIES, **replaced}, sleep=sleep)

    def free(self, day: dt.date = dt.date(2026, 3, 5)) -> list[Slot]:
        start = dt.datetime.combine(day, dt.time(), CHICAGO)
        return asyncio.run(
            self.ehr.find_free_slots(
                clinic_id=DEMO_CLINIC_ID,
                start=start,
                end=start + dt.timedelta(days=1),
                provider_id=None,
            )
        )

    def patient_id(self, given: str, family: str, born: dt.date) -> str:
        patient = asyncio.run(
            self.ehr.find_patient(
                clinic_id=DEMO_CLINIC_ID, given_name=given, family_name=family, birth_date=born
            )
        )
        assert patient is not None
        return patient.patient_id

    def audit(self, call_id: str = "c1") -> list[tuple[str, str]]:
        return [(e.action, e.resource) for e in asyncio.run(self.store.audit_trail(call_id))]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
        asyncio.run(seed_demo(records.store, records.ehr, today=NOW.date()))
        yield Env(records.store, records.ehr, [])


def _book(env: Env, runner: InlineRunner, slot: Slot, patient_id: str) -> dict[str, Any]:
    data = {"call_id": "c1", "clinic_id": DEMO_CLINIC_ID, "slot_id": slot.slot_id,
            "patient_id": patient_id, "appointment_type": "checkup"}  # fmt: skip
    instance = booking.instance_id(booking.BOOK_APPOINTMENT, "c1", slot.slot_id)
    return asyncio.run(runner.run(booking.BOOK_APPOINTMENT, instance_id=instance, data=data))


def _robert(env: Env) -> str:
    return env.patient_id("Robert", "Taylor", dt.date(1980, 3, 15))


def test_booking_holds_writes_and_records(env: Env) -> None:
    slot = env.free()[0]
    result = _book(env, env.runner(), slot, _robert(env))
    assert result["status"] == "booked"
    appointment = result["appointment"]
    assert (appointment["slot_id"], appointment["patient_id"]) == (slot.slot_id, _robert(env))
    assert slot not in env.free()
    assert env.audit() == [("create", f"Appointment/{appointment['appointment_id']}")]


def test_the_same_request_again_returns_the_first_result_and_books_once(env: Env) -> None:
    slot = env.free()[0]
    runner = env.runner()
    first = _book(env, runner, slot, _robert(env))
    again = _book(env, runner, slot, _robert(env))
    assert again == first
    upcoming = asyncio.run(
        env.ehr.upcoming_appointments(clinic_id=DEMO_CLINIC_ID, patient_id=_robert(env), after=NOW)
    )
    assert len(upcoming) == 1
    assert len(env.audit()) == 1


def test_a_slot_held_by_another_booking_is_refused_and_nothing_changes(env: Env) -> None:
    slot = env.free()[0]
    until = NOW + dt.timedelta(minutes=5)
    asyncio.run(
        env.ehr.hold(
            clinic_id=DEMO_CLINIC_ID, slot_id=slot.slot_id, hold_key="another-call", until=until
        )
    )
    result = _book(env, env.runner(), slot, _robert(env))
    assert result == {"status": "refused", "reason": "That time was just taken."}
    assert env.audit() == []


def test_a_failing_write_is_retried_then_its_hold_is_released(env: Env) -> None:
    attempts: list[dict[str, Any]] = []

    async def failing_write(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
        attempts.append(data)
        raise ProviderError("EHR unavailable", retryable=True)

    slot = env.free()[0]
    result = _book(env, env.runner(**{booking.WRITE_APPOINTMENT: failing_write}), slot,
                   _robert(env))  # fmt: skip
    assert result["status"] == "failed"
    assert len(attempts) == 3  # TRANSIENT: three attempts, two waits between them
    assert env.sleeps == [0.25, 0.25]
    assert slot in env.free()  # compensation: the hold was released
    assert env.audit() == []


def test_a_failing_record_leaves_the_booking_standing(env: Env) -> None:
    async def failing_record(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
        raise ProviderError("store unavailable", retryable=True)

    slot = env.free()[0]
    result = _book(env, env.runner(**{booking.RECORD_CHANGE: failing_record}), slot,
                   _robert(env))  # fmt: skip
    assert result["status"] == "booked"
    assert slot not in env.free()


def _reschedule(env: Env, runner: InlineRunner, old: dict[str, Any], new: Slot) -> dict[str, Any]:
    data = {"call_id": "c1", "clinic_id": DEMO_CLINIC_ID, "slot_id": new.slot_id,
            "patient_id": old["patient_id"], "appointment_type": old["appointment_type"],
            "appointment_id": old["appointment_id"]}  # fmt: skip
    instance = booking.instance_id(booking.RESCHEDULE_APPOINTMENT, "c1", new.slot_id)
    return asyncio.run(runner.run(booking.RESCHEDULE_APPOINTMENT, instance_id=instance, data=data))


def test_rescheduling_books_the_new_slot_and_cancels_the_old(env: Env) -> None:
    first, second = env.free()[:2]
    old = _book(env, env.runner(), first, _robert(env))["appointment"]
    result = _reschedule(env, env.runner(), old, second)
    assert result["status"] == "rescheduled"
    assert first in env.free() and second not in env.free()
    upcoming = asyncio.run(
        env.ehr.upcoming_appointments(clinic_id=DEMO_CLINIC_ID, patient_id=_robert(env), after=NOW)
    )
    assert [a.slot_id for a in upcoming] == [second.slot_id]


def test_when_the_old_appointment_cannot_be_cancelled_the_new_one_is_undone(env: Env) -> None:
    cancelled: list[str] = []
    real_cancel = ACTIVITIES[booking.CANCEL_IN_EHR]
    first, second = env.free()[:2]
    old = _book(env, env.runner(), first, _robert(env))["appointment"]

    async def cancel_all_but_the_old(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
        cancelled.append(data["appointment_id"])
        if data["appointment_id"] == old["appointment_id"]:
            raise ProviderError("EHR unavailable", retryable=True)
        return await real_cancel(deps, data)

    runner = env.runner(**{booking.CANCEL_IN_EHR: cancel_all_but_the_old})
    result = _reschedule(env, runner, old, second)
    assert result["status"] == "failed"
    assert cancelled[:3] == [old["appointment_id"]] * 3
    assert len(cancelled) == 4 and cancelled[3] != old["appointment_id"]  # the new one
    upcoming = asyncio.run(
        env.ehr.upcoming_appointments(clinic_id=DEMO_CLINIC_ID, patient_id=_robert(env), after=NOW)
    )
    assert [a.slot_id for a in upcoming] == [first.slot_id]  # exactly the old one, kept


def test_cancelling_frees_the_slot_and_records_it(env: Env) -> None:
    slot = env.free()[0]
    booked = _book(env, env.runner(), slot, _robert(env))["appointment"]
    data = {"call_id": "c1", "clinic_id": DEMO_CLINIC_ID,
            "appointment_id": booked["appointment_id"]}  # fmt: skip
    instance = booking.instance_id(booking.CANCEL_APPOINTMENT, "c1", booked["appointment_id"])
    result = asyncio.run(
        env.runner().run(booking.CANCEL_APPOINTMENT, instance_id=instance, data=data)
    )
    assert result["status"] == "cancelled"
    assert slot in env.free()
    assert env.audit()[-1] == ("update", f"Appointment/{booked['appointment_id']}")


# -- events and the call session -----------------------------------------------------------


def _waits_for_a_knock(steps: Steps) -> Generator[Any, Any, dict[str, Any]]:
    event = steps.received((yield steps.first_event(("Knock",), timeout=dt.timedelta(seconds=0.2))))
    return {"heard": None if event is None else event.data}


def test_an_event_raised_before_the_wait_is_kept_for_it(env: Env) -> None:
    deps = ActivityDeps(ehr=env.ehr, store=env.store, control=None, clock=lambda: NOW)
    runner = InlineRunner(deps=deps, workflows={"knock": _waits_for_a_knock})

    async def main() -> tuple[dict[str, Any], dict[str, Any]]:
        await runner.raise_event("early", "Knock", {"n": 1})
        early = await runner.run("knock", instance_id="early", data={})
        late = await runner.run("knock", instance_id="late", data={})  # times out
        return early, late

    assert asyncio.run(main()) == ({"heard": {"n": 1}}, {"heard": None})


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


def _event(name: str, **data: Any) -> dict[str, Any]:
    return {"name": name, "call_connection_id": "conn-1", **data}


ON_CALL = "+15550100298"


@pytest.mark.parametrize(
    ("after_hours", "target"),
    [
        (AfterHours(), DEMO_STAFF_NUMBER),  # messages after hours: a failure goes to the line
        (AfterHours(action="transfer", on_call_number=ON_CALL), ON_CALL),
    ],
)
def test_a_failed_media_stream_gets_an_apology_and_a_transfer_to_staff(
    env: Env, tls: TlsFiles, after_hours: AfterHours, target: str
) -> None:
    clinic = dataclasses.replace(demo_clinic(), after_hours=after_hours)
    asyncio.run(env.store.save_clinic(clinic))
    assert not clinic.is_open_at(NOW)  # 6 A M: the clinic opens at 8

    async def main() -> tuple[dict[str, Any], LocalAcs]:
        async with LocalAcs(tls) as acs:
            async with AcsCallControl(
                connection_string=acs.connection_string,
                client_options={"connection_verify": str(acs.ca_file)},
            ) as control:
                deps = ActivityDeps(ehr=env.ehr, store=env.store, control=control,
                                    clock=lambda: NOW)  # fmt: skip
                runner = InlineRunner(deps=deps)
                session = asyncio.create_task(
                    runner.run(CALL_SESSION, instance_id="call-1",
                               data={"call_id": "call-1", "clinic_id": DEMO_CLINIC_ID})
                )  # fmt: skip
                for name in ("CallConnected", "MediaStreamingFailed", "PlayCompleted"):
                    await runner.raise_event("call-1", name, _event(name))
                    await asyncio.sleep(0.2)  # let the session act on it
                await runner.raise_event("call-1", "CallDisconnected", _event("CallDisconnected"))
                return await session, acs

    result, acs = asyncio.run(main())
    assert result == {"outcome": "transferred:media_failed"}
    paths = [r.path for r in acs.requests]
    assert paths == ["/calling/callConnections/conn-1:play",
                     "/calling/callConnections/conn-1:transferToParticipant"]  # fmt: skip
    transfer = acs.requests[1].body
    assert transfer["targetParticipant"]["phoneNumber"]["value"] == target
    record = asyncio.run(env.store.get_call("call-1"))
    assert record is not None and record.outcome == "transferred:media_failed"
    assert env.audit("call-1") == [("call.ended", "call")]


def test_every_workflow_and_activity_has_a_name_the_runner_knows() -> None:
    assert set(WORKFLOWS) == {"book_appointment", "reschedule_appointment",
                              "cancel_appointment", "call_session"}  # fmt: skip
    assert {"hold_slot", "write_appointment", "release_hold", "finish_call"} <= set(ACTIVITIES)
