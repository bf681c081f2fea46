"""The back office in process: one call's audited reads, its writes, and the end of a call.

Real SQLite file, real embedded EHR, the seeded demo clinic at a fixed NOW.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from reddytalk.calls.back_office import MAX_SLOT_SEARCH, ClinicRecords, LocalBackOffice
from reddytalk.composition import open_embedded_records
from reddytalk.errors import BookingRefused, ProviderError, SchedulingError
from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import CallRecord, Message
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.ehr.embedded_patients import SealedPatients
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, seed_demo
from reddytalk.providers.sms.outbox import OutboxSmsSender
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.providers.store.sqlite_db import SqliteDb
from reddytalk.scheduling.model import Patient, Slot
from reddytalk.settings import Settings
from reddytalk.workflows.activities import ACTIVITIES, ActivityDeps
from reddytalk.workflows.booking import BOOK_APPOINTMENT, CANCEL_APPOINTMENT, instance_id
from reddytalk.workflows.call_session import CALL_SESSION, FINISH_CALL
from reddytalk.workflows.runner import InlineRunner

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # Wednesday, 9 A M in Chicago
CALL_ID = "c1"
ROBERT = {"given_name": "Robert", "family_name": "Taylor", "birth_date": dt.date(1980, 3, 15)}
LINDA = {"given_name": "Linda", "family_name": "Wilson", "birth_date": dt.date(1975, 7, 4)}
NEWCOMER = {"given_name": "Grace", "family_name": "Hopper", "birth_date": dt.date(1990, 12, 9)}


@dataclass
class Env:
    db: SqliteDb
    store: SqliteStore
    ehr: EmbeddedEhr
    cipher: PhiCipher

    def records(self, call_id: str = CALL_ID, clinic_id: str = DEMO_CLINIC_ID) -> ClinicRecords:
        return ClinicRecords(
            ehr=self.ehr, store=self.store, clock=lambda: NOW, call_id=call_id, clinic_id=clinic_id
        )

    def deps(self) -> ActivityDeps:
        return ActivityDeps(ehr=self.ehr, store=self.store, control=None, clock=lambda: NOW)

    def back_office(self) -> LocalBackOffice:
        async def no_wait(seconds: float) -> None:
            pass

        runner = InlineRunner(deps=self.deps(), sleep=no_wait)
        return LocalBackOffice(
            ehr=self.ehr, store=self.store, runner=runner, clock=lambda: NOW,
            sms=OutboxSmsSender(store=self.store, clock=lambda: NOW),
        )  # fmt: skip

    def audit(self, call_id: str = CALL_ID) -> list[tuple[str, str, dict[str, str]]]:
        trail = asyncio.run(self.store.audit_trail(call_id))
        return [(e.action, e.resource, e.details) for e in trail]

    def patient(self, person: dict[str, Any]) -> Patient | None:
        return asyncio.run(self.ehr.find_patient(clinic_id=DEMO_CLINIC_ID, **person))

    def count_patients(self, person: dict[str, Any]) -> int:
        # No column holds a name: rows are counted by the blind index of the identity.
        patients = SealedPatients(db=self.db, cipher=self.cipher)
        index = asyncio.run(patients.identity_index(DEMO_CLINIC_ID, **person))
        sql = "SELECT count(*) FROM patients WHERE clinic_id = ? AND identity_index = ?"
        params = (DEMO_CLINIC_ID, index)
        return int(self.db.transact(lambda conn: conn.execute(sql, params).fetchone()[0]))

    def bookable_slot(self) -> Slot:
        # The embedded EHR lists a slot starting exactly now but refuses to book it.
        return next(slot for slot in self.free_slots() if slot.start > NOW)

    def free_slots(self, days: int = 1) -> list[Slot]:
        return asyncio.run(
            self.ehr.find_free_slots(
                clinic_id=DEMO_CLINIC_ID,
                start=NOW,
                end=NOW + dt.timedelta(days=days),
                provider_id=None,
            )
        )


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
        asyncio.run(seed_demo(records.store, records.ehr, today=NOW.date()))
        yield Env(records.db, records.store, records.ehr, records.cipher)


def _message(message_id: str = f"{CALL_ID}:message:1", **changes: Any) -> Message:
    message = Message(
        message_id=message_id,
        call_id=CALL_ID,
        clinic_id=DEMO_CLINIC_ID,
        taken_at=NOW,
        text="Please call me back about my lab results.",
        caller_name="Robert Taylor",
    )
    return replace(message, **changes)


def _record(**changes: Any) -> CallRecord:
    record = CallRecord(
        call_id=CALL_ID,
        clinic_id=DEMO_CLINIC_ID,
        started_at=NOW - dt.timedelta(minutes=3),
        ended_at=NOW,
        outcome="message_taken",
        transcript=(("receptionist", "Reddy Family Clinic, how can I help?"), ("caller", "Hi.")),
        tool_calls=({"name": "take_message", "arguments": {}},),
    )
    return replace(record, **changes)


# --- finding and registering patients ---------------------------------------------------


def test_a_known_patient_is_found_and_the_search_audited(env: Env) -> None:
    robert = asyncio.run(env.records().find_patient(**ROBERT))

    assert robert is not None
    assert (robert.given_name, robert.family_name, robert.birth_date) == (
        "Robert",
        "Taylor",
        dt.date(1980, 3, 15),
    )
    assert env.audit() == [("search", f"Patient/{robert.patient_id}", {"matched": "True"})]


def test_an_unknown_person_is_none_and_the_search_audited(env: Env) -> None:
    assert asyncio.run(env.records().find_patient(**NEWCOMER)) is None
    assert env.audit() == [("search", "Patient", {"matched": "False"})]


def test_a_patient_of_another_clinic_is_not_found(env: Env) -> None:
    assert asyncio.run(env.records(clinic_id="other-clinic").find_patient(**ROBERT)) is None


def test_the_audit_never_holds_the_name_or_birth_date(env: Env) -> None:
    records = env.records()
    asyncio.run(records.find_patient(**ROBERT))
    asyncio.run(records.find_patient(**NEWCOMER))
    asyncio.run(records.register_patient(**NEWCOMER))

    trail = asyncio.run(env.store.audit_trail(CALL_ID))
    assert len(trail) == 3
    written = " ".join(
        f"{e.action} {e.resource} {' '.join(f'{k} {v}' for k, v in e.details.items())}"
        for e in trail
    ).casefold()
    for person in (ROBERT, NEWCOMER):
        for phi in (person["given_name"], person["family_name"], person["birth_date"].isoformat()):
            assert phi.casefold() not in written


def test_registering_creates_a_new_patient_and_audits_it(env: Env) -> None:
    assert env.patient(NEWCOMER) is None

    created = asyncio.run(env.records().register_patient(**NEWCOMER))

    assert env.patient(NEWCOMER) == created
    assert created.patient_id.startswith("pat_")
    assert env.audit() == [("create", f"Patient/{created.patient_id}", {})]


def test_registering_the_same_person_again_returns_the_same_patient(env: Env) -> None:
    records = env.records()
    first = asyncio.run(records.register_patient(**NEWCOMER))
    again = asyncio.run(records.register_patient(**NEWCOMER))

    assert again == first
    assert env.count_patients(NEWCOMER) == 1
    assert [(action, resource) for action, resource, _ in env.audit()] == [
        ("create", f"Patient/{first.patient_id}"),
        ("search", f"Patient/{first.patient_id}"),
    ]


def test_registering_an_existing_patient_creates_nobody(env: Env) -> None:
    robert = env.patient(ROBERT)
    assert robert is not None

    assert asyncio.run(env.records().register_patient(**ROBERT)) == robert
    assert env.count_patients(ROBERT) == 1


def test_concurrent_registrations_of_one_person_create_one_patient(env: Env) -> None:
    # A retried request may overlap the first one (a client timeout while it still runs).
    records = env.records()

    async def twice() -> list[Patient]:
        return list(
            await asyncio.gather(
                records.register_patient(**NEWCOMER), records.register_patient(**NEWCOMER)
            )
        )

    first, second = asyncio.run(twice())

    assert first == second
    assert env.count_patients(NEWCOMER) == 1


def test_a_birth_date_in_the_future_is_refused_and_creates_nothing(env: Env) -> None:
    # Tomorrow in UTC is still today east of it (up to UTC+14): refused from the day after.
    unborn = {**NEWCOMER, "birth_date": NOW.date() + dt.timedelta(days=2)}

    with pytest.raises(BookingRefused, match="future"):
        asyncio.run(env.records().register_patient(**unborn))

    assert env.patient(unborn) is None
    assert env.count_patients(unborn) == 0
    assert env.audit() == []


def test_a_patient_born_today_can_be_registered(env: Env) -> None:
    newborn = {**NEWCOMER, "birth_date": NOW.date()}
    created = asyncio.run(env.records().register_patient(**newborn))
    assert env.patient(newborn) == created


# --- free slots ---------------------------------------------------------------------------


def test_free_slots_are_the_clinics_in_range(env: Env) -> None:
    start, end = NOW, NOW + dt.timedelta(days=1)

    found = asyncio.run(env.records().find_free_slots(start=start, end=end, provider_id=None))

    assert found
    assert found == env.free_slots()
    assert all(start <= slot.start < end for slot in found)
    assert [s.start for s in found] == sorted(s.start for s in found)


def test_free_slots_of_one_provider(env: Env) -> None:
    start, end = NOW, NOW + dt.timedelta(days=2)

    found = asyncio.run(env.records().find_free_slots(start=start, end=end, provider_id="dr-chen"))

    assert found
    assert {slot.provider_id for slot in found} == {"dr-chen"}


def test_a_search_as_long_as_the_limit_is_allowed(env: Env) -> None:
    found = asyncio.run(
        env.records().find_free_slots(start=NOW, end=NOW + MAX_SLOT_SEARCH, provider_id=None)
    )
    assert found == env.free_slots(days=MAX_SLOT_SEARCH.days)


@pytest.mark.parametrize(
    ("start", "end"),
    [
        pytest.param(NOW.replace(tzinfo=None), NOW + dt.timedelta(days=1), id="naive-start"),
        pytest.param(NOW, (NOW + dt.timedelta(days=1)).replace(tzinfo=None), id="naive-end"),
        pytest.param(NOW, NOW, id="empty"),
        pytest.param(NOW, NOW - dt.timedelta(hours=1), id="backwards"),
        pytest.param(NOW, NOW + MAX_SLOT_SEARCH + dt.timedelta(seconds=1), id="too-long"),
    ],
)
def test_a_bad_slot_range_is_refused(env: Env, start: dt.datetime, end: dt.datetime) -> None:
    with pytest.raises(ValueError):
        asyncio.run(env.records().find_free_slots(start=start, end=end, provider_id=None))


# --- appointments -------------------------------------------------------------------------


def test_upcoming_appointments_are_audited_with_their_count(env: Env) -> None:
    linda, robert = env.patient(LINDA), env.patient(ROBERT)
    assert linda is not None and robert is not None
    records = env.records()

    lindas = asyncio.run(records.upcoming_appointments(patient_id=linda.patient_id))
    roberts = asyncio.run(records.upcoming_appointments(patient_id=robert.patient_id))

    assert len(lindas) == 1 and lindas[0].patient_id == linda.patient_id
    assert roberts == []
    assert env.audit() == [
        ("search", f"Patient/{linda.patient_id}/Appointment", {"count": "1"}),
        ("search", f"Patient/{robert.patient_id}/Appointment", {"count": "0"}),
    ]


# --- messages -----------------------------------------------------------------------------


def test_a_message_is_kept_once(env: Env) -> None:
    records = env.records()
    message = _message()

    assert asyncio.run(records.take_message(message)) is True
    assert asyncio.run(records.take_message(message)) is False

    assert asyncio.run(env.store.list_messages(DEMO_CLINIC_ID)) == [message]
    assert env.audit() == [("create", f"Message/{message.message_id}", {})]


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"call_id": "c2"}, id="other-call"),
        pytest.param({"clinic_id": "other-clinic"}, id="other-clinic"),
    ],
)
def test_a_message_of_another_call_is_refused(env: Env, changes: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="another call"):
        asyncio.run(env.records().take_message(_message(**changes)))

    for clinic_id in (DEMO_CLINIC_ID, "other-clinic"):
        assert asyncio.run(env.store.list_messages(clinic_id)) == []
    assert env.audit() == [] and env.audit("c2") == []


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_a_message_without_text_is_refused(env: Env, text: str) -> None:
    with pytest.raises(ValueError, match="no text"):
        asyncio.run(env.records().take_message(_message(text=text)))

    assert asyncio.run(env.store.list_messages(DEMO_CLINIC_ID)) == []
    assert env.audit() == []


# --- the call's record --------------------------------------------------------------------


def test_the_record_of_the_call_is_kept(env: Env) -> None:
    asyncio.run(env.records().keep_record(_record()))
    assert asyncio.run(env.store.get_call(CALL_ID)) == _record()


@pytest.mark.parametrize(
    "changes",
    [
        pytest.param({"call_id": "c2"}, id="other-call"),
        pytest.param({"clinic_id": "other-clinic"}, id="other-clinic"),
    ],
)
def test_a_record_of_another_call_is_refused(env: Env, changes: dict[str, str]) -> None:
    record = _record(**changes)

    with pytest.raises(ValueError, match="another call"):
        asyncio.run(env.records().keep_record(record))

    assert asyncio.run(env.store.get_call(record.call_id)) is None


# --- one call's office (in process) -------------------------------------------------------


def test_a_patient_not_identified_in_the_call_is_refused_appointments(env: Env) -> None:
    linda = env.patient(LINDA)
    assert linda is not None
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)

    with pytest.raises(BookingRefused):
        asyncio.run(office.upcoming_appointments(patient_id=linda.patient_id))
    assert env.audit() == []

    assert asyncio.run(office.find_patient(**LINDA)) == linda
    [appointment] = asyncio.run(office.upcoming_appointments(patient_id=linda.patient_id))
    assert appointment.patient_id == linda.patient_id


def test_a_patient_not_found_is_not_identified(env: Env) -> None:
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    robert = env.patient(ROBERT)
    assert robert is not None

    # Another person's search identifies nobody, so Robert's appointments stay out of reach.
    assert asyncio.run(office.find_patient(**NEWCOMER)) is None
    with pytest.raises(BookingRefused):
        asyncio.run(office.upcoming_appointments(patient_id=robert.patient_id))


def test_a_patient_registered_in_the_call_is_identified(env: Env) -> None:
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)

    created = asyncio.run(office.register_patient(**NEWCOMER))

    assert asyncio.run(office.upcoming_appointments(patient_id=created.patient_id)) == []


def test_an_identification_holds_for_its_own_call_only(env: Env) -> None:
    back_office = env.back_office()
    first = back_office.for_call(call_id="c1", clinic_id=DEMO_CLINIC_ID, call_token=None)
    second = back_office.for_call(call_id="c2", clinic_id=DEMO_CLINIC_ID, call_token=None)
    linda = asyncio.run(first.find_patient(**LINDA))
    assert linda is not None

    with pytest.raises(BookingRefused):
        asyncio.run(second.upcoming_appointments(patient_id=linda.patient_id))


def _booking(slot: Slot, patient_id: str) -> dict[str, Any]:
    return {
        "call_id": CALL_ID,
        "clinic_id": DEMO_CLINIC_ID,
        "slot_id": slot.slot_id,
        "patient_id": patient_id,
        "appointment_type": "checkup",
    }


def test_a_workflow_for_a_patient_not_identified_books_nothing(env: Env) -> None:
    robert = env.patient(ROBERT)
    assert robert is not None
    slot = env.bookable_slot()
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name = instance_id(BOOK_APPOINTMENT, CALL_ID, slot.slot_id)

    booking = _booking(slot, robert.patient_id)

    with pytest.raises(BookingRefused):
        asyncio.run(office.run(BOOK_APPOINTMENT, instance_id=name, data=booking))

    assert slot in env.free_slots()
    assert (
        asyncio.run(
            env.ehr.upcoming_appointments(
                clinic_id=DEMO_CLINIC_ID, patient_id=robert.patient_id, after=NOW
            )
        )
        == []
    )
    assert env.audit() == []


def test_a_workflow_for_the_identified_patient_books(env: Env) -> None:
    slot = env.bookable_slot()
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)

    async def scenario() -> dict[str, Any]:
        robert = await office.find_patient(**ROBERT)
        assert robert is not None
        name = instance_id(BOOK_APPOINTMENT, CALL_ID, slot.slot_id)
        return await office.run(
            BOOK_APPOINTMENT, instance_id=name, data=_booking(slot, robert.patient_id)
        )

    result = asyncio.run(scenario())

    assert result["status"] == "booked"
    assert result["appointment"]["slot_id"] == slot.slot_id
    assert slot not in env.free_slots()


def test_an_identified_patient_cannot_cancel_another_patients_appointment(env: Env) -> None:
    # The tools API refuses this (403: not one of the patient's upcoming appointments);
    # the in-process office must refuse it as well.
    linda = env.patient(LINDA)
    assert linda is not None
    [lindas] = asyncio.run(
        env.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=linda.patient_id, after=NOW
        )
    )
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)

    async def scenario() -> None:
        robert = await office.find_patient(**ROBERT)
        assert robert is not None
        name = instance_id(CANCEL_APPOINTMENT, CALL_ID, lindas.appointment_id)
        data = {
            "call_id": CALL_ID,
            "clinic_id": DEMO_CLINIC_ID,
            "patient_id": robert.patient_id,
            "appointment_id": lindas.appointment_id,
        }
        with pytest.raises(SchedulingError):
            await office.run(CANCEL_APPOINTMENT, instance_id=name, data=data)

    asyncio.run(scenario())

    still = asyncio.run(env.ehr.get_appointment(lindas.appointment_id))
    assert still is not None and still.status == "booked"


def test_a_cancel_naming_no_patient_is_refused(env: Env) -> None:
    # The tools API requires the patient of a cancel (and its patient token).
    linda = env.patient(LINDA)
    assert linda is not None
    [lindas] = asyncio.run(
        env.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=linda.patient_id, after=NOW
        )
    )
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name = instance_id(CANCEL_APPOINTMENT, CALL_ID, lindas.appointment_id)
    data = {
        "call_id": CALL_ID,
        "clinic_id": DEMO_CLINIC_ID,
        "appointment_id": lindas.appointment_id,
    }

    with pytest.raises(BookingRefused):
        asyncio.run(office.run(CANCEL_APPOINTMENT, instance_id=name, data=data))

    still = asyncio.run(env.ehr.get_appointment(lindas.appointment_id))
    assert still is not None and still.status == "booked"


def test_ending_a_call_without_a_session_does_nothing(env: Env) -> None:
    back_office = env.back_office()
    office = back_office.for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    session = {"call_id": CALL_ID, "clinic_id": DEMO_CLINIC_ID}

    async def scenario() -> dict[str, Any]:
        assert await office.end_call(transfer_reason=None) is None
        assert await office.end_call(transfer_reason="caller_request") is None
        # A session started later sees none of it: no hang-up or transfer was left waiting.
        runner = back_office.runner
        await runner.raise_event(CALL_ID, "CallConnected", {"call_connection_id": "conn-1"})
        await runner.raise_event(CALL_ID, "CallDisconnected", {})
        return await runner.run(CALL_SESSION, instance_id=CALL_ID, data=session)

    assert asyncio.run(scenario()) == {"outcome": "completed"}


# --- the end of a call (the session's finish_call activity) -------------------------------


def _finish(env: Env, outcome: str = "completed") -> dict[str, Any]:
    activity = ACTIVITIES[FINISH_CALL]
    data = {"call_id": CALL_ID, "clinic_id": DEMO_CLINIC_ID, "outcome": outcome}
    return asyncio.run(activity(env.deps(), data))


def test_finishing_a_call_keeps_the_conversations_record(env: Env) -> None:
    asyncio.run(env.records().keep_record(_record()))

    _finish(env, "completed")

    assert asyncio.run(env.store.get_call(CALL_ID)) == _record()


def test_finishing_a_call_without_a_record_stores_a_stub(env: Env) -> None:
    _finish(env, "not_connected")

    stored = asyncio.run(env.store.get_call(CALL_ID))
    assert stored is not None
    assert (stored.clinic_id, stored.outcome, stored.transcript) == (
        DEMO_CLINIC_ID,
        "not_connected",
        (),
    )
    assert stored.started_at == stored.ended_at == NOW


def test_the_conversations_record_replaces_a_stub(env: Env) -> None:
    _finish(env, "completed")  # the session ended before the media worker reported

    asyncio.run(env.records().keep_record(_record()))

    assert asyncio.run(env.store.get_call(CALL_ID)) == _record()


def test_finishing_a_call_twice_audits_its_end_once(env: Env) -> None:
    _finish(env, "completed")
    _finish(env, "completed")

    assert env.audit() == [("call.ended", "call", {"outcome": "completed"})]


# --- text confirmations ---------------------------------------------------------------------

CALLER_NUMBER = "+15555550123"
MARIA = {"given_name": "Maria", "family_name": "Garcia", "birth_date": dt.date(1985, 4, 2)}


class _Sender:
    """An SmsSender double: records what it is asked to send, or fails as told."""

    def __init__(self, fail_with: ProviderError | None = None) -> None:
        self.sent: list[tuple[str, str, dict[str, str]]] = []
        self.fail_with = fail_with

    async def send(self, to_number: str, text: str, **kwargs: str) -> str:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append((to_number, text, kwargs))
        return f"msg-{len(self.sent)}"


def _keep_caller_number(env: Env, number: str = CALLER_NUMBER) -> None:
    # what incoming_call does when it answers
    save = env.store.save_call_number(CALL_ID, DEMO_CLINIC_ID, party="caller", number=number)
    asyncio.run(save)


def _book(env: Env, office: Any, person: dict[str, Any] = ROBERT) -> tuple[str, dict[str, Any]]:
    """Identify ``person`` in the call and book them a slot; the instance id and data."""
    slot = env.bookable_slot()

    async def scenario() -> tuple[str, dict[str, Any]]:
        patient = await office.find_patient(**person)
        assert patient is not None
        name = instance_id(BOOK_APPOINTMENT, CALL_ID, slot.slot_id)
        data = _booking(slot, patient.patient_id)
        assert (await office.run(BOOK_APPOINTMENT, instance_id=name, data=data))["status"] == (
            "booked"
        )
        return name, data

    return asyncio.run(scenario())


def _outbox(env: Env) -> list[Any]:
    return asyncio.run(env.store.list_outbox(DEMO_CLINIC_ID))


def test_identifying_a_patient_keeps_no_copy_of_their_phone(env: Env) -> None:
    maria = asyncio.run(env.ehr.add_patient(clinic_id=DEMO_CLINIC_ID, phone="(555) 010-0177",
                                            **MARIA))  # fmt: skip
    records = env.records()

    assert asyncio.run(records.find_patient(**MARIA)) == maria
    assert asyncio.run(records.register_patient(**MARIA)) == maria

    party = f"patient:{maria.patient_id}"
    assert asyncio.run(env.store.get_call_number(CALL_ID, DEMO_CLINIC_ID, party=party)) is None
    assert [r for _, r, _ in env.audit() if r.startswith("CallNumber/")] == []


def test_a_phone_no_text_can_reach_gives_way_to_the_callers_number(env: Env) -> None:
    asyncio.run(env.ehr.add_patient(clinic_id=DEMO_CLINIC_ID, phone="ext. 42", **MARIA))
    _keep_caller_number(env)
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name, data = _book(env, office, MARIA)

    assert asyncio.run(office.send_confirmation(BOOK_APPOINTMENT, instance_id=name, data=data))

    [text] = _outbox(env)
    assert text.to_number == CALLER_NUMBER
    assert [d["number"] for a, _, d in env.audit() if a == "send"] == ["caller_number"]


def test_a_confirmation_goes_to_the_callers_number_once(
    env: Env, caplog: pytest.LogCaptureFixture
) -> None:
    _keep_caller_number(env)
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name, data = _book(env, office)

    with caplog.at_level(logging.DEBUG):
        first = asyncio.run(office.send_confirmation(BOOK_APPOINTMENT, instance_id=name, data=data))
        again = asyncio.run(office.send_confirmation(BOOK_APPOINTMENT, instance_id=name, data=data))

    assert (first, again) == (True, False)
    [booked] = asyncio.run(
        env.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=data["patient_id"], after=NOW
        )
    )
    [text] = _outbox(env)
    assert text.to_number == CALLER_NUMBER
    assert text.text.startswith("Reddy Family Clinic: your appointment with Doctor")
    key = f"sms-confirmation:{CALL_ID}:{BOOK_APPOINTMENT}:{booked.appointment_id}"
    assert text.message_id == key
    sends = [(r, d) for a, r, d in env.audit() if a == "send"]
    details = {"appointment": f"Appointment/{booked.appointment_id}", "change": "booked",
               "number": "caller_number"}  # fmt: skip
    assert sends == [(f"Sms/{key}", details)]
    assert "5555550123" not in caplog.text
    assert "Reddy Family Clinic: your" not in caplog.text


def test_the_ehr_phone_wins_over_the_callers_number(env: Env) -> None:
    asyncio.run(env.ehr.add_patient(clinic_id=DEMO_CLINIC_ID, phone="+1 555 010 0177", **MARIA))
    _keep_caller_number(env)
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name, data = _book(env, office, MARIA)

    assert asyncio.run(office.send_confirmation(BOOK_APPOINTMENT, instance_id=name, data=data))

    [text] = _outbox(env)
    assert text.to_number == "+15550100177"
    assert [d["number"] for a, _, d in env.audit() if a == "send"] == ["patient_phone"]
    patient = f"Patient/{data['patient_id']}"
    assert ("read", patient, {"found": "True"}) in env.audit()  # read from the EHR to send


def test_the_ehr_phone_is_texted_in_e164(env: Env) -> None:
    asyncio.run(env.ehr.add_patient(clinic_id=DEMO_CLINIC_ID, phone="(555) 010-0177", **MARIA))
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name, data = _book(env, office, MARIA)

    assert asyncio.run(office.send_confirmation(BOOK_APPOINTMENT, instance_id=name, data=data))

    [text] = _outbox(env)
    assert text.to_number == "+15550100177"


def test_only_a_change_this_call_made_for_its_patient_is_texted(env: Env) -> None:
    _keep_caller_number(env)
    back_office = env.back_office()
    office = back_office.for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    name, data = _book(env, office)
    other = back_office.for_call(call_id="c2", clinic_id=DEMO_CLINIC_ID, call_token=None)
    linda = asyncio.run(office.find_patient(**LINDA))
    assert linda is not None

    cases = [
        (office, CANCEL_APPOINTMENT, name, data),  # not that write
        (office, BOOK_APPOINTMENT, "c1:book_appointment:other-slot", data),  # never ran
        (office, BOOK_APPOINTMENT, name, {**data, "patient_id": linda.patient_id}),
        (other, BOOK_APPOINTMENT, name, data),  # another call's office
    ]
    for office_, workflow, instance, request in cases:
        with pytest.raises(BookingRefused):
            asyncio.run(office_.send_confirmation(workflow, instance_id=instance, data=request))
    assert _outbox(env) == []


def _records_and_appointment(env: Env) -> tuple[ClinicRecords, Any]:
    office = env.back_office().for_call(call_id=CALL_ID, clinic_id=DEMO_CLINIC_ID, call_token=None)
    _, data = _book(env, office)
    [appointment] = asyncio.run(
        env.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=data["patient_id"], after=NOW
        )
    )
    return env.records(), appointment


def test_a_retryable_failure_gives_the_claim_back(env: Env) -> None:
    _keep_caller_number(env)
    records, appointment = _records_and_appointment(env)
    down = _Sender(fail_with=ProviderError("SMS busy", retryable=True))

    with pytest.raises(ProviderError):
        asyncio.run(records.send_confirmation(
            workflow=BOOK_APPOINTMENT, appointment=appointment, sms=down))  # fmt: skip
    up = _Sender()
    assert asyncio.run(records.send_confirmation(
        workflow=BOOK_APPOINTMENT, appointment=appointment, sms=up))  # fmt: skip

    [(to_number, text, kwargs)] = up.sent
    assert to_number == CALLER_NUMBER and "is booked." in text
    assert kwargs["from_number"] == DEMO_PHONE_NUMBER
    assert [(a, d) for a, _, d in env.audit() if a.startswith("send")] == [
        ("send_failed", {"number": "caller_number", "retryable": "True"}),
        ("send", {"appointment": f"Appointment/{appointment.appointment_id}",
                  "change": "booked", "number": "caller_number"}),
    ]  # fmt: skip


def test_a_number_that_cannot_take_a_text_is_not_tried_again(env: Env) -> None:
    _keep_caller_number(env)
    records, appointment = _records_and_appointment(env)
    refused = _Sender(fail_with=ProviderError("ACS SMS refused the recipient", retryable=False))

    with pytest.raises(ProviderError):
        asyncio.run(records.send_confirmation(
            workflow=BOOK_APPOINTMENT, appointment=appointment, sms=refused))  # fmt: skip
    again = _Sender()
    assert not asyncio.run(records.send_confirmation(
        workflow=BOOK_APPOINTMENT, appointment=appointment, sms=again))  # fmt: skip
    assert again.sent == []


def test_without_a_number_nothing_is_sent_and_nothing_is_claimed(env: Env) -> None:
    records, appointment = _records_and_appointment(env)
    sender = _Sender()

    with pytest.raises(SchedulingError, match="don't have a number"):
        asyncio.run(records.send_confirmation(
            workflow=BOOK_APPOINTMENT, appointment=appointment, sms=sender))  # fmt: skip
    _keep_caller_number(env)
    assert asyncio.run(records.send_confirmation(
        workflow=BOOK_APPOINTMENT, appointment=appointment, sms=sender))  # fmt: skip
    assert len(sender.sent) == 1
    assert [a for a, _, _ in env.audit() if a.startswith("send")] == ["send"]
