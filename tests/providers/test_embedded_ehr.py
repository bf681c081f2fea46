"""The embedded EHR and the demo seed, on a real SQLite file with a fixed clock."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from reddytalk.composition import open_embedded_records
from reddytalk.errors import SchedulingError, SlotUnavailable, TimeNotBookable
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic, seed_demo
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.scheduling.model import (
    Appointment,
    Clinic,
    OpeningHours,
    Patient,
    Provider,
    Slot,
)
from reddytalk.settings import Settings

CHICAGO = ZoneInfo("America/Chicago")
TODAY = dt.date(2026, 3, 2)  # a Monday; daylight saving time starts on Sunday 2026-03-08
NOW = dt.datetime(2026, 3, 2, 6, 0, tzinfo=CHICAGO)
SEEDED_SLOTS = 3 * (10 * 18 + 2 * 6)  # 3 providers; 10 weekdays of 18, 2 Saturdays of 6
MARIA_VISIT = dt.datetime(2026, 3, 4, 10, 0, tzinfo=CHICAGO)  # first weekday >= 2 days out


@dataclass
class Env:
    path: Path
    store: SqliteStore
    ehr: EmbeddedEhr

    def rows(self, sql: str) -> list[tuple[object, ...]]:
        """What the file holds, read over a connection of its own."""
        raw = sqlite3.connect(self.path)
        try:
            return list(raw.execute(sql))
        finally:
            raw.close()

    def dump(self) -> list[str]:
        raw = sqlite3.connect(self.path)
        try:
            return list(raw.iterdump())
        finally:
            raw.close()


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
        yield Env(records.db.path, records.store, records.ehr)


@pytest.fixture
def seeded(env: Env) -> Env:
    asyncio.run(seed_demo(env.store, env.ehr, today=TODAY))
    return env


def _small_clinic(env: Env) -> Clinic:
    clinic = Clinic(
        clinic_id="small",
        name="Small Clinic",
        phone_number="+15550100300",
        address="1 Side Street",
        time_zone="America/Chicago",
        hours=(OpeningHours(0, dt.time(9, 0), dt.time(11, 0)),),
        providers=(Provider("dr-b", "Doctor B", "B"), Provider("dr-a", "Doctor A", "A")),
        appointment_types=(),
    )
    asyncio.run(env.store.save_clinic(clinic))
    return clinic


def _at(hour: int, minute: int = 0, day: dt.date = TODAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=CHICAGO)


def _slot(slot_id: str, provider_id: str, start: dt.datetime) -> Slot:
    return Slot(slot_id, provider_id, start, start + dt.timedelta(minutes=30))


def _patient_id(env: Env, given: str, family: str, born: dt.date) -> str:
    patient = asyncio.run(
        env.ehr.find_patient(
            clinic_id=DEMO_CLINIC_ID, given_name=given, family_name=family, birth_date=born
        )
    )
    assert patient is not None
    return patient.patient_id


def _robert(env: Env) -> str:
    return _patient_id(env, "Robert", "Taylor", dt.date(1980, 3, 15))


def _free(env: Env, day: dt.date, provider_id: str | None = None) -> list[Slot]:
    start = dt.datetime.combine(day, dt.time(0, 0), tzinfo=CHICAGO)
    return asyncio.run(
        env.ehr.find_free_slots(
            clinic_id=DEMO_CLINIC_ID,
            start=start,
            end=start + dt.timedelta(days=1),
            provider_id=provider_id,
        )
    )


def _book(
    env: Env, slot_id: str, patient_id: str, key: str, clinic_id: str = DEMO_CLINIC_ID
) -> Appointment:
    return asyncio.run(
        env.ehr.book(
            clinic_id=clinic_id,
            slot_id=slot_id,
            patient_id=patient_id,
            appointment_type="checkup",
            idempotency_key=key,
        )
    )


# -- seed --------------------------------------------------------------------------------------


def test_seed_creates_the_demo_clinic_schedule_and_patients(seeded: Env) -> None:
    assert asyncio.run(seeded.store.get_clinic(DEMO_CLINIC_ID)) == demo_clinic()
    assert seeded.rows("SELECT count(*) FROM slots") == [(SEEDED_SLOTS,)]
    ((busy,),) = seeded.rows("SELECT count(*) FROM slots WHERE status = 'busy'")
    assert isinstance(busy, int)
    assert 0.15 * SEEDED_SLOTS < busy < 0.35 * SEEDED_SLOTS
    ids = [row[0] for row in seeded.rows("SELECT patient_id FROM patients")]
    patients = [
        asyncio.run(seeded.ehr.get_patient(clinic_id=DEMO_CLINIC_ID, patient_id=patient_id))
        for patient_id in ids
    ]
    assert sorted((p.given_name, p.family_name, p.birth_date) for p in patients if p) == [
        ("Emily", "Davis", dt.date(1985, 6, 10)),
        ("Linda", "Wilson", dt.date(1975, 7, 4)),
        ("Robert", "Taylor", dt.date(1980, 3, 15)),
    ]
    linda = _patient_id(seeded, "Linda", "Wilson", dt.date(1975, 7, 4))
    (visit,) = asyncio.run(
        seeded.ehr.upcoming_appointments(clinic_id=DEMO_CLINIC_ID, patient_id=linda, after=NOW)
    )
    assert (visit.provider_id, visit.appointment_type, visit.start) == (
        "dr-chen",
        "checkup",
        MARIA_VISIT,
    )


def test_seeding_twice_changes_nothing(seeded: Env) -> None:
    before = seeded.dump()

    asyncio.run(seed_demo(seeded.store, seeded.ehr, today=TODAY))

    assert seeded.dump() == before


def test_seeding_again_keeps_an_admins_change_to_the_demo_clinic(seeded: Env) -> None:
    changed = dataclasses.replace(
        demo_clinic(), greeting="Reddy Family Clinic, hello.", other_phone_numbers=("+15550100201",)
    )
    asyncio.run(seeded.store.save_clinic(changed))  # as scripts/clinic update does

    asyncio.run(seed_demo(seeded.store, seeded.ehr, today=TODAY + dt.timedelta(days=1)))

    assert asyncio.run(seeded.store.get_clinic(DEMO_CLINIC_ID)) == changed
    assert asyncio.run(seeded.store.find_clinic_by_number("+15550100201")) == changed


def test_seeding_on_a_later_day_adds_days_but_no_second_visit(seeded: Env) -> None:
    asyncio.run(seed_demo(seeded.store, seeded.ehr, today=TODAY + dt.timedelta(days=1)))

    assert seeded.rows("SELECT count(*) FROM appointments") == [(1,)]
    assert seeded.rows("SELECT count(*) FROM patients") == [(3,)]
    assert seeded.rows("SELECT count(*) FROM slots") == [(SEEDED_SLOTS + 3 * 18,)]


def test_seeded_slots_are_local_opening_hours_across_daylight_saving(seeded: Env) -> None:
    for day in (TODAY, dt.date(2026, 3, 9)):  # before and after the clocks change
        starts = seeded.rows(
            "SELECT start_utc FROM slots WHERE provider_id = 'dr-patel'"
            f" AND start_utc LIKE '{day.isoformat()}%' ORDER BY start_utc"
        )
        local = [dt.datetime.fromisoformat(str(s)).astimezone(CHICAGO) for (s,) in starts]
        assert local[0].time() == dt.time(8, 0) and local[-1].time() == dt.time(16, 30)
        assert len(local) == 18


# -- patients ----------------------------------------------------------------------------------


def test_find_patient_ignores_case_but_not_the_birth_date(seeded: Env) -> None:
    def find(
        given: str, family: str, born: dt.date, clinic: str = DEMO_CLINIC_ID
    ) -> Patient | None:
        return asyncio.run(
            seeded.ehr.find_patient(
                clinic_id=clinic, given_name=given, family_name=family, birth_date=born
            )
        )

    found = find("lINDA", " WILSON ", dt.date(1975, 7, 4))
    assert found is not None and found == find("Linda", "Wilson", dt.date(1975, 7, 4))
    assert (found.given_name, found.family_name) == ("Linda", "Wilson")
    assert find("Linda", "Wilson", dt.date(1975, 7, 5)) is None
    assert find("Linda", "Taylor", dt.date(1975, 7, 4)) is None
    assert find("Linda", "Wilson", dt.date(1975, 7, 4), clinic="other-clinic") is None


def test_a_created_patient_can_be_found(seeded: Env) -> None:
    created = asyncio.run(
        seeded.ehr.create_patient(
            clinic_id=DEMO_CLINIC_ID,
            given_name="Ana",
            family_name="Lopez",
            birth_date=dt.date(2001, 1, 2),
        )
    )

    assert created.patient_id.startswith("pat_")
    assert _patient_id(seeded, "ana", "lopez", dt.date(2001, 1, 2)) == created.patient_id


# -- free slots --------------------------------------------------------------------------------


def test_free_slots_are_in_range_ordered_and_filtered(env: Env) -> None:
    clinic = _small_clinic(env)
    slots = [
        _slot("slot_b9", "dr-b", _at(9)),
        _slot("slot_a9", "dr-a", _at(9)),
        _slot("slot_a930", "dr-a", _at(9, 30)),
        _slot("slot_b10", "dr-b", _at(10)),
        _slot("slot_b930", "dr-b", _at(9, 30)),
    ]
    asyncio.run(env.ehr.add_slots(clinic.clinic_id, slots, busy_slot_ids={"slot_a930"}))

    def free(start: dt.datetime, end: dt.datetime, provider_id: str | None = None) -> list[str]:
        found = asyncio.run(
            env.ehr.find_free_slots(
                clinic_id=clinic.clinic_id, start=start, end=end, provider_id=provider_id
            )
        )
        return [s.slot_id for s in found]

    assert free(_at(9), _at(10)) == ["slot_a9", "slot_b9", "slot_b930"]
    assert free(_at(9, 30), _at(10, 30)) == ["slot_b930", "slot_b10"]
    assert free(_at(9), _at(11), provider_id="dr-a") == ["slot_a9"]
    assert free(_at(9, 1), _at(10)) == ["slot_b930"]
    assert free(_at(10, 1), _at(11)) == []
    (slot,) = asyncio.run(
        env.ehr.find_free_slots(
            clinic_id=clinic.clinic_id, start=_at(10), end=_at(11), provider_id=None
        )
    )
    assert slot == slots[3] and slot.start.tzinfo == CHICAGO


def test_free_slots_leave_out_the_past(env: Env) -> None:
    clinic = _small_clinic(env)
    early = _slot("slot_early", "dr-a", NOW - dt.timedelta(hours=1))
    late = _slot("slot_late", "dr-a", NOW + dt.timedelta(hours=1))
    asyncio.run(env.ehr.add_slots(clinic.clinic_id, [early, late]))

    found = asyncio.run(
        env.ehr.find_free_slots(
            clinic_id=clinic.clinic_id,
            start=NOW - dt.timedelta(days=1),
            end=NOW + dt.timedelta(days=1),
            provider_id=None,
        )
    )

    assert found == [late]


def test_seeded_free_slots_are_the_free_rows_in_order(seeded: Env) -> None:
    start = dt.datetime.combine(TODAY, dt.time(0, 0), tzinfo=CHICAGO)
    found = asyncio.run(
        seeded.ehr.find_free_slots(
            clinic_id=DEMO_CLINIC_ID,
            start=start,
            end=start + dt.timedelta(days=14),
            provider_id=None,
        )
    )

    assert seeded.rows("SELECT count(*) FROM slots WHERE status = 'free'") == [(len(found),)]
    assert found == sorted(found, key=lambda s: (s.start, s.provider_id))
    clinic = demo_clinic()
    assert all(clinic.is_open_at(s.start) and s.start.tzinfo == CHICAGO for s in found)


def test_adding_the_same_slots_again_changes_nothing(env: Env) -> None:
    clinic = _small_clinic(env)
    asyncio.run(env.ehr.add_slots(clinic.clinic_id, [_slot("slot_1", "dr-a", _at(9))]))
    before = env.dump()

    asyncio.run(env.ehr.add_slots(clinic.clinic_id, [_slot("slot_2", "dr-a", _at(9))]))
    asyncio.run(
        env.ehr.add_slots(
            clinic.clinic_id, [_slot("slot_1", "dr-a", _at(9))], busy_slot_ids={"slot_1"}
        )
    )

    assert env.dump() == before


def test_slots_of_an_unknown_clinic_are_refused(env: Env) -> None:
    with pytest.raises(ValueError, match="unknown clinic"):
        asyncio.run(env.ehr.add_slots("nowhere", [_slot("slot_1", "dr-a", _at(9))]))


# -- booking -----------------------------------------------------------------------------------


def test_a_booked_slot_is_no_longer_free(seeded: Env) -> None:
    day = dt.date(2026, 3, 5)
    slot = _free(seeded, day, "dr-rivera")[0]

    booked = _book(seeded, slot.slot_id, _robert(seeded), "key-1")

    assert booked.appointment_id.startswith("appt_")
    assert (booked.slot_id, booked.provider_id, booked.start, booked.status) == (
        slot.slot_id,
        "dr-rivera",
        slot.start,
        "booked",
    )
    assert booked.start.tzinfo == CHICAGO
    assert slot not in _free(seeded, day)
    assert asyncio.run(seeded.ehr.get_appointment(booked.appointment_id)) == booked
    assert asyncio.run(seeded.ehr.get_appointment("appt_missing")) is None


def test_two_callers_racing_for_one_slot_get_one_appointment(seeded: Env) -> None:
    slot = _free(seeded, dt.date(2026, 3, 5))[0]
    robert = _robert(seeded)
    emily = _patient_id(seeded, "Emily", "Davis", dt.date(1985, 6, 10))

    async def race() -> tuple[Appointment | BaseException, ...]:
        return await asyncio.gather(
            seeded.ehr.book(
                clinic_id=DEMO_CLINIC_ID,
                slot_id=slot.slot_id,
                patient_id=robert,
                appointment_type="checkup",
                idempotency_key="robert-1",
            ),
            seeded.ehr.book(
                clinic_id=DEMO_CLINIC_ID,
                slot_id=slot.slot_id,
                patient_id=emily,
                appointment_type="sick-visit",
                idempotency_key="emily-1",
            ),
            return_exceptions=True,
        )

    results = asyncio.run(race())

    booked = [r for r in results if isinstance(r, Appointment)]
    refused = [r for r in results if isinstance(r, BaseException)]
    assert len(booked) == 1 and len(refused) == 1
    assert isinstance(refused[0], SlotUnavailable)
    assert str(refused[0]) == "That time was just taken."
    assert seeded.rows(f"SELECT count(*) FROM appointments WHERE slot_id = '{slot.slot_id}'") == [
        (1,)
    ]


def test_the_same_idempotency_key_books_once(seeded: Env) -> None:
    slot = _free(seeded, dt.date(2026, 3, 5))[0]
    robert = _robert(seeded)

    async def twice() -> list[Appointment]:
        return await asyncio.gather(
            *(
                seeded.ehr.book(
                    clinic_id=DEMO_CLINIC_ID,
                    slot_id=slot.slot_id,
                    patient_id=robert,
                    appointment_type="checkup",
                    idempotency_key="retry-me",
                )
                for _ in range(2)
            )
        )

    first, second = asyncio.run(twice())
    third = _book(seeded, slot.slot_id, robert, "retry-me")

    assert first == second == third
    assert seeded.rows("SELECT count(*) FROM appointments WHERE idempotency_key = 'retry-me'") == [
        (1,)
    ]
    with pytest.raises(ValueError, match="idempotency key"):
        _book(seeded, _free(seeded, dt.date(2026, 3, 5))[0].slot_id, robert, "retry-me")


def test_booking_a_past_slot_is_refused_and_changes_nothing(env: Env) -> None:
    clinic = _small_clinic(env)
    past = _slot("slot_past", "dr-a", NOW - dt.timedelta(days=1))
    asyncio.run(env.ehr.add_slots(clinic.clinic_id, [past]))
    patient = asyncio.run(
        env.ehr.create_patient(
            clinic_id=clinic.clinic_id,
            given_name="Ana",
            family_name="Lopez",
            birth_date=dt.date(2001, 1, 2),
        )
    )
    before = env.dump()

    with pytest.raises(TimeNotBookable, match="already passed"):
        _book(env, past.slot_id, patient.patient_id, "key-past", clinic.clinic_id)

    assert env.dump() == before


def test_booking_an_unknown_slot_or_patient_is_refused(seeded: Env) -> None:
    slot = _free(seeded, dt.date(2026, 3, 5))[0]
    before = seeded.dump()

    with pytest.raises(SlotUnavailable, match="couldn't find that time"):
        _book(seeded, "slot_missing", _robert(seeded), "key-1")
    with pytest.raises(SchedulingError, match="patient record"):
        _book(seeded, slot.slot_id, "pat_missing", "key-2")

    assert seeded.dump() == before


# -- cancelling and upcoming -------------------------------------------------------------------


def test_cancelling_frees_the_slot_and_is_idempotent(seeded: Env) -> None:
    linda = _patient_id(seeded, "Linda", "Wilson", dt.date(1975, 7, 4))
    (visit,) = asyncio.run(
        seeded.ehr.upcoming_appointments(clinic_id=DEMO_CLINIC_ID, patient_id=linda, after=NOW)
    )
    assert visit.slot_id not in {s.slot_id for s in _free(seeded, MARIA_VISIT.date())}

    cancelled = asyncio.run(
        seeded.ehr.cancel(clinic_id=DEMO_CLINIC_ID, appointment_id=visit.appointment_id)
    )
    after_first = seeded.dump()
    again = asyncio.run(
        seeded.ehr.cancel(clinic_id=DEMO_CLINIC_ID, appointment_id=visit.appointment_id)
    )

    assert cancelled.status == "cancelled" and cancelled.appointment_id == visit.appointment_id
    assert again == cancelled
    assert seeded.dump() == after_first
    assert visit.slot_id in {s.slot_id for s in _free(seeded, MARIA_VISIT.date(), "dr-chen")}
    assert (
        asyncio.run(
            seeded.ehr.upcoming_appointments(clinic_id=DEMO_CLINIC_ID, patient_id=linda, after=NOW)
        )
        == []
    )
    assert asyncio.run(seeded.ehr.get_appointment(visit.appointment_id)) == cancelled


def test_cancelling_an_unknown_appointment_is_a_clear_error(seeded: Env) -> None:
    with pytest.raises(SlotUnavailable, match="couldn't find that appointment"):
        asyncio.run(seeded.ehr.cancel(clinic_id=DEMO_CLINIC_ID, appointment_id="appt_missing"))


def test_upcoming_appointments_are_booked_ones_after_a_time_earliest_first(seeded: Env) -> None:
    robert = _robert(seeded)
    later = _free(seeded, dt.date(2026, 3, 10))[0]
    sooner = _free(seeded, dt.date(2026, 3, 5))[0]
    dropped = _free(seeded, dt.date(2026, 3, 6))[0]
    b_later = _book(seeded, later.slot_id, robert, "k-later")
    b_sooner = _book(seeded, sooner.slot_id, robert, "k-sooner")
    b_dropped = _book(seeded, dropped.slot_id, robert, "k-dropped")
    asyncio.run(
        seeded.ehr.cancel(clinic_id=DEMO_CLINIC_ID, appointment_id=b_dropped.appointment_id)
    )

    def upcoming(after: dt.datetime) -> list[Appointment]:
        return asyncio.run(
            seeded.ehr.upcoming_appointments(
                clinic_id=DEMO_CLINIC_ID, patient_id=robert, after=after
            )
        )

    assert upcoming(NOW) == [b_sooner, b_later]
    assert upcoming(sooner.start) == [b_later]
    assert upcoming(later.start) == []


# -- holds -------------------------------------------------------------------------------------


def _hold(
    env: Env, slot_id: str, key: str, minutes: int = 5, clinic_id: str = DEMO_CLINIC_ID
) -> None:
    until = NOW + dt.timedelta(minutes=minutes)
    asyncio.run(env.ehr.hold(clinic_id=clinic_id, slot_id=slot_id, hold_key=key, until=until))


def test_a_held_slot_is_not_offered_and_only_its_booking_can_book_it(seeded: Env) -> None:
    day = dt.date(2026, 3, 5)
    slot = _free(seeded, day)[0]
    _hold(seeded, slot.slot_id, "robert-1")
    assert slot not in _free(seeded, day)
    emily = _patient_id(seeded, "Emily", "Davis", dt.date(1985, 6, 10))
    with pytest.raises(SlotUnavailable):
        _book(seeded, slot.slot_id, emily, "emily-1")
    with pytest.raises(SlotUnavailable):
        _hold(seeded, slot.slot_id, "emily-1")
    booked = _book(seeded, slot.slot_id, _robert(seeded), "robert-1")
    assert booked.slot_id == slot.slot_id
    assert seeded.rows("SELECT count(*) FROM slot_holds") == [(0,)]  # the booking took it


def test_holding_again_with_the_same_key_extends_it(seeded: Env) -> None:
    slot = _free(seeded, dt.date(2026, 3, 5))[0]
    _hold(seeded, slot.slot_id, "k", minutes=1)
    _hold(seeded, slot.slot_id, "k", minutes=10)
    [(expires,)] = seeded.rows("SELECT expires_utc FROM slot_holds")
    assert str(expires).startswith("2026-03-02T12:10")  # 06:10 Chicago in UTC


def test_a_released_or_expired_hold_frees_the_slot(seeded: Env) -> None:
    day = dt.date(2026, 3, 5)
    first, second = _free(seeded, day)[:2]
    _hold(seeded, first.slot_id, "k1")
    asyncio.run(
        seeded.ehr.release(clinic_id=DEMO_CLINIC_ID, slot_id=first.slot_id, hold_key="someone-else")
    )
    assert first not in _free(seeded, day)  # only its own key releases a hold
    asyncio.run(seeded.ehr.release(clinic_id=DEMO_CLINIC_ID, slot_id=first.slot_id, hold_key="k1"))
    assert first in _free(seeded, day)
    _hold(seeded, second.slot_id, "k2", minutes=-1)  # already expired
    assert second in _free(seeded, day)
    emily = _patient_id(seeded, "Emily", "Davis", dt.date(1985, 6, 10))
    assert _book(seeded, second.slot_id, emily, "emily-2").slot_id == second.slot_id


def test_a_booked_or_unknown_slot_cannot_be_held(seeded: Env) -> None:
    slot = _free(seeded, dt.date(2026, 3, 5))[0]
    _book(seeded, slot.slot_id, _robert(seeded), "robert-1")
    before = seeded.dump()
    with pytest.raises(SlotUnavailable):
        _hold(seeded, slot.slot_id, "k")
    with pytest.raises(SlotUnavailable):
        _hold(seeded, "slot_missing", "k")
    assert seeded.dump() == before


def test_a_past_slot_cannot_be_held(env: Env) -> None:
    clinic = _small_clinic(env)
    past = _slot("slot_past", "dr-a", NOW - dt.timedelta(days=1))
    asyncio.run(env.ehr.add_slots(clinic.clinic_id, [past]))
    with pytest.raises(TimeNotBookable):
        _hold(env, past.slot_id, "k", clinic_id=clinic.clinic_id)
    assert env.rows("SELECT count(*) FROM slot_holds") == [(0,)]
