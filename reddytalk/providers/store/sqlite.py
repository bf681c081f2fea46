"""The embedded :class:`~reddytalk.ports.CallStore`: ReddyTalk's own records in SQLite.

Clinics are one JSON document each, found by id or by any phone number mapped to
them, with the calls in progress to each (:mod:`~reddytalk.providers.store.sqlite_clinics`);
calls are one row each with the transcript as JSON; the audit trail is an append-only
table (triggers in the schema refuse updates and deletes). Messages for staff are
:mod:`~reddytalk.providers.store.sqlite_messages`'s; a call's numbers and the outbox,
:mod:`~reddytalk.providers.store.sqlite_texts`'s.

PHI is sealed by :class:`~reddytalk.phi.PhiCipher` before it reaches the file and
opened after it is read, each value bound to its clinic, field and record: a call's
transcript and tool calls (arguments and results, as one JSON document: what the
policy records may grow), a message's text and caller name, a call's phone numbers, an
outbox message's number and text. Times, ids, outcomes and turn timings stay readable;
so do the audit trail (ids only) and clinics (not PHI).

Each method runs its SQL in a worker thread through :meth:`SqliteDb.run`.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import AuditEvent, CallListing, CallRecord, Message, OutboxMessage
from reddytalk.providers.store.checks import check_call_listing
from reddytalk.providers.store.clinics import clinic_from_document, clinic_to_document, is_e164
from reddytalk.providers.store.sqlite_clinics import SqliteClinics
from reddytalk.providers.store.sqlite_db import SqliteDb, from_utc_iso, to_utc_iso
from reddytalk.providers.store.sqlite_messages import (
    CALLER_NAME_FIELD,
    MESSAGE_TEXT_FIELD,
    SealedMessages,
)
from reddytalk.providers.store.sqlite_texts import (
    CALL_NUMBER_FIELD,
    OUTBOX_NUMBER_FIELD,
    OUTBOX_TEXT_FIELD,
    SealedTexts,
)
from reddytalk.scheduling.model import Clinic

__all__ = [
    "CALLER_NAME_FIELD",
    "CALL_NUMBER_FIELD",
    "MESSAGE_TEXT_FIELD",
    "OUTBOX_NUMBER_FIELD",
    "OUTBOX_TEXT_FIELD",
    "SEALED_FIELDS",
    "TOOL_CALLS_FIELD",
    "TRANSCRIPT_FIELD",
    "SqliteStore",
    "clinic_from_document",
    "clinic_to_document",
]

TRANSCRIPT_FIELD = "call.transcript"
TOOL_CALLS_FIELD = "call.tool_calls"
SEALED_FIELDS = (
    TRANSCRIPT_FIELD, TOOL_CALLS_FIELD, MESSAGE_TEXT_FIELD, CALLER_NAME_FIELD,
    CALL_NUMBER_FIELD, OUTBOX_NUMBER_FIELD, OUTBOX_TEXT_FIELD,
)  # fmt: skip
"""The cipher's field names of what this store seals (each bound to its record: the call,
the message, ``<call id>/<party>`` for a call's number, the outbox message)."""

# clinic_to_document and clinic_from_document live in ``clinics`` (both stores use them);
# they are named here too, where the document format was first defined. So are the
# sealed field names of ``sqlite_messages`` and ``sqlite_texts``, all in SEALED_FIELDS.


