"""A schema 1 store (PHI in plaintext) is refused, or sealed in place by the receptionist."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from reddytalk.composition import build_receptionist, open_embedded_records
from reddytalk.errors import ProviderError
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic
from reddytalk.providers.store.sqlite import clinic_to_document
from reddytalk.providers.store.sqlite_db import SCHEMA_VERSION
from reddytalk.providers.store.sqlite_upgrade import seal_plaintext_store
from reddytalk.settings import Settings

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
AT = "2026-11-25T15:00:00.000000+00:00"
LATER = "2026-11-30T16:00:00.000000+00:00"
TRANSCRIPT = [["receptionist", "How can I help?"], ["caller", "This is Robert Taylor."]]

# The tables of schema 1 that change, as the files of that version hold them.
_SCHEMA_1 = """
CREATE TABLE clinics (clinic_id TEXT PRIMARY KEY, document TEXT NOT NULL);
CREATE TABLE calls (call_id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL, started_at TEXT NOT NULL,
    ended_at TEXT NOT NULL, outcome TEXT NOT NULL, transcript TEXT NOT NULL,
    tool_calls TEXT NOT NULL, turn_timings TEXT NOT NULL);
CREATE TABLE patients (patient_id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL,
    given_name TEXT NOT NULL, family_name TEXT NOT NULL, given_key TEXT NOT NULL,
    family_key TEXT NOT NULL, birth_date TEXT NOT NULL, phone TEXT NOT NULL);
CREATE INDEX patients_by_identity ON patients (clinic_id, family_key, given_key, birth_date);
CREATE TABLE slots (slot_id TEXT PRIMARY KEY,
    clinic_id TEXT NOT NULL REFERENCES clinics (clinic_id), provider_id TEXT NOT NULL,
    start_utc TEXT NOT NULL, end_utc TEXT NOT NULL, time_zone TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('free', 'busy')),
    UNIQUE (clinic_id, provider_id, start_utc));
CREATE TABLE appointments (appointment_id TEXT PRIMARY KEY, clinic_id TEXT NOT NULL,
    patient_id TEXT NOT NULL REFERENCES patients (patient_id), provider_id TEXT NOT NULL,
    appointment_type TEXT NOT NULL, slot_id TEXT NOT NULL REFERENCES slots (slot_id),
    start_utc TEXT NOT NULL, time_zone TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
    idempotency_key TEXT NOT NULL UNIQUE);
