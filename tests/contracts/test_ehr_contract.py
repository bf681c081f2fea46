"""The EHR contract: what every :class:`~reddytalk.ports.Ehr` promises.

One suite, run on the embedded EHR (SQLite) and on ``FhirEhr`` against a real FHIR
server (Medplum's router on loopback), both seeded with the same demo clinic, with the
same assertions. Where "another process" matters, a second EHR is opened over the same
records; where time matters, an EHR is opened with another clock. The tests at the end
are the FHIR adapter's own (its seeder, its errors), apart from the contract.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import replace

import pytest
from aiohttp import web
from ehr_fixtures import (  # the fixtures are found by pytest in this module's namespace
    CHICAGO,
    NOW,
    TODAY,
    ContractEhr,
    EhrBackend,
    StaticToken,
    ehr_backend_fixture,  # noqa: F401
    fhir_server_fixture,  # noqa: F401
)

from reddytalk.errors import ProviderError, SchedulingError, SlotUnavailable, TimeNotBookable
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_seed import seed_fhir_demo
from reddytalk.providers.seed import DEMO_CLINIC_ID, _is_taken, clinic_slots, demo_clinic
from reddytalk.scheduling.model import Appointment, Patient, Slot
from tests.servers.fhir.launch import FhirServer

Who = tuple[str, str, dt.date]
LINDA: Who = ("Linda", "Wilson", dt.date(1975, 7, 4))
ROBERT: Who = ("Robert", "Taylor", dt.date(1980, 3, 15))
EMILY: Who = ("Emily", "Davis", dt.date(1985, 6, 10))
DAY = dt.date(2026, 3, 5)  # a Thursday of the seeded fortnight
LINDA_VISIT = dt.datetime(2026, 3, 4, 10, 0, tzinfo=CHICAGO)  # Dr. Chen, seeded
TAKEN = "That time was just taken."


def _at(hour: int, minute: int = 0, day: dt.date = DAY) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour, minute), tzinfo=CHICAGO)


def _expected_free(
    start: dt.datetime, end: dt.datetime, provider_id: str | None = None
) -> list[tuple[str, dt.datetime, dt.datetime]]:
    """What the seed left free in ``[start, end)``, from the demo data itself."""
    slots = clinic_slots(demo_clinic(), today=TODAY)
    free = [
        (s.provider_id, s.start, s.end)
        for s in slots
        if start <= s.start < end
        and not _is_taken(s)
        and (s.provider_id, s.start) != ("dr-chen", LINDA_VISIT)
        and provider_id in (None, s.provider_id)
    ]
    return sorted(free, key=lambda f: (f[1], f[0]))


def _shape(slots: list[Slot]) -> list[tuple[str, dt.datetime, dt.datetime]]:
    return [(s.provider_id, s.start, s.end) for s in slots]


async def _find(ehr: ContractEhr, who: Who, clinic_id: str = DEMO_CLINIC_ID) -> Patient | None:
    given, family, born = who
    return await ehr.find_patient(
        clinic_id=clinic_id, given_name=given, family_name=family, birth_date=born
    )


async def _patient_id(ehr: ContractEhr, who: Who) -> str:
    found = await _find(ehr, who)
    assert found is not None
    return found.patient_id


async def _create(ehr: ContractEhr, who: Who) -> Patient:
    given, family, born = who
    return await ehr.create_patient(
        clinic_id=DEMO_CLINIC_ID, given_name=given, family_name=family, birth_date=born
    )


async def _free(
    ehr: ContractEhr,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    provider_id: str | None = None,
    clinic_id: str = DEMO_CLINIC_ID,
) -> list[Slot]:
    start = start or _at(0)
    return await ehr.find_free_slots(
        clinic_id=clinic_id,
        start=start,
        end=end or start + dt.timedelta(days=1),
        provider_id=provider_id,
    )


async def _book(
    ehr: ContractEhr,
    slot_id: str,
    patient_id: str,
    key: str,
    kind: str = "checkup",
    clinic_id: str = DEMO_CLINIC_ID,
) -> Appointment:
    return await ehr.book(
        clinic_id=clinic_id, slot_id=slot_id, patient_id=patient_id, appointment_type=kind,
        idempotency_key=key,
    )  # fmt: skip


async def _hold(
    ehr: ContractEhr,
    slot_id: str,
    key: str,
    until: dt.datetime,
    clinic_id: str = DEMO_CLINIC_ID,
) -> None:
    await ehr.hold(clinic_id=clinic_id, slot_id=slot_id, hold_key=key, until=until)


async def _release(
    ehr: ContractEhr, slot_id: str, key: str, clinic_id: str = DEMO_CLINIC_ID
) -> None:
    await ehr.release(clinic_id=clinic_id, slot_id=slot_id, hold_key=key)


async def _cancel(
    ehr: ContractEhr, appointment_id: str, clinic_id: str = DEMO_CLINIC_ID
) -> Appointment:
    return await ehr.cancel(clinic_id=clinic_id, appointment_id=appointment_id)


async def _upcoming(
    ehr: ContractEhr, patient_id: str, after: dt.datetime, clinic_id: str = DEMO_CLINIC_ID
) -> list[Appointment]:
    return await ehr.upcoming_appointments(clinic_id=clinic_id, patient_id=patient_id, after=after)


# -- patients ----------------------------------------------------------------------------------


def test_find_patient_matches_names_in_any_case_and_spacing_and_the_exact_birth_date(
    ehr_backend: EhrBackend,
) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        found = await _find(ehr, ("lINDA", "  WILSON ", dt.date(1975, 7, 4)))
        assert found is not None and found == await _find(ehr, LINDA)
        assert (found.given_name, found.family_name, found.birth_date) == LINDA
        assert await _find(ehr, ("Linda", "Wilson", dt.date(1975, 7, 5))) is None
        assert await _find(ehr, ("Linda", "Taylor", dt.date(1975, 7, 4))) is None
        assert await _find(ehr, ("Lind", "Wilson", dt.date(1975, 7, 4))) is None  # not a prefix
        assert await _find(ehr, ("Nobody", "Known", dt.date(2000, 1, 1))) is None
        assert await _find(ehr, LINDA, clinic_id="other-clinic") is None

    ehr_backend.run(scenario)


def test_get_patient_reads_the_clinics_patient_by_id(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        linda = await _find(ehr, LINDA)
        assert linda is not None
        got = await ehr.get_patient(clinic_id=DEMO_CLINIC_ID, patient_id=linda.patient_id)
        assert got == linda
        for unknown in ("no-such-patient", "", "../Organization", "a/b"):
            assert await ehr.get_patient(clinic_id=DEMO_CLINIC_ID, patient_id=unknown) is None
        assert (
            await ehr.get_patient(clinic_id="no-such-clinic", patient_id=linda.patient_id) is None
        )

    ehr_backend.run(scenario)


def test_create_patient_returns_the_one_with_this_identity_else_registers_one(
    ehr_backend: EhrBackend,
) -> None:
    ana: Who = ("Ana", "Lopez", dt.date(2001, 1, 2))

    async def scenario(ehr: ContractEhr) -> None:
        linda = await _create(ehr, ("LINDA", "wilson", dt.date(1975, 7, 4)))
        assert linda == await _find(ehr, LINDA)
        created = await _create(ehr, ana)
        assert (created.given_name, created.family_name, created.birth_date) == ana
        assert await _find(ehr, ("ana", "LOPEZ", dt.date(2001, 1, 2))) == created
        assert (await _create(ehr, (" Ana", "lopez", dt.date(2001, 1, 2)))).patient_id == (
            created.patient_id
        )
        assert await _find(ehr, ana) == created

    ehr_backend.run(scenario)


def test_concurrent_registrations_of_one_person_make_one_patient(ehr_backend: EhrBackend) -> None:
    ana: Who = ("Ana", "Lopez", dt.date(2001, 1, 2))

    async def scenario(ehr: ContractEhr) -> None:
        async with ehr_backend.open(NOW) as other:  # as another process would
            created = await asyncio.gather(
                *(_create(e, ana) for e in (ehr, other, ehr, other, ehr, other))
            )
        assert len({p.patient_id for p in created}) == 1
        found = await _find(ehr, ana)
        assert found is not None and found.patient_id == created[0].patient_id

    ehr_backend.run(scenario)


def test_patients_are_their_clinics_own(ehr_backend: EhrBackend) -> None:
    other = replace(demo_clinic(), clinic_id="other-clinic", phone_number="+15550100300")
    ehr_backend.add_clinic(other)  # same provider ids, other people

    async def scenario(ehr: ContractEhr) -> None:
        given, family, born = LINDA
        theirs = await ehr.create_patient(
            clinic_id="other-clinic", given_name=given, family_name=family, birth_date=born
        )
        ours = await _find(ehr, LINDA)
        assert ours is not None and theirs.patient_id != ours.patient_id
        assert await _find(ehr, LINDA, clinic_id="other-clinic") == theirs
        assert await _find(ehr, ROBERT, clinic_id="other-clinic") is None
        for clinic_id, patient in ((DEMO_CLINIC_ID, theirs), ("other-clinic", ours)):
            assert await ehr.get_patient(clinic_id=clinic_id, patient_id=patient.patient_id) is None
        got = await ehr.get_patient(clinic_id="other-clinic", patient_id=theirs.patient_id)
        assert got == theirs
        slot = (await _free(ehr))[0]
        with pytest.raises(SchedulingError, match="patient record"):
            await _book(ehr, slot.slot_id, theirs.patient_id, "theirs-1")
        assert await _free(ehr, clinic_id="other-clinic") == []

    ehr_backend.run(scenario)


# -- free slots --------------------------------------------------------------------------------


def test_free_slots_are_the_seeded_free_ones_earliest_first_ties_by_provider(
    ehr_backend: EhrBackend,
) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        fortnight = await _free(ehr, _at(0, day=TODAY), _at(0, day=TODAY + dt.timedelta(days=14)))
        assert _shape(fortnight) == _expected_free(
            _at(0, day=TODAY), _at(0, day=TODAY + dt.timedelta(days=14))
        )
        assert len(fortnight) > 300
        assert all(s.start.tzinfo == CHICAGO and s.end.tzinfo == CHICAGO for s in fortnight)
        assert len({s.slot_id for s in fortnight}) == len(fortnight)
        day = await _free(ehr)
        assert _shape(day) == _expected_free(_at(0), _at(0, day=DAY + dt.timedelta(days=1)))
        assert LINDA_VISIT not in {
            s.start for s in await _free(ehr, _at(0, day=LINDA_VISIT.date()), provider_id="dr-chen")
        }

    ehr_backend.run(scenario)


def test_free_slots_start_in_the_range_and_of_the_provider_asked(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        assert _shape(await _free(ehr, _at(9), _at(10))) == _expected_free(_at(9), _at(10))
        assert _shape(await _free(ehr, _at(9, 1), _at(10))) == _expected_free(_at(9, 1), _at(10))
        rivera = await _free(ehr, provider_id="dr-rivera")
        assert rivera and {s.provider_id for s in rivera} == {"dr-rivera"}
        assert _shape(rivera) == _expected_free(
            _at(0), _at(0, day=DAY + dt.timedelta(days=1)), "dr-rivera"
        )
        assert await _free(ehr, provider_id="dr-nobody") == []
        assert await _free(ehr, clinic_id="other-clinic") == []
        assert await _free(ehr, _at(10), _at(10)) == []
        assert await _free(ehr, _at(0, day=TODAY + dt.timedelta(days=30))) == []

    ehr_backend.run(scenario)


def test_free_slots_leave_out_slots_that_started(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        found = await _free(ehr)
        assert found and min(s.start for s in found) > _at(10)
        assert _shape(found) == [f for f in _expected_free(_at(0), _at(23, 59)) if f[1] > _at(10)]

    ehr_backend.run(scenario, now=_at(10))  # a slot starting now can no longer be booked


def test_naive_times_are_refused(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        naive = dt.datetime(2026, 3, 5, 9, 0)
        with pytest.raises(ValueError):
            await _free(ehr, naive, naive + dt.timedelta(hours=1))

    ehr_backend.run(scenario)


# -- holds -------------------------------------------------------------------------------------


def test_a_held_slot_is_hidden_and_only_its_key_can_book_it(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        await _hold(ehr, slot.slot_id, "robert-1", NOW + dt.timedelta(minutes=5))
        assert slot not in await _free(ehr)
        emily = await _patient_id(ehr, EMILY)
        with pytest.raises(SlotUnavailable, match=TAKEN):
            await _book(ehr, slot.slot_id, emily, "emily-1")
        with pytest.raises(SlotUnavailable, match=TAKEN):
            await _hold(ehr, slot.slot_id, "emily-1", NOW + dt.timedelta(minutes=5))
        booked = await _book(ehr, slot.slot_id, await _patient_id(ehr, ROBERT), "robert-1")
        assert booked.slot_id == slot.slot_id and booked.status == "booked"
        assert slot not in await _free(ehr)
        with pytest.raises(SlotUnavailable):  # booked: not even its own key holds it again
            await _hold(ehr, slot.slot_id, "robert-1", NOW + dt.timedelta(minutes=5))

    ehr_backend.run(scenario)


def test_holding_again_with_the_same_key_extends_the_hold(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        await _hold(ehr, slot.slot_id, "k", NOW + dt.timedelta(minutes=1))
        await _hold(ehr, slot.slot_id, "k", NOW + dt.timedelta(minutes=10))
        async with ehr_backend.open(NOW + dt.timedelta(minutes=5)) as later:
            assert slot not in await _free(later)
            with pytest.raises(SlotUnavailable):
                await _hold(later, slot.slot_id, "other", NOW + dt.timedelta(minutes=15))
        async with ehr_backend.open(NOW + dt.timedelta(minutes=11)) as much_later:
            assert slot in await _free(much_later)

    ehr_backend.run(scenario)


def test_an_expired_hold_frees_the_slot(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        first, second = (await _free(ehr))[:2]
        await _hold(ehr, first.slot_id, "k1", NOW - dt.timedelta(minutes=1))  # expired already
        assert first in await _free(ehr)
        await _hold(ehr, second.slot_id, "k2", NOW + dt.timedelta(minutes=5))
        emily = await _patient_id(ehr, EMILY)
        async with ehr_backend.open(NOW + dt.timedelta(minutes=6)) as later:
            assert second in await _free(later)
            await _hold(later, first.slot_id, "emily-1", NOW + dt.timedelta(minutes=10))
            assert (await _book(later, second.slot_id, emily, "emily-2")).slot_id == second.slot_id

    ehr_backend.run(scenario)


def test_release_drops_only_its_own_hold(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        await _hold(ehr, slot.slot_id, "k1", NOW + dt.timedelta(minutes=5))
        await _release(ehr, slot.slot_id, "someone-else")
        assert slot not in await _free(ehr)
        await _release(ehr, slot.slot_id, "k1")
        assert slot in await _free(ehr)
        await _release(ehr, slot.slot_id, "k1")  # again: nothing
        await _release(ehr, "missing-slot", "k1")
        assert slot in await _free(ehr)

    ehr_backend.run(scenario)


def test_a_booked_unknown_or_started_slot_cannot_be_held(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        first, second = (await _free(ehr))[:2]
        await _book(ehr, first.slot_id, await _patient_id(ehr, ROBERT), "robert-1")
        until = NOW + dt.timedelta(minutes=5)
        with pytest.raises(SlotUnavailable):
            await _hold(ehr, first.slot_id, "k", until)
        with pytest.raises(SlotUnavailable):
            await _hold(ehr, "missing-slot", "k", until)
        async with ehr_backend.open(second.start) as later:
            with pytest.raises(TimeNotBookable):
                await _hold(later, second.slot_id, "k", second.start + dt.timedelta(minutes=5))
        assert second in await _free(ehr)

    ehr_backend.run(scenario)


# -- booking -----------------------------------------------------------------------------------


def test_booking_confirms_the_slot_and_takes_it(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr, provider_id="dr-rivera"))[0]
        robert = await _patient_id(ehr, ROBERT)
        booked = await _book(ehr, slot.slot_id, robert, "key-1", kind="sick-visit")
        assert (booked.slot_id, booked.patient_id, booked.provider_id) == (
            slot.slot_id, robert, "dr-rivera",
        )  # fmt: skip
        assert (booked.appointment_type, booked.status, booked.start) == (
            "sick-visit", "booked", slot.start,
        )  # fmt: skip
        assert booked.start.tzinfo == CHICAGO
        assert slot not in await _free(ehr)
        assert await ehr.get_appointment(booked.appointment_id) == booked
        assert await ehr.get_appointment("missing-appointment") is None

    ehr_backend.run(scenario)


def test_the_same_idempotency_key_books_once(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot, other_slot = (await _free(ehr))[:2]
        robert = await _patient_id(ehr, ROBERT)
        async with ehr_backend.open(NOW) as other:
            first, second = await asyncio.gather(
                _book(ehr, slot.slot_id, robert, "retry-me"),
                _book(other, slot.slot_id, robert, "retry-me"),
            )
        assert first == second == await _book(ehr, slot.slot_id, robert, "retry-me")
        assert await _upcoming(ehr, robert, NOW) == [first]
        with pytest.raises(ValueError, match="idempotency key"):
            await _book(ehr, other_slot.slot_id, robert, "retry-me")
        assert other_slot in await _free(ehr)

    ehr_backend.run(scenario)


def test_a_taken_slot_cannot_be_booked(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        await _book(ehr, slot.slot_id, await _patient_id(ehr, ROBERT), "robert-1")
        emily = await _patient_id(ehr, EMILY)
        with pytest.raises(SlotUnavailable, match=TAKEN):
            await _book(ehr, slot.slot_id, emily, "emily-1")
        (visit,) = await _upcoming(ehr, await _patient_id(ehr, LINDA), NOW)
        with pytest.raises(SlotUnavailable, match=TAKEN):
            await _book(ehr, visit.slot_id, emily, "emily-2")
        assert await _upcoming(ehr, emily, NOW) == []

    ehr_backend.run(scenario)


def test_two_concurrent_bookings_of_one_slot_exactly_one_succeeds(
    ehr_backend: EhrBackend,
) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        robert, emily = await _patient_id(ehr, ROBERT), await _patient_id(ehr, EMILY)
        async with ehr_backend.open(NOW) as other:  # another process, racing
            results = await asyncio.gather(
                _book(ehr, slot.slot_id, robert, "robert-1"),
                _book(other, slot.slot_id, emily, "emily-1", kind="sick-visit"),
                return_exceptions=True,
            )
        booked = [r for r in results if isinstance(r, Appointment)]
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(booked) == 1 and len(refused) == 1, results
        assert isinstance(refused[0], SlotUnavailable) and str(refused[0]) == TAKEN
        winner = booked[0].patient_id
        loser = emily if winner == robert else robert
        assert await _upcoming(ehr, winner, NOW) == booked
        assert await _upcoming(ehr, loser, NOW) == []

    ehr_backend.run(scenario)


def test_many_concurrent_bookings_of_one_slot_book_it_once(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        robert = await _patient_id(ehr, ROBERT)
        results = await asyncio.gather(
            *(_book(ehr, slot.slot_id, robert, f"key-{n}") for n in range(6)),
            return_exceptions=True,
        )
        assert sum(isinstance(r, Appointment) for r in results) == 1, results
        assert all(isinstance(r, Appointment | SlotUnavailable) for r in results), results
        assert len(await _upcoming(ehr, robert, NOW)) == 1

    ehr_backend.run(scenario)


def test_booking_a_started_or_unknown_slot_or_for_an_unknown_patient_is_refused(
    ehr_backend: EhrBackend,
) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        robert = await _patient_id(ehr, ROBERT)
        async with ehr_backend.open(slot.start) as later:
            with pytest.raises(TimeNotBookable, match="already passed"):
                await _book(later, slot.slot_id, robert, "key-late")
        with pytest.raises(SlotUnavailable, match="couldn't find that time"):
            await _book(ehr, "missing-slot", robert, "key-1")
        with pytest.raises(SchedulingError, match="patient record"):
            await _book(ehr, slot.slot_id, "missing-patient", "key-2")
        assert slot in await _free(ehr)
        assert await _upcoming(ehr, robert, NOW) == []

    ehr_backend.run(scenario)


# -- cancelling and upcoming -------------------------------------------------------------------


def test_cancelling_frees_the_slot_and_again_changes_nothing(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        linda = await _patient_id(ehr, LINDA)
        (visit,) = await _upcoming(ehr, linda, NOW)
        assert (visit.provider_id, visit.appointment_type, visit.start) == (
            "dr-chen", "checkup", LINDA_VISIT,
        )  # fmt: skip
        cancelled = await _cancel(ehr, visit.appointment_id)
        assert cancelled.status == "cancelled"
        assert cancelled == replace(visit, status="cancelled")
        assert await _cancel(ehr, visit.appointment_id) == cancelled
        chen = await _free(ehr, _at(0, day=LINDA_VISIT.date()), provider_id="dr-chen")
        assert visit.slot_id in {s.slot_id for s in chen}
        assert await _upcoming(ehr, linda, NOW) == []
        assert await ehr.get_appointment(visit.appointment_id) == cancelled
        robert = await _patient_id(ehr, ROBERT)  # the time is free for someone else now
        assert (await _book(ehr, visit.slot_id, robert, "robert-1")).start == LINDA_VISIT
        assert await _cancel(ehr, visit.appointment_id) == cancelled
        assert visit.slot_id not in {
            s.slot_id for s in await _free(ehr, _at(0, day=LINDA_VISIT.date()))
        }

    ehr_backend.run(scenario)


def test_a_started_or_unknown_appointment_cannot_be_cancelled(ehr_backend: EhrBackend) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        (visit,) = await _upcoming(ehr, await _patient_id(ehr, LINDA), NOW)
        async with ehr_backend.open(LINDA_VISIT) as later:
            with pytest.raises(TimeNotBookable, match="already passed"):
                await _cancel(later, visit.appointment_id)
        with pytest.raises(SlotUnavailable, match="couldn't find that appointment"):
            await _cancel(ehr, "missing-appointment")
        assert await ehr.get_appointment(visit.appointment_id) == visit

    ehr_backend.run(scenario)


def test_upcoming_appointments_are_booked_ones_after_a_time_earliest_first(
    ehr_backend: EhrBackend,
) -> None:
    async def scenario(ehr: ContractEhr) -> None:
        robert = await _patient_id(ehr, ROBERT)
        later = (await _free(ehr, _at(0, day=dt.date(2026, 3, 10))))[0]
        sooner = (await _free(ehr, provider_id="dr-patel"))[0]
        dropped = (await _free(ehr, _at(0, day=dt.date(2026, 3, 6))))[0]
        b_later = await _book(ehr, later.slot_id, robert, "k-later")
        b_sooner = await _book(ehr, sooner.slot_id, robert, "k-sooner")
        b_dropped = await _book(ehr, dropped.slot_id, robert, "k-dropped")
        await _cancel(ehr, b_dropped.appointment_id)

        async def upcoming(after: dt.datetime) -> list[Appointment]:
            return await _upcoming(ehr, robert, after)

        assert await upcoming(NOW) == [b_sooner, b_later]
        assert await upcoming(sooner.start) == [b_later]
        assert await upcoming(later.start) == []
        assert await _upcoming(ehr, "missing-patient", NOW) == []

    ehr_backend.run(scenario)


# -- another clinic's ---------------------------------------------------------------------------

OTHER = "other-clinic"
NO_SLOT = "couldn't find that time"
NO_APPOINTMENT = "couldn't find that appointment"


def _add_other_clinic(ehr_backend: EhrBackend) -> None:
    """Register a second clinic: its own providers (same ids as ours), no slots."""
    ehr_backend.add_clinic(replace(demo_clinic(), clinic_id=OTHER, phone_number="+15550100300"))


def test_another_clinics_slot_cannot_be_held_or_booked_as_if_unknown(
    ehr_backend: EhrBackend,
) -> None:
    _add_other_clinic(ehr_backend)

    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        given, family, born = ROBERT
        theirs = await ehr.create_patient(
            clinic_id=OTHER, given_name=given, family_name=family, birth_date=born
        )
        until = NOW + dt.timedelta(minutes=5)
        for clinic_id in (OTHER, "no-such-clinic"):
            with pytest.raises(SlotUnavailable, match=NO_SLOT):
                await _hold(ehr, slot.slot_id, "theirs-1", until, clinic_id=clinic_id)
            with pytest.raises(SlotUnavailable, match=NO_SLOT):
                await _book(ehr, slot.slot_id, theirs.patient_id, "theirs-1", clinic_id=clinic_id)
        async with ehr_backend.open(NOW) as cold:  # another process: nothing cached yet
            with pytest.raises(SlotUnavailable, match=NO_SLOT):
                await _hold(cold, slot.slot_id, "theirs-2", until, clinic_id=OTHER)
            with pytest.raises(SlotUnavailable, match=NO_SLOT):
                await _book(cold, slot.slot_id, theirs.patient_id, "theirs-2", clinic_id=OTHER)
        assert slot in await _free(ehr)  # nothing was held or taken
        assert await _upcoming(ehr, theirs.patient_id, NOW, clinic_id=OTHER) == []
        robert = await _patient_id(ehr, ROBERT)
        booked = await _book(ehr, slot.slot_id, robert, "ours-1")
        with pytest.raises(SlotUnavailable, match=NO_SLOT):  # not even as a retry of ours
            await _book(ehr, slot.slot_id, robert, "ours-1", clinic_id=OTHER)
        assert await _book(ehr, slot.slot_id, robert, "ours-1") == booked

    ehr_backend.run(scenario)


def test_another_clinic_cannot_release_a_hold_on_our_slot(ehr_backend: EhrBackend) -> None:
    _add_other_clinic(ehr_backend)

    async def scenario(ehr: ContractEhr) -> None:
        slot = (await _free(ehr))[0]
        async with ehr_backend.open(NOW) as cold:  # another process: nothing cached yet
            await _hold(cold, slot.slot_id, "k1", NOW + dt.timedelta(minutes=5))
        for clinic_id in (OTHER, "no-such-clinic"):
            async with ehr_backend.open(NOW) as cold:
                await _release(cold, slot.slot_id, "k1", clinic_id=clinic_id)  # the same key
            await _release(ehr, slot.slot_id, "k1", clinic_id=clinic_id)
            assert slot not in await _free(ehr)
        await _release(ehr, slot.slot_id, "k1")
        assert slot in await _free(ehr)

    ehr_backend.run(scenario)


def test_another_clinics_appointment_cannot_be_cancelled_as_if_unknown(
    ehr_backend: EhrBackend,
) -> None:
    _add_other_clinic(ehr_backend)

    async def scenario(ehr: ContractEhr) -> None:
        (visit,) = await _upcoming(ehr, await _patient_id(ehr, LINDA), NOW)
        for clinic_id in (OTHER, "no-such-clinic"):
            with pytest.raises(SlotUnavailable, match=NO_APPOINTMENT):
                await _cancel(ehr, visit.appointment_id, clinic_id=clinic_id)
        assert await ehr.get_appointment(visit.appointment_id) == visit
        assert visit.slot_id not in {
            s.slot_id for s in await _free(ehr, _at(0, day=LINDA_VISIT.date()))
        }
        assert (await _cancel(ehr, visit.appointment_id)).status == "cancelled"
        with pytest.raises(SlotUnavailable, match=NO_APPOINTMENT):  # cancelled: still not theirs
            await _cancel(ehr, visit.appointment_id, clinic_id=OTHER)

    ehr_backend.run(scenario)


def test_upcoming_appointments_are_the_clinics_only(ehr_backend: EhrBackend) -> None:
    _add_other_clinic(ehr_backend)

    async def scenario(ehr: ContractEhr) -> None:
        linda = await _patient_id(ehr, LINDA)
        robert = await _patient_id(ehr, ROBERT)
        booked = await _book(ehr, (await _free(ehr))[0].slot_id, robert, "robert-1")
        assert len(await _upcoming(ehr, linda, NOW)) == 1
        assert await _upcoming(ehr, robert, NOW) == [booked]
        for clinic_id in (OTHER, "no-such-clinic"):
            assert await _upcoming(ehr, linda, NOW, clinic_id=clinic_id) == []
            assert await _upcoming(ehr, robert, NOW, clinic_id=clinic_id) == []

    ehr_backend.run(scenario)


# -- the FHIR adapter's own --------------------------------------------------------------------


def _counts(server: FhirServer) -> dict[str, int]:
    async def count() -> dict[str, int]:
        async with FhirEhr(
            base_url=server.base_url, token_provider=StaticToken(server.token)
        ) as ehr:
            kinds = ("Organization", "Practitioner", "PractitionerRole", "Schedule", "Slot",
                     "Patient", "Appointment")  # fmt: skip
            return {k: len((await ehr.client.search(k, {})).get("entry", [])) for k in kinds}

    return asyncio.run(count())


def test_fhir_seeding_again_changes_nothing(fhir_server: FhirServer) -> None:
    fhir_server.reset()

    async def seed() -> None:
        async with FhirEhr(
            base_url=fhir_server.base_url, token_provider=StaticToken(fhir_server.token),
            now=lambda: NOW,
        ) as ehr:  # fmt: skip
            await seed_fhir_demo(ehr, today=TODAY)

    asyncio.run(seed())
    before = _counts(fhir_server)
    asyncio.run(seed())

    assert _counts(fhir_server) == before
    assert before == {
        "Organization": 1, "Practitioner": 3, "PractitionerRole": 3, "Schedule": 3,
        "Slot": len(clinic_slots(demo_clinic(), today=TODAY)), "Patient": 3, "Appointment": 1,
    }  # fmt: skip


def test_fhir_refused_credentials_are_a_provider_error_without_phi(
    fhir_server: FhirServer,
) -> None:
    async def scenario() -> None:
        async with FhirEhr(
            base_url=fhir_server.base_url, token_provider=StaticToken("not-the-token")
        ) as ehr:
            with pytest.raises(ProviderError) as refused:
                await _find(ehr, LINDA)
        assert refused.value.retryable is False
        assert "401" in str(refused.value) and "Wilson" not in str(refused.value)

    asyncio.run(scenario())


def test_fhir_an_unreachable_server_is_a_retryable_provider_error() -> None:
    async def scenario() -> None:
        async with FhirEhr(base_url="http://127.0.0.1:9/fhir/R4", timeout_s=2) as ehr:
            with pytest.raises(ProviderError) as failed:
                await ehr.create_patient(
                    clinic_id=DEMO_CLINIC_ID, given_name="Linda", family_name="Wilson",
                    birth_date=dt.date(1975, 7, 4),
                )  # fmt: skip
        assert failed.value.retryable is True
        assert "Linda" not in str(failed.value) and "1975" not in str(failed.value)

    asyncio.run(scenario())


def test_fhir_logs_no_phi(fhir_server: FhirServer, caplog: pytest.LogCaptureFixture) -> None:
    fhir_server.reset()
    caplog.set_level(logging.DEBUG)

    async def scenario() -> None:
        async with FhirEhr(
            base_url=fhir_server.base_url, token_provider=StaticToken(fhir_server.token),
            now=lambda: NOW,
        ) as ehr:  # fmt: skip
            await seed_fhir_demo(ehr, today=TODAY)
            patient = await _create(ehr, ("Zelda", "Quixote", dt.date(1999, 9, 9)))
            assert await _find(ehr, ("zelda", "quixote", dt.date(1999, 9, 9))) == patient
            slot = (await _free(ehr))[0]
            await _book(ehr, slot.slot_id, patient.patient_id, "zelda-1")

    asyncio.run(scenario())
    logged = "\n".join(f"{r.getMessage()} {r.args}" for r in caplog.records)
    assert "Zelda" not in logged and "Quixote" not in logged and "1999-09-09" not in logged


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (500, ProviderError, True),
        (503, ProviderError, True),
        (429, ProviderError, True),
        (400, ProviderError, False),
        (403, ProviderError, False),
        (404, ProviderError, False),
        (409, SlotUnavailable, None),
        (412, SlotUnavailable, None),
        (None, ProviderError, True),  # no answer in time
    ],
)
def test_fhir_http_failures_map_to_our_errors_without_phi(
    status: int | None, expected: type[Exception], retryable: bool | None
) -> None:
    phi = "Linda Wilson 1975-07-04"

    async def answer(request: web.Request) -> web.Response:
        if status is None:
            await asyncio.sleep(1)
        issue = {"severity": "error", "code": "processing", "diagnostics": phi}
        return web.json_response(
            {"resourceType": "OperationOutcome", "issue": [issue]}, status=status or 200
        )

    async def scenario() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", answer)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        try:
            async with FhirEhr(base_url=f"http://{host}:{port}/fhir", timeout_s=0.2) as ehr:
                with pytest.raises(expected) as failed:
                    await ehr.client.search("Patient", {"birthdate": "1975-07-04"})
                patient = {"resourceType": "Patient", "id": "p1", "birthDate": "1975-07-04"}
                with pytest.raises(expected):
                    await ehr.client.update_resource(patient, version_id="1")
        finally:
            await runner.cleanup()
        if retryable is not None:
            assert isinstance(failed.value, ProviderError)
            assert failed.value.retryable is retryable
        assert "Linda" not in str(failed.value) and "1975" not in str(failed.value)
        assert "Patient" in str(failed.value) or expected is SlotUnavailable

    asyncio.run(scenario())
