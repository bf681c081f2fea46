"""The embedded :class:`~reddytalk.ports.Ehr`: a clinic schedule in the store's SQLite file.

Patients, slots and appointments live in tables of the same file as the
:class:`~reddytalk.providers.store.sqlite.SqliteStore`. Times are stored in UTC
and returned as aware datetimes in the clinic's time zone, which is kept next to
each slot and appointment.

Booking is one transaction: the slot goes from ``free`` to ``busy`` with a
conditional ``UPDATE`` and the appointment is inserted with a unique
``idempotency_key``, so two callers racing for one slot get one appointment
between them, and a retried request gets the appointment it already made.

Every slot and appointment row carries its clinic's id, and each operation names its
clinic: the id is part of the lookup's ``WHERE``, so another clinic's slot or
appointment is exactly as absent as an unknown one.

Patients' PHI is sealed and found by a blind index (``embedded_patients.py``); the
file keeps no plaintext PHI.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import uuid
from collections.abc import Callable, Collection
from zoneinfo import ZoneInfo

from reddytalk.errors import SchedulingError, SlotUnavailable, TimeNotBookable
from reddytalk.phi.cipher import PhiCipher
from reddytalk.providers.ehr.embedded_patients import SealedPatients
from reddytalk.providers.store.sqlite_db import (
    SqliteDb,
    clinic_time_zone,
    from_utc_iso,
    to_utc_iso,
)
from reddytalk.scheduling.model import Appointment, Patient, Slot

__all__ = ["EmbeddedEhr", "new_id"]

_NO_SLOT = "I couldn't find that time in the schedule."


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def new_id(prefix: str) -> str:
    """A fresh id such as ``appt_3f2a…``: ``prefix``, an underscore, 32 hex digits."""
    return f"{prefix}_{uuid.uuid4().hex}"


class EmbeddedEhr:
    """The schedule and patients of the embedded profile.

    Args:
        db: The SQLite file, shared with the store (clinics must be saved there first).
        cipher: Seals patients' PHI and computes the identity's blind index.
        now: The clock deciding what is in the past; tests pass a fixed one.
    """

    def __init__(
        self, *, db: SqliteDb, cipher: PhiCipher, now: Callable[[], dt.datetime] = _utc_now
    ) -> None:
        self._db = db
        self._patients = SealedPatients(db=db, cipher=cipher)
        self._now = now

    def __repr__(self) -> str:
        return "EmbeddedEhr()"

    async def find_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        """The clinic's patient with this name (any case) and exact birth date, if any.

        Two records with one identity are a registration mistake; the earliest
        registered is returned.
        """
        return await self._patients.find(
            clinic_id=clinic_id, given_name=given_name, family_name=family_name,
            birth_date=birth_date,
        )  # fmt: skip

    async def get_patient(self, *, clinic_id: str, patient_id: str) -> Patient | None:
        """The clinic's patient with this id, or None (unknown, or another clinic's)."""
        return await self._patients.get(clinic_id=clinic_id, patient_id=patient_id)

    async def create_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        """Register a patient: the one with this identity if there is one, else a new one.

        Find and insert run in one transaction, so two overlapping registrations of
        one person create one patient.
        """
        return await self.add_patient(
            clinic_id=clinic_id, given_name=given_name, family_name=family_name,
            birth_date=birth_date,
        )  # fmt: skip

    async def add_patient(
        self,
        *,
        clinic_id: str,
        given_name: str,
        family_name: str,
        birth_date: dt.date,
        phone: str = "",
    ) -> Patient:
        """The patient with this identity, registered first if missing (used by the seed)."""
        patient = Patient(new_id("pat"), given_name.strip(), family_name.strip(), birth_date, phone)
        return await self._patients.add(clinic_id, patient)

    async def add_slots(
        self, clinic_id: str, slots: list[Slot], *, busy_slot_ids: Collection[str] = ()
    ) -> None:
        """Add slots to a saved clinic's schedule, in one transaction.

        A slot whose id, or whose provider and start, is already in the schedule
        is skipped and keeps its state, so adding the same slots again changes
        nothing.

        Args:
            clinic_id: The clinic, already saved in the store.
            slots: The slots; times must be aware.
            busy_slot_ids: Slots to add as already taken (by visits outside ReddyTalk).

        Raises:
            ValueError: The clinic is unknown, or a slot time is naive.
        """
        busy = frozenset(busy_slot_ids)
        rows = [
            (
                s.slot_id,
                clinic_id,
                s.provider_id,
                to_utc_iso(s.start),
                to_utc_iso(s.end),
                "busy" if s.slot_id in busy else "free",
            )
            for s in slots
        ]

        def work(conn: sqlite3.Connection) -> None:
            tz = clinic_time_zone(conn, clinic_id)
            conn.executemany(
                "INSERT OR IGNORE INTO slots (slot_id, clinic_id, provider_id, start_utc,"
                " end_utc, status, time_zone) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(*row, tz.key) for row in rows],
            )

        await self._db.run(work)

    async def find_free_slots(
        self, *, clinic_id: str, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        """Free slots starting in ``[start, end)``, earliest first, ties by provider id.

        Slots that already started are left out: they could not be booked.

        Raises:
            ValueError: ``start`` or ``end`` is naive.
        """
        low = to_utc_iso(start)
        high = to_utc_iso(end)
        sql = (
            "SELECT * FROM slots WHERE clinic_id = ? AND status = 'free'"
            " AND start_utc >= ? AND start_utc > ? AND start_utc < ?"
            " AND slot_id NOT IN (SELECT slot_id FROM slot_holds WHERE expires_utc > ?)"
        )
        now = to_utc_iso(self._now())  # a slot starting now can no longer be booked
        params: tuple[str, ...] = (clinic_id, low, now, high, now)
        if provider_id is not None:
            sql += " AND provider_id = ?"
            params += (provider_id,)
        sql += " ORDER BY start_utc, provider_id"

        def work(conn: sqlite3.Connection) -> list[Slot]:
            return [_slot_from_row(row) for row in conn.execute(sql, params)]

        return await self._db.run(work, write=False)

    async def book(
        self,
        *,
        clinic_id: str,
        slot_id: str,
        patient_id: str,
        appointment_type: str,
        idempotency_key: str,
    ) -> Appointment:
        """Book a free slot of the clinic; the same ``idempotency_key`` returns the same
        appointment (if the clinic made it).

        Raises:
            SlotUnavailable: The slot is taken, unknown or another clinic's (a retry of
                another clinic's booking of it too).
            TimeNotBookable: The slot already started.
            SchedulingError: The patient is unknown in the clinic.
            ValueError: ``idempotency_key`` was used before for another slot or patient.
        """
        now = to_utc_iso(self._now())

        def work(conn: sqlite3.Connection) -> Appointment:
            done = conn.execute(
                "SELECT * FROM appointments WHERE idempotency_key = ?", (idempotency_key,)
            ).fetchone()
            if done is not None:
                if (done["slot_id"], done["patient_id"]) != (slot_id, patient_id):
                    raise ValueError("idempotency key reused for a different booking")
                if done["clinic_id"] != clinic_id:  # the slot is another clinic's
                    raise SlotUnavailable(_NO_SLOT)
                return _appointment_from_row(done)
            slot = _clinic_slot(conn, clinic_id, slot_id)
            if slot is None:
                raise SlotUnavailable(_NO_SLOT)
            if slot["start_utc"] <= now:
                raise TimeNotBookable("That time has already passed.")
            patient = conn.execute(
                "SELECT 1 FROM patients WHERE patient_id = ? AND clinic_id = ?",
                (patient_id, clinic_id),
            ).fetchone()
            if patient is None:
                raise SchedulingError("I couldn't find your patient record.")
            if _held_by_other(conn, slot_id, idempotency_key, now):
                raise SlotUnavailable("That time was just taken.")
            taken = conn.execute(
                "UPDATE slots SET status = 'busy' WHERE slot_id = ? AND status = 'free'",
                (slot_id,),
            )
            if taken.rowcount != 1:
                raise SlotUnavailable("That time was just taken.")
            conn.execute("DELETE FROM slot_holds WHERE slot_id = ?", (slot_id,))
            appointment_id = new_id("appt")
            conn.execute(
                "INSERT INTO appointments (appointment_id, clinic_id, patient_id, provider_id,"
                " appointment_type, slot_id, start_utc, time_zone, status, idempotency_key)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'booked', ?)",
                (
                    appointment_id,
                    clinic_id,
                    patient_id,
                    slot["provider_id"],
                    appointment_type,
                    slot_id,
                    slot["start_utc"],
                    slot["time_zone"],
                    idempotency_key,
                ),
            )
            return _get_appointment(conn, appointment_id)

        return await self._db.run(work)

    async def hold(
        self, *, clinic_id: str, slot_id: str, hold_key: str, until: dt.datetime
    ) -> None:
        """Keep a free slot of the clinic for ``hold_key`` until ``until`` (again: extend it).

        Raises:
            SlotUnavailable: The slot is unknown, another clinic's, booked, or held for
                another key.
            TimeNotBookable: The slot already started.
            ValueError: ``until`` is naive.
        """
        now = to_utc_iso(self._now())
        expires = to_utc_iso(until)

        def work(conn: sqlite3.Connection) -> None:
            slot = _clinic_slot(conn, clinic_id, slot_id)
            if slot is None:
                raise SlotUnavailable(_NO_SLOT)
            if slot["start_utc"] <= now:
                raise TimeNotBookable("That time has already passed.")
            if slot["status"] != "free" or _held_by_other(conn, slot_id, hold_key, now):
                raise SlotUnavailable("That time was just taken.")
            conn.execute(
                "INSERT INTO slot_holds (slot_id, hold_key, expires_utc) VALUES (?, ?, ?)"
                " ON CONFLICT (slot_id) DO UPDATE SET hold_key = excluded.hold_key,"
                " expires_utc = excluded.expires_utc",
                (slot_id, hold_key, expires),
            )

        await self._db.run(work)

    async def release(self, *, clinic_id: str, slot_id: str, hold_key: str) -> None:
        """Drop ``hold_key``'s hold on the clinic's slot; nothing if it holds none, or if
        the slot is another clinic's."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "DELETE FROM slot_holds WHERE slot_id = ? AND hold_key = ? AND EXISTS"
                " (SELECT 1 FROM slots WHERE slot_id = ? AND clinic_id = ?)",
                (slot_id, hold_key, slot_id, clinic_id),
            )

        await self._db.run(work)

    async def cancel(self, *, clinic_id: str, appointment_id: str) -> Appointment:
        """Cancel the clinic's appointment and free its slot; cancelling again changes
        nothing.

        Raises:
            SlotUnavailable: The clinic has no appointment with this id (another clinic's
                is left as it is).
            TimeNotBookable: The appointment already started.
        """
        now = to_utc_iso(self._now())

        def work(conn: sqlite3.Connection) -> Appointment:
            row = conn.execute(
                "SELECT * FROM appointments WHERE appointment_id = ? AND clinic_id = ?",
                (appointment_id, clinic_id),
            ).fetchone()
            if row is None:
                raise SlotUnavailable("I couldn't find that appointment.")
            if row["status"] == "cancelled":
                return _appointment_from_row(row)
            if row["start_utc"] <= now:
                raise TimeNotBookable("That appointment has already passed.")
            conn.execute(
                "UPDATE appointments SET status = 'cancelled' WHERE appointment_id = ?",
                (appointment_id,),
            )
            conn.execute("UPDATE slots SET status = 'free' WHERE slot_id = ?", (row["slot_id"],))
            return _get_appointment(conn, appointment_id)

        return await self._db.run(work)

    async def get_appointment(self, appointment_id: str) -> Appointment | None:
        """An appointment in any status, or None."""

        def work(conn: sqlite3.Connection) -> Appointment | None:
            row = conn.execute(
                "SELECT * FROM appointments WHERE appointment_id = ?", (appointment_id,)
            ).fetchone()
            return None if row is None else _appointment_from_row(row)

        return await self._db.run(work, write=False)

    async def upcoming_appointments(
        self, *, clinic_id: str, patient_id: str, after: dt.datetime
    ) -> list[Appointment]:
        """A patient's booked appointments at the clinic starting after ``after``,
        earliest first.

        Raises:
            ValueError: ``after`` is naive.
        """
        params = (patient_id, clinic_id, to_utc_iso(after))

        def work(conn: sqlite3.Connection) -> list[Appointment]:
            rows = conn.execute(
                "SELECT * FROM appointments WHERE patient_id = ? AND clinic_id = ?"
                " AND status = 'booked' AND start_utc > ? ORDER BY start_utc, provider_id",
                params,
            )
            return [_appointment_from_row(row) for row in rows]

        return await self._db.run(work, write=False)


