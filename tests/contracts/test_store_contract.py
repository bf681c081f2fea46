"""The store contract: what every :class:`~reddytalk.ports.CallStore` promises.

One suite, run on the SQLite store and on the Cosmos DB store (the loopback Cosmos DB
REST server), with the same assertions; clinics, their numbers and their calls in
progress are ``test_clinic_store_contract.py``'s. Where "another process" matters, a second
store is opened over the same records. Both seal PHI (``store_fixtures``); what the
documents hold at rest is ``test_cosmos_sealing.py``'s to check. The tests at the end
are the Cosmos DB adapter's own (its containers, its errors, writes whose response was
lost), apart from the contract.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from azure.cosmos.aio import CosmosClient
from store_fixtures import (  # the fixtures are found by pytest in this module's namespace
    EMULATOR_KEY,
    ContractStore,
    CosmosServer,
    StoreBackend,
    cosmos_data_keys,
    cosmos_server_fixture,  # noqa: F401
    open_cosmos_store,
    run_with_store,
    store_backend_fixture,  # noqa: F401
)

from reddytalk.errors import ProviderError
from reddytalk.phi import LocalKeyFile, MemoryDataKeys, PhiCipher
from reddytalk.ports import AuditEvent, CallRecord, Message, OutboxMessage
from reddytalk.providers.seed import DEMO_CLINIC_ID
from reddytalk.providers.store.cosmos import CONTAINERS, ContainerSpec, CosmosStore

CHICAGO = ZoneInfo("America/Chicago")
OTHER_NUMBER = "+15550100300"
CALLER = "+15555550123"


def _call(call_id: str = "call-1", *, outcome: str = "booked") -> CallRecord:
    return CallRecord(
        call_id=call_id,
        clinic_id=DEMO_CLINIC_ID,
        started_at=dt.datetime(2026, 3, 2, 9, 0, 5, 250_000, tzinfo=CHICAGO),
        ended_at=dt.datetime(2026, 3, 2, 9, 3, 41, tzinfo=CHICAGO),
        outcome=outcome,
        transcript=(("receptionist", "Reddy Family Clinic, how can I help?"), ("caller", "Hi.")),
        tool_calls=({"name": "find_slots", "arguments": {"day": "tomorrow"}},),
        turn_timings=({"turn": 1, "stt_ms": 120, "llm_first_token_ms": 180.5},),
    )


def _message(message_id: str, *, clinic_id: str = DEMO_CLINIC_ID, minute: int = 0) -> Message:
    return Message(
        message_id=message_id,
        call_id="call-1",
        clinic_id=clinic_id,
        taken_at=dt.datetime(2026, 3, 2, 9, minute, tzinfo=CHICAGO),
        text=f"Please call me back ({message_id}).",
        caller_name="Linda Wilson",
        patient_id="pat_2" if minute % 2 else None,
    )


# -- calls ------------------------------------------------------------------------------


def test_a_call_is_stored_and_read_back_in_utc(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        assert await store.save_call(_call()) is True

        stored = await store.get_call("call-1")
        assert stored == _call()
        assert stored is not None and stored.started_at.utcoffset() == dt.timedelta(0)
        assert stored.started_at.microsecond == 250_000
        assert await store.get_call("call-2") is None

    run_with_store(store_backend, scenario)


def test_saving_a_call_again_replaces_it(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        assert await store.save_call(_call()) is True
        assert await store.save_call(_call(outcome="transferred")) is True

        assert await store.get_call("call-1") == _call(outcome="transferred")

    run_with_store(store_backend, scenario)


def test_a_save_that_must_not_replace_keeps_the_first_record(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        assert await store.save_call(_call(), replace=False) is True
        assert await store.save_call(_call(outcome="no-answer"), replace=False) is False
        assert await store.get_call("call-1") == _call()

        assert await store.save_call(_call("call-2"), replace=True) is True
        assert await store.save_call(_call("call-2", outcome="stub"), replace=False) is False
        assert await store.get_call("call-2") == _call("call-2")

    run_with_store(store_backend, scenario)


def test_a_naive_time_is_refused_and_nothing_is_stored(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        with pytest.raises(ValueError, match="aware"):
            await store.save_call(replace(_call(), ended_at=dt.datetime(2026, 3, 2, 9, 3)))
        with pytest.raises(ValueError, match="aware"):
            await store.save_message(replace(_message("m-1"), taken_at=dt.datetime(2026, 3, 2)))
        assert await store.get_call("call-1") is None
        assert await store.list_messages(DEMO_CLINIC_ID) == []

    run_with_store(store_backend, scenario)


def test_racing_first_saves_of_one_call_store_exactly_one(store_backend: StoreBackend) -> None:
    records = [_call(outcome=f"outcome-{n}") for n in range(8)]

    async def scenario(store: ContractStore) -> None:
        async with store_backend.open() as other:
            stores = [store, other] * 4
            stored = await asyncio.gather(
                *(s.save_call(r, replace=False) for s, r in zip(stores, records, strict=True))
            )

        assert sum(stored) == 1
        assert await store.get_call("call-1") == records[stored.index(True)]

    run_with_store(store_backend, scenario)


# -- audit ------------------------------------------------------------------------------


def test_the_audit_trail_is_in_append_order(store_backend: StoreBackend) -> None:
    # The times run backwards, so a trail sorted by time would come out reversed.
    at = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
    first = AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Patient/pat_1", at, {"why": "verify"})
    second = AuditEvent(
        "call-1", DEMO_CLINIC_ID, "create", "Appointment/appt_1", at - dt.timedelta(seconds=1)
    )
    other = AuditEvent("call-2", DEMO_CLINIC_ID, "read", "Patient/pat_2", at)
    third = replace(first, action="search", at=at - dt.timedelta(minutes=1))

    async def scenario(store: ContractStore) -> None:
        for event in (first, other, second, first, third):
            await store.record_audit(event)

        assert await store.audit_trail("call-1") == [first, second, first, third]
        assert await store.audit_trail("call-2") == [other]
        assert await store.audit_trail("call-3") == []

    run_with_store(store_backend, scenario)


def _outbox_message(
    message_id: str = "sms-confirmation:call-1:book:a1",
    *,
    clinic_id: str = DEMO_CLINIC_ID,
    minute: int = 4,
) -> OutboxMessage:
    return OutboxMessage(
        message_id=message_id,
        clinic_id=clinic_id,
        call_id="call-1",
        created_at=dt.datetime(2026, 3, 2, 9, minute, tzinfo=CHICAGO),
        to_number=CALLER,
        text="Reddy Family Clinic: your appointment with Doctor Patel on Tue, Mar 3 is booked.",
    )


# -- messages ---------------------------------------------------------------------------


def test_a_message_is_kept_once(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        message = _message("call-1:message:1")
        assert await store.save_message(message) is True
        assert await store.save_message(replace(message, text="Changed.")) is False

        assert await store.list_messages(DEMO_CLINIC_ID) == [message]

    run_with_store(store_backend, scenario)


def test_messages_are_listed_per_clinic_oldest_first(store_backend: StoreBackend) -> None:
    late = _message("m-late", minute=30)
    early = _message("m-early", minute=5)
    tie_b = _message("m-tie-b", minute=10)
    tie_a = _message("m-tie-a", minute=10)
    elsewhere = _message("m-elsewhere", clinic_id="other-clinic", minute=1)

    async def scenario(store: ContractStore) -> None:
        for message in (late, elsewhere, tie_b, early, tie_a):
            assert await store.save_message(message) is True

        assert await store.list_messages(DEMO_CLINIC_ID) == [early, tie_a, tie_b, late]
        assert await store.list_messages("other-clinic") == [elsewhere]
        assert await store.list_messages("no-such-clinic") == []

    run_with_store(store_backend, scenario)


# -- a call's numbers and the outbox ---------------------------------------------------


def test_a_calls_numbers_are_kept_per_party_and_read_by_its_clinic_only(
    store_backend: StoreBackend,
) -> None:
    odd_party = "patient:a/b c+?#"  # any text: patient ids come from the EHR

    async def scenario(store: ContractStore) -> None:
        save = store.save_call_number
        await save("call-1", DEMO_CLINIC_ID, party="caller", number=CALLER)
        await save("call-1", DEMO_CLINIC_ID, party="patient:p1", number="+15550100177")
        await save("call-1", DEMO_CLINIC_ID, party=odd_party, number="+15550100188")
        await save("call-1", DEMO_CLINIC_ID, party="caller", number="+15555550199")  # replaces

        async with store_backend.open() as other:  # another process reads them
            get = other.get_call_number
            assert await get("call-1", DEMO_CLINIC_ID, party="caller") == "+15555550199"
            assert await get("call-1", DEMO_CLINIC_ID, party="patient:p1") == "+15550100177"
            assert await get("call-1", DEMO_CLINIC_ID, party=odd_party) == "+15550100188"
            assert await get("call-1", DEMO_CLINIC_ID, party="patient:p2") is None
            assert await get("call-2", DEMO_CLINIC_ID, party="caller") is None
            assert await get("call-1", "other-clinic", party="caller") is None

    run_with_store(store_backend, scenario)


@pytest.mark.parametrize("number", ["5555550123", "+0555", "+1 555 555 0123", ""])
def test_a_call_number_that_is_not_e164_is_refused(
    store_backend: StoreBackend, number: str
) -> None:
    async def scenario(store: ContractStore) -> None:
        with pytest.raises(ValueError, match="E.164") as refused:
            await store.save_call_number("call-1", DEMO_CLINIC_ID, party="caller", number=number)
        assert not number or number not in str(refused.value)
        assert await store.get_call_number("call-1", DEMO_CLINIC_ID, party="caller") is None

    run_with_store(store_backend, scenario)


def test_the_outbox_keeps_a_message_once_and_lists_per_clinic_oldest_first(
    store_backend: StoreBackend,
) -> None:
    first = _outbox_message()
    later = _outbox_message("sms-2", minute=5)
    tie_b = _outbox_message("sms-tie-b", minute=3)
    # The same instant as tie_b, written in another zone whose local clock reads later.
    tie_a = replace(
        _outbox_message("sms-tie-a", minute=3),
        created_at=tie_b.created_at.astimezone(ZoneInfo("Asia/Tokyo")),
    )
    elsewhere = _outbox_message("sms-3", clinic_id="other-clinic")

    async def scenario(store: ContractStore) -> None:
        for message in (later, first, tie_b, elsewhere, tie_a):
            assert await store.add_to_outbox(message) is True
        changed = replace(first, text="changed", to_number=OTHER_NUMBER, status="sent")
        assert await store.add_to_outbox(changed) is False

        listed = await store.list_outbox(DEMO_CLINIC_ID)
        assert listed == [tie_a, tie_b, first, later]  # the repeat changed nothing
        assert listed[0].created_at.utcoffset() == dt.timedelta(0)
        assert {m.status for m in listed} == {"queued"}
        assert await store.list_outbox("other-clinic") == [elsewhere]
        assert await store.list_outbox("no-such-clinic") == []
        assert CALLER not in repr(listed)  # PHI stays out of reprs

    run_with_store(store_backend, scenario)


def test_an_outbox_message_with_a_naive_time_is_refused(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        naive = replace(_outbox_message(), created_at=dt.datetime(2026, 3, 2, 9, 4))
        with pytest.raises(ValueError, match="aware"):
            await store.add_to_outbox(naive)
        assert await store.list_outbox(DEMO_CLINIC_ID) == []

    run_with_store(store_backend, scenario)


def test_racing_adds_of_one_outbox_message_keep_exactly_one(store_backend: StoreBackend) -> None:
    texts = [replace(_outbox_message(), text=f"Text {n}.") for n in range(8)]

    async def scenario(store: ContractStore) -> None:
        async with store_backend.open() as other:
            stores = [store, other] * 4
            kept = await asyncio.gather(
                *(s.add_to_outbox(m) for s, m in zip(stores, texts, strict=True))
            )

        assert sum(kept) == 1
        assert await store.list_outbox(DEMO_CLINIC_ID) == [texts[kept.index(True)]]

    run_with_store(store_backend, scenario)


# -- idempotency claims -----------------------------------------------------------------


def test_a_key_is_claimed_once_until_released(store_backend: StoreBackend) -> None:
    # Keys are any text: event ids, and whatever a caller builds from them.
    keys = ["incoming-call:c-1", "call-event:a/b?c#d e+f%", "x" * 500]

    async def scenario(store: ContractStore) -> None:
        for key in keys:
            assert await store.claim(key) is True
            assert await store.claim(key) is False
        await store.release(keys[1])
        assert await store.claim(keys[1]) is True
        assert await store.claim(keys[0]) is False
        await store.release("never-claimed")

    run_with_store(store_backend, scenario)


def test_racing_claims_of_one_key_win_once(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        async with store_backend.open() as other:
            stores = [store, other] * 5
            won = await asyncio.gather(*(s.claim("call-event:e-1") for s in stores))
            assert sum(won) == 1

            await store.release("call-event:e-1")
            assert await other.claim("call-event:e-1") is True

    run_with_store(store_backend, scenario)


# -- the Cosmos DB adapter's own promises, apart from the contract ---------------------


def _unused_cipher(tmp_path: Path) -> PhiCipher:
    """A cipher for a store that seals nothing in the test (it is required)."""
    return PhiCipher(kek=LocalKeyFile(tmp_path / "keys"), keys=MemoryDataKeys())


def test_cosmos_containers_are_made_as_declared(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    database = f"containers-{uuid.uuid4().hex[:12]}"

    async def scenario() -> dict[str, ContainerSpec]:
        async with open_cosmos_store(
            cosmos_server, database, cipher=_unused_cipher(tmp_path)
        ) as store:
            await store.ensure_containers()  # again: changes nothing
        async with CosmosClient(
            cosmos_server.endpoint, EMULATOR_KEY, connection_verify=cosmos_server.ca_file
        ) as client:
            made = client.get_database_client(database).list_containers()
            return {
                c["id"]: ContainerSpec(c["partitionKey"]["paths"][0], c.get("defaultTtl"))
                async for c in made
            }

    made = asyncio.run(scenario())
    assert made == dict(CONTAINERS)
    assert made["data_keys"] == ContainerSpec("/clinic_id", None)  # a key never expires
    assert made["call_numbers"] == ContainerSpec("/call_id", 86_400)  # PHI kept a day
    assert made["live_calls"] == ContainerSpec("/call_id", 14_400)  # a crashed call: 4 h


def test_an_unreachable_cosmos_account_is_a_retryable_provider_error(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on once it closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]

    async def scenario() -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await CosmosStore.connect(
                endpoint=f"https://127.0.0.1:{port}/",
                credential=EMULATOR_KEY,
                database="reddytalk-phi",
                cipher=_unused_cipher(tmp_path),
            )
        return caught.value

    error = asyncio.run(scenario())
    assert error.retryable is True
    assert error.__cause__ is None and "reddytalk-phi" not in str(error)


@pytest.mark.parametrize("how", ["drop", "garble"])
def test_a_create_whose_response_was_lost_still_counts_as_done(
    cosmos_server: CosmosServer, tmp_path: Path, how: Literal["drop", "garble"]
) -> None:
    # The create lands, its response is lost, the SDK sends it again and gets 409. The
    # store must see its own write in that 409, or the only claimant loses its claim.
    database = f"lost-{uuid.uuid4().hex[:12]}"
    key_dir = tmp_path / "keys"

    def lose_next_create(container: str) -> None:
        path = f"/dbs/{database}/colls/{container}/docs"
        cosmos_server.lose_next_response(method="POST", path=path, how=how)

    async def scenario() -> None:
        async with (
            cosmos_data_keys(cosmos_server, database) as keys,
            open_cosmos_store(
                cosmos_server, database, cipher=PhiCipher(kek=LocalKeyFile(key_dir), keys=keys)
            ) as store,
        ):
            lose_next_create("claims")
            assert await store.claim("incoming-call:c-1") is True
            assert await store.claim("incoming-call:c-1") is False
            lose_next_create("messages")
            assert await store.save_message(_message("m-1")) is True
            assert await store.list_messages(DEMO_CLINIC_ID) == [_message("m-1")]
            lose_next_create("calls")
            assert await store.save_call(_call(), replace=False) is True
            assert await store.get_call("call-1") == _call()
            lose_next_create("call_numbers")  # an upsert: sent again, it lands the same
            await store.save_call_number("call-1", DEMO_CLINIC_ID, party="caller", number=CALLER)
            assert await store.get_call_number("call-1", DEMO_CLINIC_ID, party="caller") == CALLER
            lose_next_create("outbox")
            assert await store.add_to_outbox(_outbox_message()) is True
            assert await store.list_outbox(DEMO_CLINIC_ID) == [_outbox_message()]

    asyncio.run(scenario())


def test_a_clinics_appointment_changes_are_listed_newest_first_from_a_time_on(
    store_backend: StoreBackend,
) -> None:
    at = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)

    def change(call_id: str, appointment: str, what: str, minutes: int, **more: str) -> AuditEvent:
        action = "update" if what == "cancelled" else "create"
        details = {"change": what, **more}
        when = at + dt.timedelta(minutes=minutes)
        return AuditEvent(call_id, DEMO_CLINIC_ID, action, f"Appointment/{appointment}", when,
                          details)  # fmt: skip

    booked = change("call-1", "a1", "booked", 1)
    moved = change("call-2", "a2", "moved", 5)
    moved_from = change("call-2", "a1", "cancelled", 5, moved_to="Appointment/a2")
    too_old = change("call-0", "a0", "booked", -60)
    unrelated = [
        AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Patient/p1", at),  # not an appointment
        AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Appointment/a1", at),  # a read
        replace(booked, clinic_id="other-clinic", call_id="call-9"),  # another clinic's
    ]

    async def scenario(store: ContractStore) -> None:
        for event in (too_old, booked, *unrelated, moved, moved_from):
            await store.record_audit(event)

        since = at - dt.timedelta(minutes=30)
        assert await store.appointment_changes(DEMO_CLINIC_ID, since=since) == [
            moved_from, moved, booked
        ]  # fmt: skip
        assert await store.appointment_changes("no-clinic", since=since) == []
        with pytest.raises(ValueError):
            await store.appointment_changes(DEMO_CLINIC_ID, since=dt.datetime(2026, 3, 2))

    run_with_store(store_backend, scenario)
