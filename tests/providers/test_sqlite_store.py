"""The SQLite store: clinics by number, calls, messages, the append-only audit trail, the file.

What every store promises is ``tests/contracts``'s (run on this store too); here is what is
the SQLite store's own: its file, its tables, its transactions.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import replace
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from reddytalk.composition import build_phi_cipher, open_embedded_records
from reddytalk.errors import ProviderError
from reddytalk.ports import AuditEvent, CallRecord, Message, OutboxMessage
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic, seed_demo
from reddytalk.providers.store.sqlite import SqliteStore, clinic_to_document
from reddytalk.providers.store.sqlite_db import SCHEMA_VERSION, SqliteDb
from reddytalk.settings import Settings

CHICAGO = ZoneInfo("America/Chicago")


def _store(db: SqliteDb) -> SqliteStore:
    """The store on ``db``, its key files in a folder next to the SQLite file."""
    return SqliteStore(db=db, cipher=build_phi_cipher(db, key_dir=db.path.parent / "keys"))


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "reddytalk.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStore]:
    with SqliteDb(db_path) as db:
        yield _store(db)


def _call(call_id: str = "call-1") -> CallRecord:
    return CallRecord(
        call_id=call_id,
        clinic_id=DEMO_CLINIC_ID,
        started_at=dt.datetime(2026, 3, 2, 9, 0, 5, 250_000, tzinfo=CHICAGO),
        ended_at=dt.datetime(2026, 3, 2, 9, 3, 41, tzinfo=CHICAGO),
        outcome="booked",
        transcript=(("receptionist", "Reddy Family Clinic, how can I help?"), ("caller", "Hi.")),
        tool_calls=({"name": "find_slots", "arguments": {"day": "tomorrow"}},),
        turn_timings=({"turn": 1, "stt_ms": 120, "llm_first_token_ms": 180.5},),
    )


def test_clinic_is_found_by_its_number_and_id(store: SqliteStore) -> None:
    clinic = demo_clinic()
    asyncio.run(store.save_clinic(clinic))

    assert asyncio.run(store.find_clinic_by_number(DEMO_PHONE_NUMBER)) == clinic
    assert asyncio.run(store.get_clinic(DEMO_CLINIC_ID)) == clinic


def test_unknown_number_and_clinic_are_none(store: SqliteStore) -> None:
    asyncio.run(store.save_clinic(demo_clinic()))

    assert asyncio.run(store.find_clinic_by_number("+15550199999")) is None
    assert asyncio.run(store.find_clinic_by_number("5550100200")) is None
    assert asyncio.run(store.get_clinic("no-such-clinic")) is None


def test_saving_a_clinic_again_replaces_it(store: SqliteStore) -> None:
    clinic = demo_clinic()
    asyncio.run(store.save_clinic(clinic))
    renamed = replace(clinic, name="Reddy Family Clinic North")
    asyncio.run(store.save_clinic(renamed))

    found = asyncio.run(store.find_clinic_by_number(DEMO_PHONE_NUMBER))
    assert found is not None and found.name == "Reddy Family Clinic North"


def test_a_number_that_is_not_e164_is_refused(store: SqliteStore) -> None:
    clinic = replace(demo_clinic(), phone_number="555-0100")

    with pytest.raises(ValueError, match="E.164"):
        asyncio.run(store.save_clinic(clinic))
    assert asyncio.run(store.get_clinic(DEMO_CLINIC_ID)) is None


def test_call_record_round_trips(store: SqliteStore) -> None:
    record = _call()
    asyncio.run(store.save_call(record))

    stored = asyncio.run(store.get_call("call-1"))

    assert stored == record
    assert stored is not None and stored.started_at.utcoffset() == dt.timedelta(0)
    assert stored.started_at.microsecond == 250_000
    assert asyncio.run(store.get_call("call-2")) is None


def test_saving_a_call_again_replaces_it(store: SqliteStore) -> None:
    asyncio.run(store.save_call(_call()))
    retried = replace(_call(), outcome="transferred")
    asyncio.run(store.save_call(retried))

    assert asyncio.run(store.get_call("call-1")) == retried


def test_a_naive_time_is_refused(store: SqliteStore) -> None:
    record = replace(_call(), ended_at=dt.datetime(2026, 3, 2, 9, 3))

    with pytest.raises(ValueError, match="aware"):
        asyncio.run(store.save_call(record))
    assert asyncio.run(store.get_call("call-1")) is None


def test_audit_events_are_appended_in_order(store: SqliteStore) -> None:
    at = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    first = AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Patient/pat_1", at, {"why": "verify"})
    second = AuditEvent("call-1", DEMO_CLINIC_ID, "create", "Appointment/appt_1", at)
    other = AuditEvent("call-2", DEMO_CLINIC_ID, "read", "Patient/pat_2", at)
    for event in (first, second, other):
        asyncio.run(store.record_audit(event))
    asyncio.run(store.record_audit(first))

    assert asyncio.run(store.audit_trail("call-1")) == [first, second, first]
    assert asyncio.run(store.audit_trail("call-2")) == [other]


def test_the_audit_table_refuses_edits_and_deletes(store: SqliteStore, db_path: Path) -> None:
    at = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    event = AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Patient/pat_1", at)
    asyncio.run(store.record_audit(event))

    raw = sqlite3.connect(db_path)
    try:
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("UPDATE audit SET action = 'nothing'")
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            raw.execute("DELETE FROM audit")
    finally:
        raw.close()
    assert asyncio.run(store.audit_trail("call-1")) == [event]


def test_the_file_uses_wal_and_records_its_schema_version(db_path: Path) -> None:
    with SqliteDb(db_path) as db:
        asyncio.run(_store(db).save_call(_call()))

    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    finally:
        raw.close()
    with SqliteDb(db_path) as db:  # reopening keeps the data
        assert asyncio.run(_store(db).get_call("call-1")) == _call()


def test_a_file_from_a_newer_schema_is_refused(db_path: Path) -> None:
    raw = sqlite3.connect(db_path)
    try:
        raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    finally:
        raw.close()

    with pytest.raises(ProviderError, match="newer") as caught:
        SqliteDb(db_path)
    assert caught.value.retryable is False


def test_reads_and_writes_from_many_tasks_at_once(store: SqliteStore) -> None:
    async def scenario() -> list[CallRecord | None]:
        await asyncio.gather(*(store.save_call(_call(f"call-{n}")) for n in range(20)))
        return await asyncio.gather(*(store.get_call(f"call-{n}") for n in range(20)))

    found = asyncio.run(scenario())

    assert [r.call_id if r else None for r in found] == [f"call-{n}" for n in range(20)]


def test_a_file_held_by_another_writer_is_a_retryable_error(db_path: Path) -> None:
    with SqliteDb(db_path, busy_timeout_s=0.05) as db:
        store = _store(db)
        raw = sqlite3.connect(db_path, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            with pytest.raises(ProviderError, match="busy") as caught:
                asyncio.run(store.save_call(_call()))
            raw.execute("ROLLBACK")
        finally:
            raw.close()

        assert caught.value.retryable is True
        asyncio.run(store.save_call(_call()))  # the connection is usable again
        assert asyncio.run(store.get_call("call-1")) == _call()


def test_a_key_is_claimed_once_across_connections(store: SqliteStore, db_path: Path) -> None:
    assert asyncio.run(store.claim("incoming-call:c1")) is True
    assert asyncio.run(store.claim("incoming-call:c1")) is False
    with SqliteDb(db_path) as other_db:  # another process's connection to the same file
        assert asyncio.run(_store(other_db).claim("incoming-call:c1")) is False
        assert asyncio.run(_store(other_db).claim("incoming-call:c2")) is True


def test_concurrent_claims_of_one_key_have_one_winner(store: SqliteStore) -> None:
    async def claims() -> list[bool]:
        return list(await asyncio.gather(*(store.claim("call-event:e1") for _ in range(20))))

    assert sorted(asyncio.run(claims())) == [False] * 19 + [True]


def test_a_released_claim_can_be_claimed_again(store: SqliteStore) -> None:
    asyncio.run(store.claim("k"))
    asyncio.run(store.release("k"))
    assert asyncio.run(store.claim("k")) is True


def test_a_clinic_keeps_its_stream_rate_and_staff_number(store: SqliteStore) -> None:
    clinic = dataclasses.replace(
        demo_clinic(), stream_sample_rate_hz=24_000, staff_phone_number="+15550100777"
    )
    asyncio.run(store.save_clinic(clinic))
    found = asyncio.run(store.get_clinic(DEMO_CLINIC_ID))
    assert found is not None
    assert (found.stream_sample_rate_hz, found.staff_phone_number) == (24_000, "+15550100777")


def test_saving_a_call_without_replace_keeps_the_stored_record(store: SqliteStore) -> None:
    stub = replace(_call(), outcome="completed", transcript=(), tool_calls=(), turn_timings=())
    assert asyncio.run(store.save_call(_call())) is True

    assert asyncio.run(store.save_call(stub, replace=False)) is False
    assert asyncio.run(store.get_call("call-1")) == _call()


def test_saving_a_call_without_replace_stores_a_new_one(store: SqliteStore) -> None:
    assert asyncio.run(store.save_call(_call(), replace=False)) is True
    assert asyncio.run(store.get_call("call-1")) == _call()


def test_saving_a_call_replaces_by_default_and_says_so(store: SqliteStore) -> None:
    asyncio.run(store.save_call(_call(), replace=False))
    retried = replace(_call(), outcome="transferred", transcript=())

    assert asyncio.run(store.save_call(retried)) is True
    assert asyncio.run(store.save_call(_call(), replace=True)) is True
    assert asyncio.run(store.get_call("call-1")) == _call()


def _message(message_id: str = "call-1:message:1", **changes: Any) -> Message:
    message = Message(
        message_id=message_id,
        call_id="call-1",
        clinic_id=DEMO_CLINIC_ID,
        taken_at=dt.datetime(2026, 3, 2, 9, 2, 30, 125_000, tzinfo=CHICAGO),
        text="Please call me back about my prescription.",
        caller_name="Robert Taylor",
        patient_id="pat_1",
    )
    return replace(message, **changes)


def test_a_message_round_trips(store: SqliteStore) -> None:
    message = _message()

    assert asyncio.run(store.save_message(message)) is True

    [stored] = asyncio.run(store.list_messages(DEMO_CLINIC_ID))
    assert stored == message
    assert stored.taken_at.utcoffset() == dt.timedelta(0)
    assert stored.status == "open"


def test_a_message_without_a_patient_round_trips(store: SqliteStore) -> None:
    message = _message(patient_id=None, caller_name="")
    asyncio.run(store.save_message(message))

    [stored] = asyncio.run(store.list_messages(DEMO_CLINIC_ID))
    assert stored == message
    assert stored.patient_id is None


def test_a_message_is_kept_once_by_its_id(store: SqliteStore) -> None:
    first = _message()
    asyncio.run(store.save_message(first))
    retried = _message(text="Something else entirely.", caller_name="Someone", status="closed")

    assert asyncio.run(store.save_message(retried)) is False
    assert asyncio.run(store.list_messages(DEMO_CLINIC_ID)) == [first]


def test_messages_are_listed_oldest_first(store: SqliteStore) -> None:
    at = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    late = _message("call-1:message:1", taken_at=at + dt.timedelta(hours=2))
    # Earlier in time, though written in another zone whose local clock reads later.
    early = _message(
        "call-2:message:1", call_id="call-2", taken_at=at.astimezone(ZoneInfo("Asia/Tokyo"))
    )
    middle = _message("call-3:message:1", call_id="call-3", taken_at=at + dt.timedelta(hours=1))
    for message in (late, early, middle):
        asyncio.run(store.save_message(message))

    listed = asyncio.run(store.list_messages(DEMO_CLINIC_ID))
    assert [m.message_id for m in listed] == [m.message_id for m in (early, middle, late)]


def test_messages_are_kept_per_clinic(store: SqliteStore) -> None:
    ours = _message()
    theirs = _message("call-9:message:1", call_id="call-9", clinic_id="other-clinic")
    asyncio.run(store.save_message(ours))
    asyncio.run(store.save_message(theirs))

    assert asyncio.run(store.list_messages(DEMO_CLINIC_ID)) == [ours]
    assert asyncio.run(store.list_messages("other-clinic")) == [theirs]
    assert asyncio.run(store.list_messages("no-such-clinic")) == []


def test_a_message_with_a_naive_time_is_refused(store: SqliteStore) -> None:
    with pytest.raises(ValueError, match="aware"):
        asyncio.run(store.save_message(_message(taken_at=dt.datetime(2026, 3, 2, 9, 2))))
    assert asyncio.run(store.list_messages(DEMO_CLINIC_ID)) == []


def test_a_message_survives_reopening_the_file(db_path: Path) -> None:
    with SqliteDb(db_path) as db:
        asyncio.run(_store(db).save_message(_message()))

    with SqliteDb(db_path) as db:
        reopened = _store(db)
        assert asyncio.run(reopened.list_messages(DEMO_CLINIC_ID)) == [_message()]
        assert asyncio.run(reopened.save_message(_message())) is False


# --- a call's numbers and the outbox (what they promise: tests/contracts) ---------------------

CALLER = "+15555550123"


def _outbox_message(
    message_id: str = "sms-confirmation:call-1:book:a1", **changes: Any
) -> OutboxMessage:
    message = OutboxMessage(
        message_id=message_id,
        clinic_id=DEMO_CLINIC_ID,
        call_id="call-1",
        created_at=dt.datetime(2026, 3, 2, 9, 4, tzinfo=CHICAGO),
        to_number=CALLER,
        text="Reddy Family Clinic: your appointment with Doctor Patel on Tue, Mar 3 is booked.",
    )
    return replace(message, **changes)


def test_the_new_tables_are_added_to_an_existing_schema_2_file(db_path: Path) -> None:
    with SqliteDb(db_path) as db:  # a schema 2 file from before texts existed
        db.transact(lambda conn: [conn.execute(f"DROP TABLE {t}") for t in ("call_numbers",
                                                                            "outbox")])  # fmt: skip
    with SqliteDb(db_path) as db:
        assert db.schema_version == SCHEMA_VERSION
        store = _store(db)
        asyncio.run(store.save_call_number("call-1", DEMO_CLINIC_ID, party="caller",
                                           number=CALLER))  # fmt: skip
        assert asyncio.run(store.add_to_outbox(_outbox_message()))
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


# --- clinics: the SQLite store's own side (what every store promises: tests/contracts) --------

T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def test_a_clinic_row_from_before_the_newer_fields_still_reads(
    store: SqliteStore, db_path: Path
) -> None:
    newer = ("other_phone_numbers", "holidays", "greeting", "after_hours", "ehr")
    old = {k: v for k, v in clinic_to_document(demo_clinic()).items() if k not in newer}
    with closing(sqlite3.connect(db_path)) as raw, raw:
        raw.execute("INSERT INTO clinics VALUES (?, ?)", (DEMO_CLINIC_ID, json.dumps(old)))
        raw.execute("INSERT INTO phone_numbers VALUES (?, ?)", (DEMO_PHONE_NUMBER, DEMO_CLINIC_ID))

    assert asyncio.run(store.get_clinic(DEMO_CLINIC_ID)) == demo_clinic()  # the defaults
    assert asyncio.run(store.find_clinic_by_number(DEMO_PHONE_NUMBER)) == demo_clinic()
    assert asyncio.run(store.list_clinics()) == [demo_clinic()]


def test_a_clinic_with_its_schedule_is_removed_and_the_schedule_stays(tmp_path: Path) -> None:
    # The embedded schedule's slots refer to the clinic's row (a foreign key): the row
    # stays, marked removed; slots, patients and appointments are medical records.
    async def main() -> None:
        with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: T0) as records:
            await seed_demo(records.store, records.ehr, today=T0.date())
            assert await records.store.remove_clinic(DEMO_CLINIC_ID) is True

            assert await records.store.get_clinic(DEMO_CLINIC_ID) is None
            assert await records.store.find_clinic_by_number(DEMO_PHONE_NUMBER) is None
            assert await records.store.list_clinics() == []
            linda = await records.ehr.find_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="Linda", family_name="Wilson",
                birth_date=dt.date(1975, 7, 4),
            )  # fmt: skip
            assert linda is not None
            assert await records.ehr.upcoming_appointments(
                clinic_id=DEMO_CLINIC_ID, patient_id=linda.patient_id, after=T0
            )

            await records.store.save_clinic(demo_clinic())  # added again: un-removed
            assert await records.store.list_clinics() == [demo_clinic()]

    asyncio.run(main())


def test_a_refused_save_leaves_the_numbers_as_they_were(store: SqliteStore) -> None:
    first = replace(demo_clinic(), other_phone_numbers=("+15550100201",))
    other = replace(demo_clinic(), clinic_id="other", phone_number="+15550100400")
    asyncio.run(store.save_clinic(first))
    asyncio.run(store.save_clinic(other))
    # Its own numbers come first, and would be written first without the transaction.
    grabbing = replace(other, phone_number="+15550100401", other_phone_numbers=("+15550100201",))

    with pytest.raises(ValueError, match=r"\+15550100201 belongs to another clinic"):
        asyncio.run(store.save_clinic(grabbing))

    assert asyncio.run(store.find_clinic_by_number("+15550100400")) == other
    assert asyncio.run(store.find_clinic_by_number("+15550100401")) is None
    assert asyncio.run(store.find_clinic_by_number("+15550100201")) == first


def test_rows_of_calls_too_old_to_be_in_progress_are_deleted_when_counting(
    store: SqliteStore, db_path: Path
) -> None:
    asyncio.run(store.call_started("crashed", DEMO_CLINIC_ID, at=T0))
    asyncio.run(store.call_started("elsewhere", "other-clinic", at=T0))
    asyncio.run(store.call_started("live", DEMO_CLINIC_ID, at=T0 + dt.timedelta(hours=3)))

    later = T0 + dt.timedelta(hours=5)
    assert asyncio.run(store.calls_in_progress(DEMO_CLINIC_ID, now=later)) == 1
    with closing(sqlite3.connect(db_path)) as raw:
        assert [r[0] for r in raw.execute("SELECT call_id FROM live_calls")] == ["live"]


def test_the_clinic_tables_are_added_to_an_existing_schema_2_file(db_path: Path) -> None:
    with SqliteDb(db_path) as db:  # a schema 2 file from before calls in progress existed
        asyncio.run(_store(db).save_clinic(demo_clinic()))
        tables = ("live_calls", "removed_clinics")
        db.transact(lambda conn: [conn.execute(f"DROP TABLE {t}") for t in tables])
    with SqliteDb(db_path) as db:
        assert db.schema_version == SCHEMA_VERSION
        store = _store(db)
        asyncio.run(store.call_started("call-1", DEMO_CLINIC_ID, at=T0))
        assert asyncio.run(store.calls_in_progress(DEMO_CLINIC_ID, now=T0)) == 1
        asyncio.run(store.call_ended("call-1"))
        assert asyncio.run(store.remove_clinic(DEMO_CLINIC_ID)) is True
        assert asyncio.run(store.list_clinics()) == []
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


# --- the admin console's reads: the SQLite store's own side (the contract: tests/contracts) ----


def _listing_plans(store: SqliteStore, db: SqliteDb) -> list[str]:
    """How SQLite runs the statements ``list_calls`` sends (seen by a trace callback)."""
    seen: list[str] = []
    db.transact(lambda conn: conn.set_trace_callback(seen.append), write=False)
    asyncio.run(store.list_calls(DEMO_CLINIC_ID, limit=2))
    asyncio.run(store.list_calls(DEMO_CLINIC_ID, limit=2, before=T0))
    db.transact(lambda conn: conn.set_trace_callback(None), write=False)
    selects = [sql for sql in seen if sql.startswith("SELECT")]
    assert len(selects) == 2

    def plan(conn: sqlite3.Connection) -> list[str]:
        return [" ".join(str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}"))
                for sql in selects]  # fmt: skip

    return db.transact(plan, write=False)


def test_the_calls_index_serves_the_listing_and_is_added_to_an_existing_file(
    db_path: Path,
) -> None:
    with SqliteDb(db_path) as db:  # a schema 2 file from before the console existed
        asyncio.run(_store(db).save_call(_call()))
        db.transact(lambda conn: conn.execute("DROP INDEX calls_by_clinic"))
    with SqliteDb(db_path) as db:
        assert db.schema_version == SCHEMA_VERSION
        store = _store(db)
        for plan in _listing_plans(store, db):
            # The index gives the order too: no sort of the clinic's calls (no temp b-tree).
            assert "USING INDEX calls_by_clinic (clinic_id=?" in plan
            assert "TEMP B-TREE" not in plan
        assert [c.call_id for c in asyncio.run(store.list_calls(DEMO_CLINIC_ID))] == ["call-1"]
    with closing(sqlite3.connect(db_path)) as raw:
        assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 2


def test_a_message_status_is_one_column_of_its_row(store: SqliteStore, db_path: Path) -> None:
    message = _message()
    asyncio.run(store.save_message(message))
    with closing(sqlite3.connect(db_path)) as raw:
        sealed_before = raw.execute("SELECT text, caller_name FROM messages").fetchone()

    assert asyncio.run(store.set_message_status(DEMO_CLINIC_ID, message.message_id,
                                                status="done"))  # fmt: skip

    with closing(sqlite3.connect(db_path)) as raw:
        row = raw.execute("SELECT text, caller_name, status FROM messages").fetchone()
    assert row == (*sealed_before, "done")  # the sealed values were not rewritten
