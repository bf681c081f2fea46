"""PHI at rest on the cloud profile: the raw Cosmos DB documents hold none of it in plaintext.

Each test writes through :class:`~reddytalk.providers.store.cosmos.CosmosStore` and
reads the documents behind its back with the plain SDK (every document of every
container), as anyone with the account's data-plane role could; the store must still
return the PHI. The SQLite side of the same promise is ``tests/phi/test_encrypted_rows.py``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from azure.cosmos.aio import CosmosClient
from store_fixtures import (  # the fixtures are found by pytest in this module's namespace
    EMULATOR_KEY,
    CosmosServer,
    cosmos_data_keys,
    cosmos_server_fixture,  # noqa: F401
    open_cosmos_store,
)

from reddytalk.errors import ProviderError
from reddytalk.phi import LocalKeyFile, PhiCipher
from reddytalk.ports import AuditEvent, CallRecord, Message, OutboxMessage
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic
from reddytalk.providers.store.cosmos import CosmosStore
from reddytalk.providers.store.sqlite import (
    CALL_NUMBER_FIELD,
    OUTBOX_NUMBER_FIELD,
    OUTBOX_TEXT_FIELD,
)

SEALED = re.compile(r"v1\.[1-9][0-9]*\.[A-Za-z0-9_-]+")
AT = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
TRANSCRIPT = (
    ("receptionist", "Reddy Family Clinic, how can I help?"),
    ("caller", "This is Grace Hopper, born December ninth nineteen ninety."),
    ("caller", "Please tell Doctor Chen my insulin dose made me dizzy."),
)
RECORD = CallRecord(
    call_id="call-1",
    clinic_id=DEMO_CLINIC_ID,
    started_at=AT,
    ended_at=AT + dt.timedelta(minutes=3),
    outcome="message_taken",
    transcript=TRANSCRIPT,
    tool_calls=(
        {"name": "verify_patient", "arguments": {"family_name": "Hopper", "dob": "1990-12-09"}},
    ),
    turn_timings=({"turn": 1, "caller_speech_end_ms": 1200.5},),
)
MESSAGE = Message(
    "call-1:message:1",
    "call-1",
    DEMO_CLINIC_ID,
    AT,
    "Call me back at 555 555 0123 about the insulin refill.",
    "Grace Hopper",
)
CALLER = "+15555550123"
PATIENT_PHONE = "+15550100177"
TEXT = OutboxMessage(
    "sms-confirmation:call-1:book:a1",
    DEMO_CLINIC_ID,
    "call-1",
    AT,
    PATIENT_PHONE,
    "Reddy Family Clinic: Grace, your appointment on Tue, Dec 1 is booked.",
)
PHI = {
    *(line for _, line in TRANSCRIPT),
    CALLER,
    CALLER[2:],  # the digits, however the document might spell them
    PATIENT_PHONE[2:],
    "Tue, Dec 1",
    "Grace",
    "Hopper",
    "insulin",
    "dizzy",
    "1990-12-09",
    "555 555 0123",
}


@asynccontextmanager
async def _cosmos(
    server: CosmosServer, database: str, kek: LocalKeyFile
) -> AsyncIterator[tuple[CosmosStore, PhiCipher]]:
    """A store on ``database`` as one process of the cloud profile has it, and its cipher
    (``kek`` stands in for the Key Vault key)."""
    async with cosmos_data_keys(server, database) as keys:
        cipher = PhiCipher(kek=kek, keys=keys)
        async with open_cosmos_store(server, database, cipher=cipher) as store:
            yield store, cipher


@asynccontextmanager
async def _raw(server: CosmosServer, database: str) -> AsyncIterator[Any]:
    """The database through the plain SDK, not the store."""
    async with CosmosClient(
        server.endpoint, EMULATOR_KEY, connection_verify=server.ca_file
    ) as client:
        yield client.get_database_client(database)


async def _every_document(server: CosmosServer, database: str) -> dict[str, list[Any]]:
    """Every document of every container, by container."""
    async with _raw(server, database) as db:
        found: dict[str, list[Any]] = {}
        async for container in db.list_containers():
            items = db.get_container_client(container["id"]).query_items("SELECT * FROM c")
            found[container["id"]] = [document async for document in items]
        return found


def test_stored_phi_is_sealed_in_the_documents_and_opened_by_the_store(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    database = f"sealed-{uuid.uuid4().hex[:12]}"
    audit = AuditEvent("call-1", DEMO_CLINIC_ID, "create", "Message/call-1:message:1", AT)

    async def write_and_read() -> tuple[Any, ...]:
        async with _cosmos(cosmos_server, database, LocalKeyFile(tmp_path / "keys")) as (store, _):
            await store.save_clinic(demo_clinic())
            await store.save_call(RECORD)
            await store.save_message(MESSAGE)
            await store.record_audit(audit)
            await store.save_call_number("call-1", DEMO_CLINIC_ID, party="caller", number=CALLER)
            await store.add_to_outbox(TEXT)
        # Another process (fresh caches, the keys from the account) reads it all back.
        async with _cosmos(cosmos_server, database, LocalKeyFile(tmp_path / "keys")) as (store, _):
            return (
                await store.get_call("call-1"),
                await store.list_messages(DEMO_CLINIC_ID),
                await store.audit_trail("call-1"),
                await store.get_call_number("call-1", DEMO_CLINIC_ID, party="caller"),
                await store.list_outbox(DEMO_CLINIC_ID),
            )

    stored, messages, trail, number, outbox = asyncio.run(write_and_read())
    documents = asyncio.run(_every_document(cosmos_server, database))

    assert (stored, messages, trail) == (RECORD, [MESSAGE], [audit])
    assert (number, outbox) == (CALLER, [TEXT])
    raw = json.dumps(documents, ensure_ascii=False)
    leaks = [s for s in sorted(PHI) for form in (s, s.lower(), s.upper()) if form in raw]
    assert not leaks, f"plaintext PHI in the documents: {leaks}"
    [call] = documents["calls"]
    [message] = documents["messages"]
    [call_number] = documents["call_numbers"]
    [text] = documents["outbox"]
    sealed = (call["transcript"], call["tool_calls"], message["text"], message["caller_name"])
    for value in (*sealed, call_number["number"], text["to_number"], text["text"]):
        assert SEALED.fullmatch(value), value
    # What stays readable: ids, times, outcomes, timings; the clinic's wrapped data key.
    assert call["outcome"] == "message_taken" and call["turn_timings"] == [
        {"turn": 1, "caller_speech_end_ms": 1200.5}
    ]
    assert [(k["clinic_id"], k["version"]) for k in documents["data_keys"]] == [(DEMO_CLINIC_ID, 1)]


def test_a_number_and_a_text_seal_as_the_sqlite_store_seals_them(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    # The same cipher field names and record ids as SqliteStore, so a token of either
    # store opens as the other's: SQLite's fields, with its record ids (``<call
    # id>/<party>`` for a call's number, the message id for the outbox), open them.
    database = f"same-{uuid.uuid4().hex[:12]}"
    party = "patient:pat/1"

    async def scenario() -> list[str]:
        kek = LocalKeyFile(tmp_path / "keys")
        async with _cosmos(cosmos_server, database, kek) as (store, cipher):
            await store.save_call_number("call-1", DEMO_CLINIC_ID, party=party, number=CALLER)
            await store.add_to_outbox(TEXT)
            documents = await _every_document(cosmos_server, database)
            [call_number], [text] = documents["call_numbers"], documents["outbox"]
            return [
                await cipher.open(DEMO_CLINIC_ID, field, token, record_id=record_id)
                for field, token, record_id in (
                    (CALL_NUMBER_FIELD, call_number["number"], f"call-1/{party}"),
                    (OUTBOX_NUMBER_FIELD, text["to_number"], TEXT.message_id),
                    (OUTBOX_TEXT_FIELD, text["text"], TEXT.message_id),
                )
            ]

    assert asyncio.run(scenario()) == [CALLER, PATIENT_PHONE, TEXT.text]


def test_a_sealed_value_moved_to_another_record_or_field_does_not_open(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    database = f"moved-{uuid.uuid4().hex[:12]}"
    other_call = replace(RECORD, call_id="call-2", transcript=())

    async def scenario() -> list[ProviderError]:
        async with _cosmos(cosmos_server, database, LocalKeyFile(tmp_path / "keys")) as (store, _):
            await store.save_call(RECORD)
            await store.save_call(other_call)
            await store.save_message(MESSAGE)
            async with _raw(cosmos_server, database) as db:
                calls, messages = (
                    db.get_container_client("calls"),
                    db.get_container_client("messages"),
                )
                first = await calls.read_item("call-1", partition_key=DEMO_CLINIC_ID)
                second = await calls.read_item("call-2", partition_key=DEMO_CLINIC_ID)
                await calls.upsert_item({**second, "transcript": first["transcript"]})
                note = await messages.read_item(MESSAGE.message_id, partition_key=DEMO_CLINIC_ID)
                await messages.upsert_item({**note, "caller_name": note["text"]})
            with pytest.raises(ProviderError, match="integrity check") as moved_record:
                await store.get_call("call-2")
            with pytest.raises(ProviderError, match="integrity check") as moved_field:
                await store.list_messages(DEMO_CLINIC_ID)
            assert await store.get_call("call-1") == RECORD  # the original still opens
            return [moved_record.value, moved_field.value]

    errors = asyncio.run(scenario())
    assert [e.retryable for e in errors] == [False, False]
    assert not any("Grace" in str(e) or "insulin" in str(e) for e in errors)


def test_rotating_the_kek_leaves_what_a_cosmos_store_sealed_readable(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    database = f"rotate-{uuid.uuid4().hex[:12]}"
    key_dir = tmp_path / "keys"

    async def scenario() -> None:
        kek = LocalKeyFile(key_dir)
        async with _cosmos(cosmos_server, database, kek) as (store, cipher):
            await store.save_call(RECORD)
            await store.save_message(MESSAGE)
            old_kek_id = kek.key_id
            new_kek_id = kek.rotate()

            assert await cipher.rotate_kek() == 1
            assert await cipher.rotate_kek() == 0  # nothing left to re-wrap
            assert await store.get_call("call-1") == RECORD  # this process's cache
        async with _raw(cosmos_server, database) as db:
            items = db.get_container_client("data_keys").query_items("SELECT * FROM c")
            assert [k["kek_id"] async for k in items] == [new_kek_id]
        assert new_kek_id != old_kek_id

        # The old key file is no longer needed: a process holding only the new one opens
        # everything sealed before the rotation, and seals new values.
        (key_dir / "kek-1").unlink()
        async with _cosmos(cosmos_server, database, LocalKeyFile(key_dir)) as (store, _):
            assert await store.get_call("call-1") == RECORD
            assert await store.list_messages(DEMO_CLINIC_ID) == [MESSAGE]
            later = replace(MESSAGE, message_id="call-1:message:2")
            assert await store.save_message(later) is True
            assert await store.list_messages(DEMO_CLINIC_ID) == [MESSAGE, later]

    asyncio.run(scenario())