PRAGMA user_version = 1;
"""
_MESSAGES_1 = """CREATE TABLE messages (message_id TEXT PRIMARY KEY, call_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL, taken_at TEXT NOT NULL, text TEXT NOT NULL,
    caller_name TEXT NOT NULL, patient_id TEXT, status TEXT NOT NULL)"""


def _schema_1_file(data_dir: Path, *, with_messages: bool = True) -> None:
    """A store as schema 1 wrote it: Robert Taylor, his visit, a call and a message."""
    data_dir.mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(data_dir / "reddytalk.sqlite3")) as conn, conn:
        conn.executescript(_SCHEMA_1)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(
            "INSERT INTO clinics VALUES (?, ?)",
            (DEMO_CLINIC_ID, json.dumps(clinic_to_document(demo_clinic()))),
        )
        conn.execute(
            "INSERT INTO patients VALUES ('pat_1', ?, 'Robert', 'Taylor', 'robert', 'taylor',"
            " '1980-03-15', '+15555550123')",
            (DEMO_CLINIC_ID,),
        )
        conn.execute(
            "INSERT INTO slots VALUES ('slot_1', ?, 'dr-chen', ?, ?, 'America/Chicago', 'busy')",
            (DEMO_CLINIC_ID, LATER, LATER),
        )
        conn.execute(
            "INSERT INTO appointments VALUES ('appt_1', ?, 'pat_1', 'dr-chen', 'checkup',"
            " 'slot_1', ?, 'America/Chicago', 'booked', 'seed:x:robert-taylor:2026-11-30')",
            (DEMO_CLINIC_ID, LATER),
        )
        conn.execute(
            "INSERT INTO calls VALUES ('call-1', ?, ?, ?, 'booked', ?, ?, '[]')",
            (DEMO_CLINIC_ID, AT, AT, json.dumps(TRANSCRIPT), json.dumps([{"name": "book"}])),
        )
        if with_messages:
            conn.execute(_MESSAGES_1)
            conn.execute(
                "INSERT INTO messages VALUES ('call-1:message:1', 'call-1', ?, ?,"
                " 'About my insulin refill', 'Robert Taylor', 'pat_1', 'open')",
                (DEMO_CLINIC_ID, AT),
            )


def _file_text(data_dir: Path) -> str:
    files = [data_dir / "reddytalk.sqlite3", data_dir / "reddytalk.sqlite3-wal"]
    return "".join(f.read_bytes().decode("latin-1") for f in files if f.exists())


def _user_version(data_dir: Path) -> int:
    with closing(sqlite3.connect(data_dir / "reddytalk.sqlite3")) as conn:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])


def test_a_schema_1_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    _schema_1_file(tmp_path)

    with pytest.raises(ProviderError, match="schema 1, which kept PHI unencrypted") as caught:
        open_embedded_records(Settings(data_dir=tmp_path))

    assert caught.value.retryable is False
    assert str(tmp_path / "reddytalk.sqlite3") in str(caught.value)
    assert "delete" in str(caught.value)
    assert _user_version(tmp_path) == 1  # untouched


@pytest.mark.parametrize("with_messages", [True, False])
def test_the_upgrade_seals_a_schema_1_file_in_place(tmp_path: Path, with_messages: bool) -> None:
    _schema_1_file(tmp_path, with_messages=with_messages)
    assert "Taylor" in _file_text(tmp_path)  # the check below can see plaintext

    async def upgrade() -> tuple[bool, bool]:
        with open_embedded_records(Settings(data_dir=tmp_path), open_plaintext=True) as records:
            assert records.db.schema_version == 1
            first = await seal_plaintext_store(records.db, records.cipher)
            assert records.db.schema_version == SCHEMA_VERSION
            return first, await seal_plaintext_store(records.db, records.cipher)

    assert asyncio.run(upgrade()) == (True, False)

    text = _file_text(tmp_path)
    for phi in ("Robert", "Taylor", "taylor", "1980-03-15", "5555550123", "insulin", "How can"):
        assert phi not in text
    assert _user_version(tmp_path) == SCHEMA_VERSION

    async def read_back() -> None:
        with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
            robert = await records.ehr.find_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="ROBERT", family_name=" taylor",
                birth_date=dt.date(1980, 3, 15),
            )  # fmt: skip
            assert robert is not None and robert.patient_id == "pat_1"
            assert (robert.given_name, robert.phone) == ("Robert", "+15555550123")
            [visit] = await records.ehr.upcoming_appointments(
                clinic_id=DEMO_CLINIC_ID, patient_id="pat_1", after=NOW
            )
            assert visit.appointment_id == "appt_1"
            call = await records.store.get_call("call-1")
            assert call is not None and call.transcript == tuple(map(tuple, TRANSCRIPT))
            assert call.tool_calls == ({"name": "book"},)
            messages = await records.store.list_messages(DEMO_CLINIC_ID)
            assert [(m.text, m.caller_name) for m in messages] == (
                [("About my insulin refill", "Robert Taylor")] if with_messages else []
            )
            again = await records.ehr.create_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="Robert", family_name="Taylor",
                birth_date=dt.date(1980, 3, 15),
            )  # fmt: skip
            assert again.patient_id == "pat_1"  # the blind index finds upgraded patients
            # What schema 2 added since (calls in progress, removed clinics) is there too.
            assert await records.store.list_clinics() == [demo_clinic()]
            await records.store.call_started("call-2", DEMO_CLINIC_ID, at=NOW)
            assert await records.store.calls_in_progress(DEMO_CLINIC_ID, now=NOW) == 1
            # And the admin console's reads (the calls' index) work on the upgraded file.
            [listed] = await records.store.list_calls(DEMO_CLINIC_ID)
            assert (listed.call_id, listed.outcome, listed.started_at) == ("call-1", "booked", NOW)
            done = await records.store.set_message_status(
                DEMO_CLINIC_ID, "call-1:message:1", status="done"
            )
            assert done is with_messages
            statuses = [m.status for m in await records.store.list_messages(DEMO_CLINIC_ID)]
            assert statuses == (["done"] if with_messages else [])

    asyncio.run(read_back())


def test_the_receptionist_upgrades_a_schema_1_store_when_it_starts(tmp_path: Path) -> None:
    """What ``scripts/demo --serve`` meets in ``var/`` on a machine that ran schema 1."""
    _schema_1_file(tmp_path)
    settings = Settings(data_dir=tmp_path)

    async def start_and_stop() -> None:
        receptionist = await build_receptionist(settings, clock=lambda: NOW)
        await receptionist.close()

    asyncio.run(start_and_stop())

    assert _user_version(tmp_path) == SCHEMA_VERSION
    assert "Taylor" not in _file_text(tmp_path)
    with open_embedded_records(settings) as records:
        record = asyncio.run(records.store.get_call("call-1"))
        seeded = asyncio.run(
            records.ehr.find_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="Linda", family_name="Wilson",
                birth_date=dt.date(1975, 7, 4),
            )
        )  # fmt: skip
    assert record is not None and record.transcript[1][1] == "This is Robert Taylor."
    assert seeded is not None  # and the demo clinic was seeded after the upgrade
