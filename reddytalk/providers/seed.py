"""The demo clinic of the embedded profile, with two weeks of schedule and a few patients.

Everything here is deterministic: slot ids are derived from the clinic, provider
and start time, which slots are already taken comes from a hash of the same,
and the one seeded appointment is booked with a fixed idempotency key. Seeding
the same file twice with the same ``today`` therefore changes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid

from reddytalk.errors import SlotUnavailable
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.providers.store.sqlite_db import to_utc_iso
from reddytalk.scheduling.model import (
    AppointmentType,
    Clinic,
    OpeningHours,
    Patient,
    Provider,
    Slot,
)

__all__ = [
    "DEMO_CLINIC_ID",
    "DEMO_PHONE_NUMBER",
    "DEMO_STAFF_NUMBER",
    "SEED_DAYS",
    "demo_clinic",
    "clinic_slots",
    "seed_demo",
]

DEMO_CLINIC_ID = "reddy-family-clinic"
DEMO_PHONE_NUMBER = "+15550100200"
DEMO_STAFF_NUMBER = "+15550100299"
SEED_DAYS = 14

# Namespace of the seed's deterministic slot ids (uuid5 over clinic, provider, start).
_SLOT_NAMESPACE = uuid.UUID("6f1c7f0e-0d3a-4c53-9a53-2f5d0c8d1a77")
_BUSY_PER_256 = 64  # about a quarter of the slots are already taken

_PATIENTS = (
    ("Robert", "Taylor", dt.date(1980, 3, 15)),
    ("Linda", "Wilson", dt.date(1975, 7, 4)),
    ("Emily", "Davis", dt.date(1985, 6, 10)),
)


def demo_clinic() -> Clinic:
    """Reddy Family Clinic: three doctors, four kinds of visits, open six days a week."""
    weekday_hours = tuple(OpeningHours(day, dt.time(8, 0), dt.time(17, 0)) for day in range(5))
    return Clinic(
        clinic_id=DEMO_CLINIC_ID,
        name="Reddy Family Clinic",
        phone_number=DEMO_PHONE_NUMBER,
        address="100 Main Street, Springfield",
        time_zone="America/Chicago",
        hours=(*weekday_hours, OpeningHours(5, dt.time(9, 0), dt.time(12, 0))),
        providers=(
            Provider("dr-patel", "Doctor Patel", "Patel"),
            Provider("dr-chen", "Doctor Chen", "Chen"),
            Provider("dr-rivera", "Doctor Rivera", "Rivera"),
        ),
        appointment_types=(
            AppointmentType(
                "checkup", "check-up", 30, ("checkup", "check up", "physical", "annual exam")
            ),
            AppointmentType(
                "follow-up", "follow-up", 20, ("follow up", "followup", "follow-up visit")
            ),
            AppointmentType("sick-visit", "sick visit", 20, ("sick visit", "i am sick", "sick")),
            AppointmentType(
                "new-patient", "new patient visit", 30, ("new patient visit", "new patient")
            ),
        ),
        slot_minutes=30,
        staff_phone_number=DEMO_STAFF_NUMBER,
    )


def _slot_id(clinic_id: str, provider_id: str, start: dt.datetime) -> str:
    name = f"{clinic_id}/{provider_id}/{to_utc_iso(start)}"
    return f"slot_{uuid.uuid5(_SLOT_NAMESPACE, name).hex}"


def _is_taken(slot: Slot) -> bool:
    digest = hashlib.sha256(f"{slot.provider_id}|{to_utc_iso(slot.start)}".encode()).digest()
    return digest[0] < _BUSY_PER_256


def clinic_slots(clinic: Clinic, *, today: dt.date, days: int = SEED_DAYS) -> list[Slot]:
    """Every provider's slots during opening hours for ``days`` days from ``today``.

    Times are local to the clinic, so a slot opens at 08:00 on both sides of a
    daylight saving change. Ordered by start, then by the clinic's provider order.
    """
    tz = clinic.tz
    step = dt.timedelta(minutes=clinic.slot_minutes)
    slots: list[Slot] = []
    for offset in range(days):
        day = today + dt.timedelta(days=offset)
        hours = clinic.hours_on(day)
        if hours is None:
            continue
        start = dt.datetime.combine(day, hours.opens, tzinfo=tz)
        closes = dt.datetime.combine(day, hours.closes, tzinfo=tz)
        while start + step <= closes:
            for provider in clinic.providers:
                slot_id = _slot_id(clinic.clinic_id, provider.provider_id, start)
                slots.append(Slot(slot_id, provider.provider_id, start, start + step))
            start += step
    return slots


def _linda_visit_start(clinic: Clinic, today: dt.date) -> dt.datetime:
    # The first weekday at least two days out, so "cancel my appointment" has a target.
    day = today + dt.timedelta(days=2)
    while day.weekday() >= 5:
        day += dt.timedelta(days=1)
    return dt.datetime.combine(day, dt.time(10, 0), tzinfo=clinic.tz)


async def seed_demo(store: SqliteStore, ehr: EmbeddedEhr, *, today: dt.date) -> None:
    """Seed the demo clinic (unless saved before), its number, 14 days of slots, three
    patients, one visit.

    Idempotent: a second call with the same ``today`` on the same file changes
    nothing. Slots already present (booked or freed since) keep their state.

    Args:
        store: Where the clinic and its phone number are saved.
        ehr: Where slots, patients and the appointment go (same SQLite file).
        today: The first seeded day, in the clinic's time zone.
    """
    # Saved once: an admin's later change (scripts/clinic update) survives each start.
    # A removed demo clinic comes back, as the demo needs it.
    clinic = await store.get_clinic(DEMO_CLINIC_ID)
    if clinic is None:
        clinic = demo_clinic()
        await store.save_clinic(clinic)
    slots = clinic_slots(clinic, today=today)
    linda_start = _linda_visit_start(clinic, today)
    linda_slot = _slot_id(clinic.clinic_id, "dr-chen", linda_start)
    busy = {s.slot_id for s in slots if _is_taken(s) and s.slot_id != linda_slot}
    await ehr.add_slots(clinic.clinic_id, slots, busy_slot_ids=busy)

    patients: dict[str, Patient] = {}
    for given, family, born in _PATIENTS:
        patients[given] = await ehr.add_patient(
            clinic_id=clinic.clinic_id, given_name=given, family_name=family, birth_date=born
        )
    linda = patients["Linda"]
    start_of_today = dt.datetime.combine(today, dt.time(0, 0), tzinfo=clinic.tz)
    if await ehr.upcoming_appointments(
        clinic_id=clinic.clinic_id, patient_id=linda.patient_id, after=start_of_today
    ):
        return  # seeded before (perhaps from an earlier day): she already has her visit
    try:
        await ehr.book(
            clinic_id=clinic.clinic_id,
            slot_id=linda_slot,
            patient_id=linda.patient_id,
            appointment_type="checkup",
            # Keyed by patient and day: a re-run replays the same booking, even after a demo
            # cancelled it. By id, not name: the key is stored in plaintext.
            idempotency_key=f"seed:{clinic.clinic_id}:{linda.patient_id}:{linda_start.date()}",
        )
    except SlotUnavailable:
        pass  # a demo call took that time since the last seeding; leave the schedule as is
