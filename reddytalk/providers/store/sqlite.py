"""The embedded :class:`~reddytalk.ports.CallStore`: ReddyTalk's own records in SQLite.

Clinics are one JSON document each, found by id or by any phone number mapped to
them; calls are one row each with the transcript as JSON; the audit trail is an
append-only table (triggers in the schema refuse updates and deletes).

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
import re
import sqlite3
from typing import Any

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import AuditEvent, CallRecord, Message, OutboxMessage
from reddytalk.providers.store.sqlite_db import SqliteDb, from_utc_iso, to_utc_iso
from reddytalk.providers.store.sqlite_texts import (
    CALL_NUMBER_FIELD,
    OUTBOX_NUMBER_FIELD,
    OUTBOX_TEXT_FIELD,
    SealedTexts,
)
from reddytalk.scheduling.model import AppointmentType, Clinic, OpeningHours, Provider

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
MESSAGE_TEXT_FIELD = "message.text"
CALLER_NAME_FIELD = "message.caller_name"
SEALED_FIELDS = (
    TRANSCRIPT_FIELD, TOOL_CALLS_FIELD, MESSAGE_TEXT_FIELD, CALLER_NAME_FIELD,
    CALL_NUMBER_FIELD, OUTBOX_NUMBER_FIELD, OUTBOX_TEXT_FIELD,
)  # fmt: skip
"""The cipher's field names of what this store seals (each bound to its record: the call,
the message, ``<call id>/<party>`` for a call's number, the outbox message)."""

# ITU-T E.164: a plus, then up to 15 digits, the first not zero.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


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

    def __repr__(self) -> str:
        return "SqliteStore()"

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic and map its phone number to it.

        Numbers mapped to the clinic before stay mapped (a clinic may have several).

        Raises:
            ValueError: ``clinic.phone_number`` is not E.164, or belongs to another
                clinic (a number rings one clinic only; nothing is changed).
        """
        if not _E164.fullmatch(clinic.phone_number):
            raise ValueError("the clinic's phone number must be E.164, like +15550100200")
        document = json.dumps(clinic_to_document(clinic), sort_keys=True)

        def work(conn: sqlite3.Connection) -> None:
            owner = conn.execute(
                "SELECT clinic_id FROM phone_numbers WHERE phone_number = ?",
                (clinic.phone_number,),
            ).fetchone()
            if owner is not None and owner["clinic_id"] != clinic.clinic_id:
                raise ValueError("the phone number belongs to another clinic")
            conn.execute(
                "INSERT INTO clinics (clinic_id, document) VALUES (?, ?)"
                " ON CONFLICT (clinic_id) DO UPDATE SET document = excluded.document",
                (clinic.clinic_id, document),
            )
            conn.execute(
                "INSERT OR IGNORE INTO phone_numbers (phone_number, clinic_id) VALUES (?, ?)",
                (clinic.phone_number, clinic.clinic_id),
            )

        await self._db.run(work)

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns ``phone_number`` (E.164), or None."""

        def work(conn: sqlite3.Connection) -> Clinic | None:
            row = conn.execute(
                "SELECT c.document FROM phone_numbers AS p"
                " JOIN clinics AS c ON c.clinic_id = p.clinic_id WHERE p.phone_number = ?",
                (phone_number,),
            ).fetchone()
            return None if row is None else clinic_from_document(json.loads(row["document"]))

        return await self._db.run(work, write=False)

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id, or None."""

        def work(conn: sqlite3.Connection) -> Clinic | None:
            row = conn.execute(
                "SELECT document FROM clinics WHERE clinic_id = ?", (clinic_id,)
            ).fetchone()
            return None if row is None else clinic_from_document(json.loads(row["document"]))

        return await self._db.run(work, write=False)

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

    async def get_call(self, call_id: str) -> CallRecord | None:
        """A stored call, times in UTC, or None."""

        def work(conn: sqlite3.Connection) -> sqlite3.Row | None:
            row: sqlite3.Row | None
            row = conn.execute("SELECT * FROM calls WHERE call_id = ?", (call_id,)).fetchone()
            return row

        row = await self._db.run(work, write=False)
        return None if row is None else await self._call_from_row(row)

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
        """The clinic's messages, oldest first."""

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
        if not _E164.fullmatch(number):
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

    async def audit_trail(self, call_id: str) -> list[AuditEvent]:
        """The audit records of one call, in the order they were appended."""

        def work(conn: sqlite3.Connection) -> list[AuditEvent]:
            rows = conn.execute(
                "SELECT * FROM audit WHERE call_id = ? ORDER BY seq", (call_id,)
            ).fetchall()
            return [
                AuditEvent(
                    call_id=row["call_id"],
                    clinic_id=row["clinic_id"],
                    action=row["action"],
                    resource=row["resource"],
                    at=from_utc_iso(row["at"]),
                    details=dict(json.loads(row["details"])),
                )
                for row in rows
            ]

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


def clinic_to_document(clinic: Clinic) -> dict[str, Any]:
    """A clinic as a JSON-ready document (the shape stored per clinic)."""
    return {
        "clinic_id": clinic.clinic_id,
        "name": clinic.name,
        "phone_number": clinic.phone_number,
        "address": clinic.address,
        "time_zone": clinic.time_zone,
        "slot_minutes": clinic.slot_minutes,
        "stream_sample_rate_hz": clinic.stream_sample_rate_hz,
        "staff_phone_number": clinic.staff_phone_number,
        "languages": list(clinic.languages),
        "voice_id": clinic.voice_id,
        "hours": [
            {"weekday": h.weekday, "opens": h.opens.isoformat(), "closes": h.closes.isoformat()}
            for h in clinic.hours
        ],
        "providers": [
            {
                "provider_id": p.provider_id,
                "display_name": p.display_name,
                "family_name": p.family_name,
            }
            for p in clinic.providers
        ],
        "appointment_types": [
            {
                "code": t.code,
                "display_name": t.display_name,
                "duration_min": t.duration_min,
                "spoken_names": list(t.spoken_names),
            }
            for t in clinic.appointment_types
        ],
    }


def clinic_from_document(document: dict[str, Any]) -> Clinic:
    """The clinic a document written by :func:`clinic_to_document` describes."""
    return Clinic(
        clinic_id=document["clinic_id"],
        name=document["name"],
        phone_number=document["phone_number"],
        address=document["address"],
        time_zone=document["time_zone"],
        slot_minutes=int(document["slot_minutes"]),
        stream_sample_rate_hz=int(document.get("stream_sample_rate_hz", 16_000)),
        staff_phone_number=document.get("staff_phone_number"),
        languages=tuple(document.get("languages") or ("en-US",)),
        voice_id=document.get("voice_id"),
        hours=tuple(
            OpeningHours(
                weekday=int(h["weekday"]),
                opens=dt.time.fromisoformat(h["opens"]),
                closes=dt.time.fromisoformat(h["closes"]),
            )
            for h in document["hours"]
        ),
        providers=tuple(
            Provider(
                provider_id=p["provider_id"],
                display_name=p["display_name"],
                family_name=p["family_name"],
            )
            for p in document["providers"]
        ),
        appointment_types=tuple(
            AppointmentType(
                code=t["code"],
                display_name=t["display_name"],
                duration_min=int(t["duration_min"]),
                spoken_names=tuple(t["spoken_names"]),
            )
            for t in document["appointment_types"]
        ),
    )