class SqliteStore:
    """ReddyTalk's records in a SQLite file (the embedded profile's store).

    Args:
        db: The SQLite file, shared with the embedded EHR.
        cipher: Seals PHI before it is written and opens it after it is read.
    """

    def __init__(self, *, db: SqliteDb, cipher: PhiCipher) -> None:
        self._db = db
        self._cipher = cipher
        self._texts = SealedTexts(db=db, cipher=cipher)
        self._messages = SealedMessages(db=db, cipher=cipher)
        self._clinics = SqliteClinics(db=db)

    def __repr__(self) -> str:
        return "SqliteStore()"

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic, and map exactly ``clinic.phone_numbers`` to it.

        Numbers mapped to the clinic before and no longer listed are released (another
        clinic may take them then). One transaction: a refused save changes nothing.

        Raises:
            ValueError: A number is not E.164, is listed twice, or belongs to another
                clinic (the error names it; a number rings one clinic only).
            ProviderError: The file failed.
        """
        await self._clinics.save_clinic(clinic)

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns ``phone_number`` (E.164), or None."""
        return await self._clinics.find_clinic_by_number(phone_number)

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id, or None (never saved, or removed)."""
        return await self._clinics.get_clinic(clinic_id)

    async def list_clinics(self) -> list[Clinic]:
        """Every clinic, sorted by clinic id."""
        return await self._clinics.list_clinics()

    async def remove_clinic(self, clinic_id: str) -> bool:
        """Remove a clinic and release its numbers; False if there is no such clinic.

        Its calls' records, messages, audit trail and data keys are kept (medical-record
        retention), and so is its embedded schedule (slots, patients, appointments: the
        clinic's EHR on the embedded profile). One transaction.

        Raises:
            ClinicBusy: Calls to the clinic are in progress (nothing was changed).
            ProviderError: The file failed.
        """
        return await self._clinics.remove_clinic(clinic_id)

    async def call_started(self, call_id: str, clinic_id: str, *, at: dt.datetime) -> None:
        """Count the call as in progress from ``at``, until :meth:`call_ended` or 4 hours.

        Raises:
            ValueError: ``at`` is naive.
        """
        await self._clinics.call_started(call_id, clinic_id, at=at)

    async def call_ended(self, call_id: str) -> None:
        """The call is no longer in progress (nothing if it was not)."""
        await self._clinics.call_ended(call_id)

    async def calls_in_progress(self, clinic_id: str, *, now: dt.datetime) -> int:
        """The clinic's calls started and not ended, that started at most 4 hours before
        ``now`` (older rows, a crashed worker's, are deleted on the way).

        Raises:
            ValueError: ``now`` is naive.
        """
        return await self._clinics.calls_in_progress(clinic_id, now=now)

    async def save_call(self, record: CallRecord, *, replace: bool = True) -> bool:
        """Store a finished call; whether it was stored.

        Saving the same ``call_id`` again replaces it, unless ``replace`` is False:
        then a stored record stays as it is (and False is returned).

        Raises:
            ValueError: A time is naive, or the record holds values JSON cannot carry.
            ProviderError: The file or the cipher's keys failed.
        """
        started_at, ended_at = to_utc_iso(record.started_at), to_utc_iso(record.ended_at)
        transcript = json.dumps([list(turn) for turn in record.transcript])
        tool_calls = json.dumps(list(record.tool_calls))
        turn_timings = json.dumps(list(record.turn_timings))
        seal = self._cipher.seal
        values = (
            record.call_id,
            record.clinic_id,
            started_at,
            ended_at,
            record.outcome,
            await seal(record.clinic_id, TRANSCRIPT_FIELD, transcript, record_id=record.call_id),
            await seal(record.clinic_id, TOOL_CALLS_FIELD, tool_calls, record_id=record.call_id),
            turn_timings,
        )

        verb = "INSERT OR REPLACE" if replace else "INSERT OR IGNORE"

        def work(conn: sqlite3.Connection) -> bool:
            # A retried finalization writes the same record again: replace, never duplicate.
            cursor = conn.execute(
                f"{verb} INTO calls (call_id, clinic_id, started_at, ended_at,"
                " outcome, transcript, tool_calls, turn_timings) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
            return cursor.rowcount == 1

        return await self._db.run(work)

    async def get_call(self, call_id: str, *, clinic_id: str | None = None) -> CallRecord | None:
        """A stored call, times in UTC, or None; with ``clinic_id`` only that clinic's
        (checked in the query, before anything sealed is opened)."""

        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None
            row = conn.execute(
                "SELECT * FROM calls WHERE call_id = ? AND (? IS NULL OR clinic_id = ?)",
                (call_id, clinic_id, clinic_id),
            ).fetchone()
            return row

        row = await self._db.run(work, write=False)
        return None if row is None else await self._call_from_row(row)

    async def list_calls(
        self, clinic_id: str, *, limit: int = 50, before: dt.datetime | None = None
    ) -> list[CallListing]:
        """The clinic's calls, newest first (ties by call id), without their PHI.

        The sealed columns are not even selected. The ``calls_by_clinic`` index serves
        the filter and the order: a backward scan that stops after ``limit`` rows.

        Raises:
            ValueError: ``limit`` is not 1 to 200, or ``before`` is naive.
        """
        before_iso = check_call_listing(limit, before)
        sql = (
            "SELECT call_id, clinic_id, started_at, ended_at, outcome, turn_timings FROM calls"
            " WHERE clinic_id = ?"
        )
        params: tuple[str | int, ...] = (clinic_id,)
        if before_iso is not None:
            sql += " AND started_at < ?"
            params += (before_iso,)
        sql += " ORDER BY started_at DESC, call_id DESC LIMIT ?"
        params += (limit,)

        def work(conn: sqlite3.Connection) -> list[CallListing]:
            return [
                CallListing(
                    call_id=row["call_id"],
                    clinic_id=row["clinic_id"],
                    started_at=from_utc_iso(row["started_at"]),
                    ended_at=from_utc_iso(row["ended_at"]),
                    outcome=row["outcome"],
                    turn_timings=tuple(json.loads(row["turn_timings"])),
                )
                for row in conn.execute(sql, params)
            ]

        return await self._db.run(work, write=False)

    async def record_audit(self, event: AuditEvent) -> None:
        """Append an audit record.

        Raises:
            ValueError: ``event.at`` is naive.
        """
        values = (
            event.call_id,
            event.clinic_id,
            event.action,
            event.resource,
            to_utc_iso(event.at),
            json.dumps(event.details, sort_keys=True),
        )

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT INTO audit (call_id, clinic_id, action, resource, at, details)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                values,
            )

        await self._db.run(work)

    async def save_message(self, message: Message) -> bool:
        """Keep a message for staff; False (and nothing changed) if its id is kept already.

        Raises:
            ValueError: ``message.taken_at`` is naive.
            ProviderError: The file or the cipher's keys failed.
        """
        return await self._messages.save_message(message)

    async def list_messages(self, clinic_id: str) -> list[Message]:
        """The clinic's messages, oldest first."""
        return await self._messages.list_messages(clinic_id)

    async def set_message_status(self, clinic_id: str, message_id: str, *, status: str) -> bool:
        """Mark the clinic's message ``open`` or ``done`` (one ``UPDATE``, nothing opened);
        False if the clinic has no such message.

        Raises:
            ValueError: ``status`` is neither ``open`` nor ``done`` (nothing changed).
            ProviderError: The file failed.
        """
        return await self._messages.set_message_status(clinic_id, message_id, status=status)

    async def claim(self, key: str) -> bool:
        """Claim ``key`` once (the primary key makes it atomic across processes)."""
        at = to_utc_iso(dt.datetime.now(dt.UTC))

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO claims (claim_key, claimed_at) VALUES (?, ?)", (key, at)
            )
            return cursor.rowcount == 1

        return await self._db.run(work)

    async def release(self, key: str) -> None:
        """Give up a claim so a redelivery may try again."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM claims WHERE claim_key = ?", (key,))

        await self._db.run(work)

    async def save_call_number(
        self, call_id: str, clinic_id: str, *, party: str, number: str
    ) -> None:
        """Keep a phone number for the call (sealed); the same party again replaces it.

        Raises:
            ValueError: ``number`` is not E.164 (its value is not named).
            ProviderError: The file or the cipher's keys failed.
        """
        if not is_e164(number):
            raise ValueError("a call's number must be E.164")
        await self._texts.save_call_number(call_id, clinic_id, party=party, number=number)

    async def get_call_number(self, call_id: str, clinic_id: str, *, party: str) -> str | None:
        """The number kept for the call and party at this clinic, or None."""
        return await self._texts.get_call_number(call_id, clinic_id, party=party)

    async def add_to_outbox(self, message: OutboxMessage) -> bool:
        """Keep a text message; False (and nothing changed) if its id is kept already.

        Raises:
            ValueError: ``message.created_at`` is naive.
            ProviderError: The file or the cipher's keys failed.
        """
        return await self._texts.add_to_outbox(message)

    async def list_outbox(self, clinic_id: str) -> list[OutboxMessage]:
        """The clinic's outbox, oldest first."""
        return await self._texts.list_outbox(clinic_id)

    async def appointment_changes(self, clinic_id: str, *, since: dt.datetime) -> list[AuditEvent]:
        """The clinic's audit records of appointment changes since ``since``, newest first
        (by ``seq``: append order, as ``audit_trail``)."""
        since_iso = to_utc_iso(since)

        def work(conn: sqlite3.Connection) -> list[AuditEvent]:
            rows = conn.execute(
                "SELECT * FROM audit WHERE clinic_id = ? AND at >= ?"
                " AND substr(resource, 1, 12) = 'Appointment/' ORDER BY seq DESC",
                (clinic_id, since_iso),
            ).fetchall()
            events = (_audit_event(row) for row in rows)
            return [event for event in events if "change" in event.details]

        return await self._db.run(work, write=False)

    async def audit_trail(self, call_id: str) -> list[AuditEvent]:
        """The audit records of one call, in the order they were appended (``seq``):
        oldest first."""

        def work(conn: sqlite3.Connection) -> list[AuditEvent]:
            rows = conn.execute(
                "SELECT * FROM audit WHERE call_id = ? ORDER BY seq", (call_id,)
            ).fetchall()
            return [_audit_event(row) for row in rows]

        return await self._db.run(work, write=False)

    async def _call_from_row(self, row: sqlite3.Row) -> CallRecord:
        clinic_id, call_id = row["clinic_id"], row["call_id"]
        transcript = await self._cipher.open(
            clinic_id, TRANSCRIPT_FIELD, row["transcript"], record_id=call_id
        )
        tool_calls = await self._cipher.open(
            clinic_id, TOOL_CALLS_FIELD, row["tool_calls"], record_id=call_id
        )
        return CallRecord(
            call_id=call_id,
            clinic_id=clinic_id,
            started_at=from_utc_iso(row["started_at"]),
            ended_at=from_utc_iso(row["ended_at"]),
            outcome=row["outcome"],
            transcript=tuple((str(who), str(text)) for who, text in json.loads(transcript)),
            tool_calls=tuple(json.loads(tool_calls)),
            turn_timings=tuple(json.loads(row["turn_timings"])),
        )


def _audit_event(row: sqlite3.Row) -> AuditEvent:
    return AuditEvent(
        call_id=row["call_id"],
        clinic_id=row["clinic_id"],
        action=row["action"],
        resource=row["resource"],
        at=from_utc_iso(row["at"]),
        details=dict(json.loads(row["details"])),
    )