def _clinic_slot(conn: sqlite3.Connection, clinic_id: str, slot_id: str) -> sqlite3.Row | None:
    """The slot, if it is the clinic's (another clinic's is as unknown as a missing one)."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM slots WHERE slot_id = ? AND clinic_id = ?", (slot_id, clinic_id)
    ).fetchone()
    return row


def _held_by_other(conn: sqlite3.Connection, slot_id: str, key: str, now_utc: str) -> bool:
    """Whether an unexpired hold of another booking is on the slot."""
    row = conn.execute(
        "SELECT 1 FROM slot_holds WHERE slot_id = ? AND hold_key != ? AND expires_utc > ?",
        (slot_id, key, now_utc),
    ).fetchone()
    return row is not None


def _slot_from_row(row: sqlite3.Row) -> Slot:
    tz = ZoneInfo(row["time_zone"])
    return Slot(
        slot_id=row["slot_id"],
        provider_id=row["provider_id"],
        start=from_utc_iso(row["start_utc"], tz),
        end=from_utc_iso(row["end_utc"], tz),
    )


def _appointment_from_row(row: sqlite3.Row) -> Appointment:
    return Appointment(
        appointment_id=row["appointment_id"],
        patient_id=row["patient_id"],
        provider_id=row["provider_id"],
        appointment_type=row["appointment_type"],
        slot_id=row["slot_id"],
        start=from_utc_iso(row["start_utc"], ZoneInfo(row["time_zone"])),
        status=row["status"],
    )


def _get_appointment(conn: sqlite3.Connection, appointment_id: str) -> Appointment:
    row = conn.execute(
        "SELECT * FROM appointments WHERE appointment_id = ?", (appointment_id,)
    ).fetchone()
    return _appointment_from_row(row)
