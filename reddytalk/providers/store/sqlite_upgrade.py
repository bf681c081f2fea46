"""Seal a schema 1 SQLite file in place: its PHI was written in plaintext.

Schema 1 kept transcripts, tool calls, messages and patients' names, birth dates and
phones as plain text, and found patients by their normalized names. The upgrade:

1. reads every such value (one read transaction),
2. seals each with the clinic's data key, as the current store and EHR do, and computes
   each patient's blind index (outside any transaction: the cipher may call the
   key-encryption key),
3. in one write transaction, checks the file still is schema 1 with the rows read, writes
   the sealed values over the plaintext, swaps the patients' name keys for the blind
   index, re-keys the seed's booking by patient id (it was keyed by name), creates what
   schema 2 adds and marks the file schema 2,
4. rewrites the file (``VACUUM``) and empties the write-ahead log, so no free page still
   holds the plaintext.

Ids, times, schedules and the audit trail are kept as they are.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from dataclasses import dataclass

from reddytalk.errors import ProviderError
from reddytalk.phi.cipher import PhiCipher
from reddytalk.providers.ehr.embedded_patients import SealedPatientRow, SealedPatients
from reddytalk.providers.store.sqlite import (
    CALLER_NAME_FIELD,
    MESSAGE_TEXT_FIELD,
    TOOL_CALLS_FIELD,
    TRANSCRIPT_FIELD,
)
from reddytalk.providers.store.sqlite_db import (
    PLAINTEXT_SCHEMA_VERSION,
    SCHEMA_VERSION,
    SqliteDb,
    create_schema,
)
from reddytalk.scheduling.model import Patient

__all__ = ["seal_plaintext_store"]


@dataclass(frozen=True, slots=True)
class _Plaintext:
    calls: list[sqlite3.Row]
    messages: list[sqlite3.Row]
    patients: list[sqlite3.Row]


def _has_table(conn: sqlite3.Connection, name: str) -> bool:
    found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
    return found.fetchone() is not None


def _read(conn: sqlite3.Connection) -> _Plaintext:
    def rows(sql: str, table: str) -> list[sqlite3.Row]:
        return conn.execute(sql).fetchall() if _has_table(conn, table) else []

    return _Plaintext(
        calls=rows("SELECT call_id, clinic_id, transcript, tool_calls FROM calls", "calls"),
        messages=rows("SELECT message_id, clinic_id, text, caller_name FROM messages", "messages"),
        patients=rows(
            "SELECT patient_id, clinic_id, given_name, family_name, birth_date, phone"
            " FROM patients",
            "patients",
        ),
    )


def _count(conn: sqlite3.Connection, table: str) -> int:
    if not _has_table(conn, table):
        return 0
    return int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])


async def seal_plaintext_store(db: SqliteDb, cipher: PhiCipher) -> bool:
    """Seal the PHI of a schema 1 file opened with ``open_plaintext``, in place.

    Returns:
        Whether this call upgraded the file (False: it was current, or another process
        upgraded it meanwhile).

    Raises:
        ProviderError: The file or the keys failed, or the file changed while the values
            were being sealed (retryable: nothing was written).
    """
    if db.schema_version > PLAINTEXT_SCHEMA_VERSION:
        return False
    plain = await db.run(_read, write=False)
    seal = cipher.seal
    calls = [
        (
            await seal(row["clinic_id"], TRANSCRIPT_FIELD, row["transcript"],
                       record_id=row["call_id"]),
            await seal(row["clinic_id"], TOOL_CALLS_FIELD, row["tool_calls"],
                       record_id=row["call_id"]),
            row["call_id"],
        )
        for row in plain.calls
    ]  # fmt: skip
    messages = [
        (
            await seal(row["clinic_id"], MESSAGE_TEXT_FIELD, row["text"],
                       record_id=row["message_id"]),
            await seal(row["clinic_id"], CALLER_NAME_FIELD, row["caller_name"],
                       record_id=row["message_id"]),
            row["message_id"],
        )
        for row in plain.messages
    ]  # fmt: skip
    sealer = SealedPatients(db=db, cipher=cipher)
    patients: list[SealedPatientRow] = []
    for row in plain.patients:
        patient = Patient(
            patient_id=row["patient_id"],
            given_name=row["given_name"],
            family_name=row["family_name"],
            birth_date=dt.date.fromisoformat(row["birth_date"]),
            phone=row["phone"],
        )
        patients.append(await sealer.seal(row["clinic_id"], patient))

    def work(conn: sqlite3.Connection) -> bool:
        version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        if version > PLAINTEXT_SCHEMA_VERSION:
            return False  # another process upgraded it while we sealed
        counts = [_count(conn, t) for t in ("calls", "messages", "patients")]
        if counts != [len(calls), len(messages), len(patients)]:
            raise ProviderError("the SQLite file changed during its upgrade", retryable=True)
        if calls:
            conn.executemany(
                "UPDATE calls SET transcript = ?, tool_calls = ? WHERE call_id = ?", calls
            )
        if messages:
            conn.executemany(
                "UPDATE messages SET text = ?, caller_name = ? WHERE message_id = ?", messages
            )
        if _has_table(conn, "patients"):
            conn.execute("DROP INDEX IF EXISTS patients_by_identity")
            conn.execute("ALTER TABLE patients ADD COLUMN identity_index TEXT")
            conn.executemany(
                "UPDATE patients SET given_name = ?, family_name = ?, birth_date = ?,"
                " phone = ?, identity_index = ? WHERE patient_id = ?",
                [(*p.values()[2:], p.patient_id) for p in patients],
            )
            conn.execute("ALTER TABLE patients DROP COLUMN given_key")
            conn.execute("ALTER TABLE patients DROP COLUMN family_key")
        if _has_table(conn, "appointments"):
            # Schema 1's seed keyed its booking by the patient's name (seed:<clinic>:linda-
            # wilson:<day>); key it by the patient's id, as the seed does now.
            conn.execute(
                "UPDATE appointments SET idempotency_key = 'seed:' || clinic_id || ':'"
                " || patient_id || ':' || substr(idempotency_key, -10)"
                " WHERE idempotency_key LIKE 'seed:%'"
            )
        create_schema(conn)
        return True

    upgraded = await db.run(work)
    db.schema_version = SCHEMA_VERSION
    if upgraded:
        await asyncio.to_thread(db.compact)
    return upgraded
