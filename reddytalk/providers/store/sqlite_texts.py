"""The SQLite store's records for texting: a call's phone numbers and the outbox.

Both hold PHI, sealed by :class:`~reddytalk.phi.PhiCipher` before it reaches the file:
a call's number bound to ``<call id>/<party>``, an outbox message's number and text
bound to its message id. :class:`~reddytalk.providers.store.sqlite.SqliteStore`
delegates to :class:`SealedTexts`; the tables are in
:mod:`reddytalk.providers.store.sqlite_db`.
"""

from __future__ import annotations

import datetime as dt
import sqlite3

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import OutboxMessage
from reddytalk.providers.store.sqlite_db import SqliteDb, from_utc_iso, to_utc_iso

__all__ = ["CALL_NUMBER_FIELD", "OUTBOX_NUMBER_FIELD", "OUTBOX_TEXT_FIELD", "SealedTexts"]

CALL_NUMBER_FIELD = "call.number"
OUTBOX_NUMBER_FIELD = "outbox.to_number"
OUTBOX_TEXT_FIELD = "outbox.text"


def _record(call_id: str, party: str) -> str:
    return f"{call_id}/{party}"


class SealedTexts:
    """A call's numbers and the outbox in one SQLite file, PHI sealed.

    Args:
        db: The SQLite file.
        cipher: Seals PHI before it is written and opens it after it is read.
    """

    def __init__(self, *, db: SqliteDb, cipher: PhiCipher) -> None:
        self._db = db
        self._cipher = cipher

    def __repr__(self) -> str:
        return "SealedTexts()"

    async def save_call_number(
        self, call_id: str, clinic_id: str, *, party: str, number: str
    ) -> None:
        """Keep ``number`` for the call and party; the same party again replaces it."""
        sealed = await self._cipher.seal(
            clinic_id, CALL_NUMBER_FIELD, number, record_id=_record(call_id, party)
        )
        values = (call_id, party, clinic_id, sealed, to_utc_iso(dt.datetime.now(dt.UTC)))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO call_numbers (call_id, party, clinic_id, number,"
                " saved_at) VALUES (?, ?, ?, ?, ?)",
                values,
            )

        await self._db.run(work)

    async def get_call_number(self, call_id: str, clinic_id: str, *, party: str) -> str | None:
        """The number kept for the call and party at this clinic, or None."""

        def work(conn: sqlite3.Connection) -> str | None:
            row = conn.execute(
                "SELECT number FROM call_numbers WHERE call_id = ? AND party = ? AND clinic_id = ?",
                (call_id, party, clinic_id),
            ).fetchone()
            return None if row is None else str(row["number"])

        sealed = await self._db.run(work, write=False)
        if sealed is None:
            return None
        return await self._cipher.open(
            clinic_id, CALL_NUMBER_FIELD, sealed, record_id=_record(call_id, party)
        )

    async def add_to_outbox(self, message: OutboxMessage) -> bool:
        """Keep a text message; False (and nothing changed) if its id is kept already."""
        clinic_id, message_id = message.clinic_id, message.message_id
        seal = self._cipher.seal
        values = (
            message_id,
            clinic_id,
            message.call_id,
            to_utc_iso(message.created_at),
            await seal(clinic_id, OUTBOX_NUMBER_FIELD, message.to_number, record_id=message_id),
            await seal(clinic_id, OUTBOX_TEXT_FIELD, message.text, record_id=message_id),
            message.status,
        )

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO outbox (message_id, clinic_id, call_id, created_at,"
                " to_number, text, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cursor.rowcount == 1

        return await self._db.run(work)

    async def list_outbox(self, clinic_id: str) -> list[OutboxMessage]:
        """The clinic's outbox, oldest first."""

        def work(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                "SELECT * FROM outbox WHERE clinic_id = ? ORDER BY created_at, message_id",
                (clinic_id,),
            ).fetchall()

        open_ = self._cipher.open
        kept = []
        for row in await self._db.run(work, write=False):
            message_id = row["message_id"]
            to_number = await open_(
                clinic_id, OUTBOX_NUMBER_FIELD, row["to_number"], record_id=message_id
            )
            text = await open_(clinic_id, OUTBOX_TEXT_FIELD, row["text"], record_id=message_id)
            kept.append(
                OutboxMessage(
                    message_id=message_id,
                    clinic_id=clinic_id,
                    call_id=row["call_id"],
                    created_at=from_utc_iso(row["created_at"]),
                    to_number=to_number,
                    text=text,
                    status=row["status"],
                )
            )
        return kept
