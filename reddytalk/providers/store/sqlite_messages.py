"""The SQLite store's messages for staff: kept once, listed, marked open or done.

A message's text and caller name are PHI, sealed by :class:`~reddytalk.phi.PhiCipher`
before they reach the file, each bound to the message id. Its status is not PHI: the
admin console sets it with one ``UPDATE`` of that column, opening nothing.
:class:`~reddytalk.providers.store.sqlite.SqliteStore` delegates to
:class:`SealedMessages`; the table is in :mod:`reddytalk.providers.store.sqlite_db`.
"""

from __future__ import annotations

import sqlite3

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import Message
from reddytalk.providers.store.checks import check_message_status
from reddytalk.providers.store.sqlite_db import SqliteDb, from_utc_iso, to_utc_iso

__all__ = ["CALLER_NAME_FIELD", "MESSAGE_TEXT_FIELD", "SealedMessages"]

MESSAGE_TEXT_FIELD = "message.text"
CALLER_NAME_FIELD = "message.caller_name"


class SealedMessages:
    """Messages for staff in one SQLite file, PHI sealed.

    Args:
        db: The SQLite file.
        cipher: Seals PHI before it is written and opens it after it is read.
    """

    def __init__(self, *, db: SqliteDb, cipher: PhiCipher) -> None:
        self._db = db
        self._cipher = cipher

    def __repr__(self) -> str:
        return "SealedMessages()"

    async def save_message(self, message: Message) -> bool:
        """Keep a message; False (and nothing changed) if its id is kept already."""
        taken_at = to_utc_iso(message.taken_at)
        clinic_id, message_id = message.clinic_id, message.message_id
        seal = self._cipher.seal
        values = (
            message_id,
            message.call_id,
            clinic_id,
            taken_at,
            await seal(clinic_id, MESSAGE_TEXT_FIELD, message.text, record_id=message_id),
            await seal(clinic_id, CALLER_NAME_FIELD, message.caller_name, record_id=message_id),
            message.patient_id,
            message.status,
        )

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO messages (message_id, call_id, clinic_id, taken_at, text,"
                " caller_name, patient_id, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cursor.rowcount == 1

        return await self._db.run(work)

    async def list_messages(self, clinic_id: str) -> list[Message]:
        """The clinic's messages, oldest first (ties by message id)."""

        def work(conn: sqlite3.Connection) -> list[sqlite3.Row]:
            return conn.execute(
                "SELECT * FROM messages WHERE clinic_id = ? ORDER BY taken_at, message_id",
                (clinic_id,),
            ).fetchall()

        open_ = self._cipher.open
        messages = []
        for row in await self._db.run(work, write=False):
            message_id = row["message_id"]
            messages.append(
                Message(
                    message_id=message_id,
                    call_id=row["call_id"],
                    clinic_id=clinic_id,
                    taken_at=from_utc_iso(row["taken_at"]),
                    text=await open_(
                        clinic_id, MESSAGE_TEXT_FIELD, row["text"], record_id=message_id
                    ),
                    caller_name=await open_(
                        clinic_id, CALLER_NAME_FIELD, row["caller_name"], record_id=message_id
                    ),
                    patient_id=row["patient_id"],
                    status=row["status"],
                )
            )
        return messages

    async def set_message_status(self, clinic_id: str, message_id: str, *, status: str) -> bool:
        """Set the status of the clinic's message; False if the clinic has no such message.

        Raises:
            ValueError: ``status`` is neither ``open`` nor ``done``.
        """
        check_message_status(status)

        def work(conn: sqlite3.Connection) -> bool:
            # The clinic is in the WHERE clause: another clinic's message id matches no row.
            # SQLite counts every row the WHERE matched, changed or not, so setting the
            # status a message has already is True too.
            cursor = conn.execute(
                "UPDATE messages SET status = ? WHERE clinic_id = ? AND message_id = ?",
                (status, clinic_id, message_id),
            )
            return cursor.rowcount == 1

        return await self._db.run(work)
