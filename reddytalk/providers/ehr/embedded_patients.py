"""The embedded EHR's patients, sealed: no plaintext PHI in the ``patients`` table.

A patient's names, birth date and phone are sealed by :class:`~reddytalk.phi.PhiCipher`,
each bound to the clinic, the field and the patient id. A patient is found by a blind
index: an HMAC, keyed per clinic, over the normalized given name, family name and birth
date (:func:`identity_key`), so a lookup is still an exact match on the normalized
identity, and the identity itself is not stored.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import unicodedata
from dataclasses import dataclass

from reddytalk.phi.cipher import PhiCipher
from reddytalk.providers.store.sqlite_db import SqliteDb
from reddytalk.scheduling.model import Patient

__all__ = ["SEALED_FIELDS", "SealedPatientRow", "SealedPatients", "identity_key"]

_GIVEN = "patient.given_name"
_FAMILY = "patient.family_name"
_BIRTH_DATE = "patient.birth_date"
_PHONE = "patient.phone"
_IDENTITY = "patient.identity"  # the blind index's field
SEALED_FIELDS = (_GIVEN, _FAMILY, _BIRTH_DATE, _PHONE)
"""The cipher's field names of what is sealed (each is also its column, without ``patient.``)."""


def _name_key(name: str) -> str:
    # Case-insensitive in every script (casefold, not lower), blind to spacing and
    # to Unicode composition; accents still count ("García" is not "Garcia").
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def identity_key(given_name: str, family_name: str, birth_date: dt.date) -> str:
    """The normalized identity a patient is found by: what the blind index hashes.

    Names compare case-insensitively in every script, blind to spacing and to Unicode
    composition, accents kept; the birth date must match exactly.
    """
    return json.dumps([_name_key(given_name), _name_key(family_name), birth_date.isoformat()])


@dataclass(frozen=True, slots=True)
class SealedPatientRow:
    """A patient's columns as stored: sealed values and the identity's blind index."""

    patient_id: str
    clinic_id: str
    given_name: str
    family_name: str
    birth_date: str
    phone: str
    identity_index: str

    def values(self) -> tuple[str, ...]:
        """The columns in :data:`INSERT_PATIENT`'s order."""
        return (self.patient_id, self.clinic_id, self.given_name, self.family_name,
                self.birth_date, self.phone, self.identity_index)  # fmt: skip


INSERT_PATIENT = (
    "INSERT INTO patients (patient_id, clinic_id, given_name, family_name, birth_date, phone,"
    " identity_index) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class SealedPatients:
    """Seals patients for the ``patients`` table, finds them, and opens what was found.

    Args:
        db: The SQLite file.
        cipher: Seals the PHI and computes the blind index.
    """

    def __init__(self, *, db: SqliteDb, cipher: PhiCipher) -> None:
        self._db = db
        self._cipher = cipher

    def __repr__(self) -> str:
        return "SealedPatients()"

    async def identity_index(
        self, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> str:
        """The blind index of a patient's identity in this clinic."""
        identity = identity_key(given_name, family_name, birth_date)
        return await self._cipher.blind_index(clinic_id, _IDENTITY, identity)

    async def seal(self, clinic_id: str, patient: Patient) -> SealedPatientRow:
        """``patient`` as the row that stores it (the cipher may call the key-encryption
        key: seal before a transaction, not inside it)."""

        async def seal(field: str, value: str) -> str:
            return await self._cipher.seal(clinic_id, field, value, record_id=patient.patient_id)

        return SealedPatientRow(
            patient_id=patient.patient_id,
            clinic_id=clinic_id,
            given_name=await seal(_GIVEN, patient.given_name),
            family_name=await seal(_FAMILY, patient.family_name),
            birth_date=await seal(_BIRTH_DATE, patient.birth_date.isoformat()),
            phone=await seal(_PHONE, patient.phone),
            identity_index=await self.identity_index(
                clinic_id, patient.given_name, patient.family_name, patient.birth_date
            ),
        )

    async def open(self, row: sqlite3.Row) -> Patient:
        """The patient a ``patients`` row holds, opened."""
        clinic_id, patient_id = row["clinic_id"], row["patient_id"]

        async def open_(field: str) -> str:
            token = row[field.removeprefix("patient.")]
            return await self._cipher.open(clinic_id, field, token, record_id=patient_id)

        return Patient(
            patient_id=patient_id,
            given_name=await open_(_GIVEN),
            family_name=await open_(_FAMILY),
            birth_date=dt.date.fromisoformat(await open_(_BIRTH_DATE)),
            phone=await open_(_PHONE),
        )

    async def get(self, *, clinic_id: str, patient_id: str) -> Patient | None:
        """The clinic's patient with this id, opened, or None."""

        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None = conn.execute(
                "SELECT * FROM patients WHERE patient_id = ? AND clinic_id = ?",
                (patient_id, clinic_id),
            ).fetchone()
            return row

        row = await self._db.run(work, write=False)
        return None if row is None else await self.open(row)

    async def find(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        """The clinic's earliest registered patient with this identity, if any."""
        index = await self.identity_index(clinic_id, given_name, family_name, birth_date)
        row = await self._db.run(lambda conn: find_row(conn, clinic_id, index), write=False)
        return None if row is None else await self.open(row)

    async def add(self, clinic_id: str, patient: Patient) -> Patient:
        """The patient with ``patient``'s identity: found, or ``patient`` inserted now.

        Find and insert run in one transaction, so two overlapping registrations of one
        person create one patient.
        """
        sealed = await self.seal(clinic_id, patient)

        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            found = find_row(conn, clinic_id, sealed.identity_index)
            if found is None:
                conn.execute(INSERT_PATIENT, sealed.values())
            return found

        found = await self._db.run(work)
        return patient if found is None else await self.open(found)


def find_row(conn: sqlite3.Connection, clinic_id: str, identity_index: str) -> sqlite3.Row | None:
    """The earliest registered ``patients`` row with this blind index in the clinic."""
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM patients WHERE clinic_id = ? AND identity_index = ? ORDER BY rowid LIMIT 1",
        (clinic_id, identity_index),
    ).fetchone()
    return row
