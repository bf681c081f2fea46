"""PHI at rest on the embedded profile: the raw SQLite file holds none of it in plaintext.

Each test reads the file behind the store's back, with plain ``sqlite3`` (every row of
every table) and as bytes (the database and its write-ahead log), and looks for the
caller's PHI in any common spelling; the store and EHR APIs must still return it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import sqlite3
from collections.abc import Iterable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from local_caller import load_scenario, place_call
from receptionist_cli import DEMO_SCENARIO, _call_record, _receptionist

from reddytalk.composition import open_embedded_records, rotate_embedded_kek
from reddytalk.ports import AuditEvent, CallRecord, Message, OutboxMessage
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic
from reddytalk.settings import Settings

SEALED = re.compile(r"v1\.[1-9][0-9]*\.[A-Za-z0-9_-]+")


def _date_spellings(day: dt.date) -> set[str]:
    return {
        day.isoformat(),
        day.strftime("%Y%m%d"),
        day.strftime("%m/%d/%Y"),
        f"{day.month}/{day.day}/{day.year}",
        day.strftime("%d.%m.%Y"),
        day.strftime("%B %d"),
        f"{day.strftime('%B')} {day.day}, {day.year}",
    }


def _spellings(words: Iterable[str]) -> set[str]:
    return {form for word in words for form in (word, word.lower(), word.upper())}


def _raw_rows(data_dir: Path) -> list[str]:
    """Every row of every table, as SQL text (what anyone with the file can read)."""
    uri = f"file:{data_dir / 'reddytalk.sqlite3'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return list(conn.iterdump())


def _raw_bytes(data_dir: Path) -> str:
    """The file and its write-ahead log, byte for byte (pages not checkpointed yet too)."""
    files = [data_dir / "reddytalk.sqlite3", data_dir / "reddytalk.sqlite3-wal"]
    return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())


def _leaks(data_dir: Path, phi: set[str]) -> list[tuple[str, str]]:
    rows = "\n".join(_raw_rows(data_dir))
    raw = _raw_bytes(data_dir)
    return [(where, s) for s in sorted(phi) for where, text in (("rows", rows), ("bytes", raw))
            if s in text]  # fmt: skip


def _column(data_dir: Path, sql: str) -> list[Any]:
    uri = f"file:{data_dir / 'reddytalk.sqlite3'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return [value for row in conn.execute(sql) for value in row]


GRACE_BORN = dt.date(1990, 12, 9)
TRANSCRIPT = (
    ("receptionist", "Reddy Family Clinic, how can I help?"),
    ("caller", "This is Grace Hopper, born December ninth nineteen ninety."),
    ("caller", "Please tell Doctor Chen my insulin dose made me dizzy."),
)
MESSAGE_TEXT = "Call me back at 555 555 0123 about the insulin refill."


def test_stored_phi_is_sealed_in_the_rows_and_opened_by_the_api(tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
    record = CallRecord(
        call_id="call-1", clinic_id=DEMO_CLINIC_ID, started_at=at,
        ended_at=at + dt.timedelta(minutes=3), outcome="message_taken", transcript=TRANSCRIPT,
        tool_calls=({"name": "take_message", "arguments": {"text": "[phi]"},
                     "result": {"message_id": "call-1:message:1"}},),
        turn_timings=({"turn": 1, "caller_speech_end_ms": 1200.5},),
    )  # fmt: skip
    message = Message(
        "call-1:message:1", "call-1", DEMO_CLINIC_ID, at, MESSAGE_TEXT, "Grace Hopper"
    )
    audit = AuditEvent("call-1", DEMO_CLINIC_ID, "create", "Message/call-1:message:1", at)

    async def write_and_read() -> tuple[Any, ...]:
        with open_embedded_records(Settings(data_dir=tmp_path)) as records:
            await records.store.save_clinic(demo_clinic())
            await records.store.save_call(record)
            await records.store.save_message(message)
            await records.store.record_audit(audit)
            patient = await records.ehr.add_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="Grace", family_name="Hopper",
                birth_date=GRACE_BORN, phone="+15555550123",
            )  # fmt: skip
            return (
                patient,
                await records.store.get_call("call-1"),
                await records.store.list_messages(DEMO_CLINIC_ID),
                await records.ehr.find_patient(
                    clinic_id=DEMO_CLINIC_ID,
                    given_name="  grace ",
                    family_name="HOPPER",
                    birth_date=GRACE_BORN,
                ),  # fmt: skip
                await records.store.audit_trail("call-1"),
            )

    patient, stored, messages, found, trail = asyncio.run(write_and_read())

    # The API gives everything back, opened.
    assert stored == record
    assert messages == [message]
    assert found == patient and (found.given_name, found.phone) == ("Grace", "+15555550123")
    assert trail == [audit]
    # The file holds none of it.
    phi = _spellings(["Grace", "Hopper", "insulin", "dizzy"]) | _date_spellings(GRACE_BORN)
    phi |= {"5555550123", "555 555 0123", "555-555-0123", "+15555550123", "ninth nineteen"}
    phi |= {text for _, text in TRANSCRIPT} | {MESSAGE_TEXT}
    assert _leaks(tmp_path, phi) == []
    # ... and what replaced it is sealed tokens, while ids, times and codes stay readable.
    sealed = _column(tmp_path, "SELECT transcript, tool_calls FROM calls")
    sealed += _column(tmp_path, "SELECT text, caller_name FROM messages")
    sealed += _column(tmp_path, "SELECT given_name, family_name, birth_date, phone FROM patients")
    assert len(sealed) == 8 and all(SEALED.fullmatch(value) for value in sealed)
    assert _column(tmp_path, "SELECT call_id, outcome FROM calls") == ["call-1", "message_taken"]
    assert _column(tmp_path, "SELECT resource FROM audit") == ["Message/call-1:message:1"]
    [index] = _column(tmp_path, "SELECT identity_index FROM patients")
    assert re.fullmatch(r"[0-9a-f]{64}", index)


def test_texts_and_call_numbers_are_sealed_in_the_rows(tmp_path: Path) -> None:
    at = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
    text = "Reddy Family Clinic: your appointment with Doctor Chen on Tue, Dec 1 at 9:30 AM CST"
    outgoing = OutboxMessage(
        "sms-confirmation:call-1:book_appointment:appt-1", DEMO_CLINIC_ID, "call-1", at,
        "+15555550123", text,
    )  # fmt: skip

    async def write_and_read() -> tuple[Any, ...]:
        with open_embedded_records(Settings(data_dir=tmp_path)) as records:
            store = records.store
            await store.save_call_number("call-1", DEMO_CLINIC_ID, party="caller",
                                         number="+15555550123")  # fmt: skip
            await store.save_call_number("call-1", DEMO_CLINIC_ID, party="patient:p1",
                                         number="+15550100177")  # fmt: skip
            await store.add_to_outbox(outgoing)
            return (
                await store.get_call_number("call-1", DEMO_CLINIC_ID, party="caller"),
                await store.get_call_number("call-1", DEMO_CLINIC_ID, party="patient:p1"),
                await store.list_outbox(DEMO_CLINIC_ID),
            )

    caller, patient, outbox = asyncio.run(write_and_read())

    assert (caller, patient, outbox) == ("+15555550123", "+15550100177", [outgoing])
    phi = {"5555550123", "555 555 0123", "555-555-0123", "+15555550123", "0100177", text}
    phi |= {"Doctor Chen on", "Dec 1 at 9:30", "9:30 AM"}
    assert _leaks(tmp_path, phi) == []
    sealed = _column(tmp_path, "SELECT number FROM call_numbers")
    sealed += _column(tmp_path, "SELECT to_number, text FROM outbox")
    assert len(sealed) == 4 and all(SEALED.fullmatch(value) for value in sealed)
    # ids, parties, times and the status stay readable
    assert sorted(_column(tmp_path, "SELECT party FROM call_numbers")) == ["caller", "patient:p1"]
    assert _column(tmp_path, "SELECT call_id, status FROM outbox") == ["call-1", "queued"]


def test_rotating_the_key_rewraps_the_data_keys_and_leaves_the_rows(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    record = CallRecord(
        "call-1", DEMO_CLINIC_ID, dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 25, 15, 3, tzinfo=dt.UTC), "completed", TRANSCRIPT,
    )  # fmt: skip
    with open_embedded_records(settings) as records:
        asyncio.run(records.store.save_call(record))
    rows_before = _column(tmp_path, "SELECT transcript, tool_calls FROM calls")
    [(wrapped_before, kek_before)] = _rows(tmp_path, "SELECT wrapped, kek_id FROM data_keys")

    assert asyncio.run(rotate_embedded_kek(settings)) == 1

    assert _column(tmp_path, "SELECT transcript, tool_calls FROM calls") == rows_before
    [(wrapped_after, kek_after)] = _rows(tmp_path, "SELECT wrapped, kek_id FROM data_keys")
    assert wrapped_after != wrapped_before and kek_after != kek_before
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["kek-1", "kek-2"]
    (tmp_path / "keys" / "kek-1").unlink()  # retired: nothing needs it any more
    with open_embedded_records(settings) as records:
        assert asyncio.run(records.store.get_call("call-1")) == record


def _rows(data_dir: Path, sql: str) -> list[tuple[Any, ...]]:
    uri = f"file:{data_dir / 'reddytalk.sqlite3'}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as conn:
        return [tuple(row) for row in conn.execute(sql)]


@pytest.mark.e2e
def test_a_demo_call_leaves_no_plaintext_phi_in_the_file(tmp_path: Path) -> None:
    """``scripts/demo --direct``, in process: a caller books by voice; then the raw file."""
    settings = Settings(data_dir=tmp_path, port=0)
    scenario = load_scenario(DEMO_SCENARIO)

    async def demo_call() -> dict[str, Any]:
        async with _receptionist(settings) as url:
            report = await place_call(scenario, url=url)
            return await _call_record(settings, report)

    record = asyncio.run(demo_call())

    # A real call went through, and the store gives its transcript back opened.
    assert record["outcome"] == "booked", record["transcript"]
    heard = " ".join(text.lower() for speaker, text in record["transcript"] if speaker == "caller")
    assert "robert taylor" in heard
    booked = record["appointment"]
    with open_embedded_records(settings) as records:
        robert = asyncio.run(
            records.ehr.find_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="Robert", family_name="Taylor",
                birth_date=dt.date(1980, 3, 15),
            )
        )  # fmt: skip
    assert robert is not None and booked["patient_id"] == robert.patient_id
    # None of the caller's PHI is in the file: not the name, the date of birth in any
    # common spelling, nor any sentence of the conversation.
    phi = _spellings(["Robert", "Taylor", "Robert Taylor"]) | _date_spellings(dt.date(1980, 3, 15))
    phi |= _spellings(["March fifteenth", "nineteen eighty"])
    phi |= {text for _, text in record["transcript"] if len(text) > 12}
    phi |= {step.say for step in scenario.steps if len(step.say) > 12}
    assert _leaks(tmp_path, phi) == []
    assert all(SEALED.fullmatch(v) for v in _column(tmp_path, "SELECT transcript FROM calls"))
