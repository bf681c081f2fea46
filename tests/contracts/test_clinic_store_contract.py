"""The store contract for clinics: what every :class:`~reddytalk.ports.CallStore` promises
about clinics, the phone numbers that ring them, and the calls in progress to them.

Run on the SQLite store and on the Cosmos DB store (the loopback Cosmos DB REST server)
with the same assertions, as ``test_store_contract.py``. The tests at the end are the
Cosmos DB adapter's own: documents from before the clinic's newer fields, a save that
was interrupted, writes whose response was lost.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest
from azure.cosmos.aio import CosmosClient, DatabaseProxy
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

from reddytalk.errors import ClinicBusy, ProviderError
from reddytalk.phi import LocalKeyFile, PhiCipher
from reddytalk.ports import AuditEvent, CallRecord, Message
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic
from reddytalk.providers.store.clinics import clinic_to_document
from reddytalk.providers.store.cosmos import CosmosStore
from reddytalk.providers.store.cosmos_documents import item_id, number_to_document
from reddytalk.scheduling.model import AfterHours, Clinic, EhrConnection, Holiday

SECOND_NUMBER = "+15550100201"
THIRD_NUMBER = "+15550100202"
OTHER_NUMBER = "+15550100300"
OTHER_CLINIC_NUMBER = "+15550100400"
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)

# The keys clinic documents gained after the first format (read with the defaults).
NEWER_KEYS = ("other_phone_numbers", "holidays", "greeting", "after_hours", "ehr")


def full_clinic() -> Clinic:
    """The demo clinic with every field set, none to its default."""
    return replace(
        demo_clinic(),
        other_phone_numbers=(SECOND_NUMBER, THIRD_NUMBER),
        holidays=(Holiday(dt.date(2026, 12, 25), "Christmas Day"), Holiday(dt.date(2027, 1, 1))),
        greeting="Thank you for calling Reddy Family Clinic. How can I help?",
        after_hours=AfterHours(action="transfer", on_call_number="+15550100911"),
        ehr=EhrConnection(
            kind="fhir",
            fhir_base_url="https://fhir.example.org/r4",
            credentials_secret="reddy-ehr-client-secret",
        ),
        slot_minutes=15,
        stream_sample_rate_hz=24_000,
        languages=("en-US", "es-US"),
        voice_id="voice-7",
    )


def other_clinic(*other_numbers: str) -> Clinic:
    return replace(
        demo_clinic(),
        clinic_id="other-clinic",
        name="Other Clinic",
        phone_number=OTHER_CLINIC_NUMBER,
        other_phone_numbers=other_numbers,
    )


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _owners(store: ContractStore, numbers: tuple[str, ...]) -> dict[str, str | None]:
    """Which clinic each number rings (None: no clinic)."""
    found = [await store.find_clinic_by_number(number) for number in numbers]
    return {n: c.clinic_id if c else None for n, c in zip(numbers, found, strict=True)}


ALL_NUMBERS = (DEMO_PHONE_NUMBER, SECOND_NUMBER, THIRD_NUMBER, OTHER_NUMBER, OTHER_CLINIC_NUMBER)


# -- saving and finding -----------------------------------------------------------------


def test_a_clinic_is_found_by_its_number_and_its_id(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        clinic = demo_clinic()
        await store.save_clinic(clinic)

        assert await store.find_clinic_by_number(DEMO_PHONE_NUMBER) == clinic
        assert await store.get_clinic(DEMO_CLINIC_ID) == clinic
        assert await store.find_clinic_by_number("+15550199999") is None
        assert await store.find_clinic_by_number("5550100200") is None
        assert await store.get_clinic("no-such-clinic") is None

    run_with_store(store_backend, scenario)


def test_a_clinic_with_every_field_round_trips(store_backend: StoreBackend) -> None:
    clinic = full_clinic()
    assert set(NEWER_KEYS) <= set(clinic_to_document(clinic))

    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(clinic)

        async with store_backend.open() as other:  # another process reads it
            assert await other.get_clinic(DEMO_CLINIC_ID) == clinic
            for number in clinic.phone_numbers:
                assert await other.find_clinic_by_number(number) == clinic
            assert await other.list_clinics() == [clinic]

    run_with_store(store_backend, scenario)


def test_saving_a_clinic_again_maps_exactly_its_numbers(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(full_clinic())
        moved = replace(
            full_clinic(),
            name="Reddy Family Clinic North",
            phone_number=OTHER_NUMBER,
            other_phone_numbers=(SECOND_NUMBER,),
        )
        await store.save_clinic(moved)

        assert await store.get_clinic(DEMO_CLINIC_ID) == moved
        assert await store.find_clinic_by_number(OTHER_NUMBER) == moved
        assert await store.find_clinic_by_number(SECOND_NUMBER) == moved
        assert await store.find_clinic_by_number(DEMO_PHONE_NUMBER) is None  # released
        assert await store.find_clinic_by_number(THIRD_NUMBER) is None  # released

        # Released numbers are free: another clinic takes them.
        other = other_clinic(DEMO_PHONE_NUMBER, THIRD_NUMBER)
        await store.save_clinic(other)
        assert await _owners(store, ALL_NUMBERS) == {
            DEMO_PHONE_NUMBER: "other-clinic",
            SECOND_NUMBER: DEMO_CLINIC_ID,
            THIRD_NUMBER: "other-clinic",
            OTHER_NUMBER: DEMO_CLINIC_ID,
            OTHER_CLINIC_NUMBER: "other-clinic",
        }

    run_with_store(store_backend, scenario)


def test_the_main_number_may_become_another_of_the_clinic_s_numbers(
    store_backend: StoreBackend,
) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(full_clinic())
        swapped = replace(
            full_clinic(),
            phone_number=THIRD_NUMBER,
            other_phone_numbers=(DEMO_PHONE_NUMBER, SECOND_NUMBER),
        )
        await store.save_clinic(swapped)

        for number in (DEMO_PHONE_NUMBER, SECOND_NUMBER, THIRD_NUMBER):
            assert await store.find_clinic_by_number(number) == swapped
        assert swapped.phone_numbers[0] == THIRD_NUMBER  # the main one first

    run_with_store(store_backend, scenario)


def test_a_number_of_another_clinic_is_refused_and_nothing_changes(
    store_backend: StoreBackend,
) -> None:
    async def scenario(store: ContractStore) -> None:
        first = full_clinic()
        await store.save_clinic(first)
        other = other_clinic(OTHER_NUMBER)
        await store.save_clinic(other)
        before = await _owners(store, ALL_NUMBERS)

        # An existing clinic: a new number, and one of the first clinic's, after it.
        grabbing = replace(
            other, name="Renamed", other_phone_numbers=("+15550100401", THIRD_NUMBER)
        )
        with pytest.raises(ValueError, match=r"\+15550100202 belongs to another clinic"):
            await store.save_clinic(grabbing)
        # A new clinic.
        newcomer = replace(
            other_clinic("+15550100501", SECOND_NUMBER),
            clinic_id="new",
            phone_number="+15550100500",
        )
        with pytest.raises(ValueError, match=r"\+15550100201 belongs to another clinic"):
            await store.save_clinic(newcomer)

        assert await store.get_clinic("other-clinic") == other
        assert await store.get_clinic(DEMO_CLINIC_ID) == first
        assert await store.get_clinic("new") is None
        assert await _owners(store, ALL_NUMBERS) == before
        for number in ("+15550100401", "+15550100500", "+15550100501"):
            assert await store.find_clinic_by_number(number) is None
        assert [c.clinic_id for c in await store.list_clinics()] == [
            "other-clinic",
            DEMO_CLINIC_ID,
        ]

    run_with_store(store_backend, scenario)


@pytest.mark.parametrize(
    ("main", "others", "refusal"),
    [
        ("555-0100", (), "E.164"),
        (DEMO_PHONE_NUMBER, ("+0555",), "E.164"),
        (DEMO_PHONE_NUMBER, ("+1 555 010 0201",), "E.164"),
        (DEMO_PHONE_NUMBER, (SECOND_NUMBER, SECOND_NUMBER), "more than once"),
        (DEMO_PHONE_NUMBER, (DEMO_PHONE_NUMBER,), "more than once"),
    ],
)
def test_numbers_that_are_not_e164_or_listed_twice_are_refused(
    store_backend: StoreBackend, main: str, others: tuple[str, ...], refusal: str
) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(demo_clinic())
        clinic = replace(
            demo_clinic(), name="Changed", phone_number=main, other_phone_numbers=others
        )

        with pytest.raises(ValueError, match=refusal):
            await store.save_clinic(clinic)
        assert await store.get_clinic(DEMO_CLINIC_ID) == demo_clinic()
        assert await store.find_clinic_by_number(DEMO_PHONE_NUMBER) == demo_clinic()
        assert await store.find_clinic_by_number(SECOND_NUMBER) is None

    run_with_store(store_backend, scenario)


def test_concurrent_saves_of_a_clinic_map_exactly_the_numbers_of_the_one_kept(
    store_backend: StoreBackend,
) -> None:
    # Two processes save one clinic at once, each with its own numbers and one shared.
    # A save may fail with a retryable error (it lost an optimistic-concurrency race);
    # saved again, it lands. Whichever lands last, its numbers are exactly the mapping.
    numbers = [f"+1555010030{n}" for n in range(6)]
    variants = [
        replace(demo_clinic(), name=f"Variant {n}", other_phone_numbers=(number,))
        for n, number in enumerate(numbers)
    ]

    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(full_clinic())
        async with store_backend.open() as other:
            stores = [store, other] * 3
            results = await asyncio.gather(
                *(s.save_clinic(c) for s, c in zip(stores, variants, strict=True)),
                return_exceptions=True,
            )
        for clinic, result in zip(variants, results, strict=True):
            if isinstance(result, BaseException):
                assert isinstance(result, ProviderError) and result.retryable, result
                await store.save_clinic(clinic)

        kept = await store.get_clinic(DEMO_CLINIC_ID)
        assert kept in variants
        for number in (*numbers, *full_clinic().phone_numbers):
            found = await store.find_clinic_by_number(number)
            assert found == (kept if number in kept.phone_numbers else None), number

    run_with_store(store_backend, scenario)


def test_two_clinics_racing_for_a_number_one_gets_it_the_other_changes_nothing(
    store_backend: StoreBackend,
) -> None:
    shared = "+15550100999"
    first = replace(demo_clinic(), other_phone_numbers=(SECOND_NUMBER, shared))
    second = other_clinic(OTHER_NUMBER, shared)

    async def scenario(store: ContractStore) -> None:
        async with store_backend.open() as other:
            results = await asyncio.gather(
                store.save_clinic(first), other.save_clinic(second), return_exceptions=True
            )
        refused = [r for r in results if isinstance(r, BaseException)]
        assert len(refused) == 1 and isinstance(refused[0], ValueError), results
        assert shared in str(refused[0])
        winner, loser = (first, second) if results[0] is None else (second, first)

        assert await store.get_clinic(winner.clinic_id) == winner
        assert await store.get_clinic(loser.clinic_id) is None
        for number in winner.phone_numbers:
            assert await store.find_clinic_by_number(number) == winner
        for number in set(loser.phone_numbers) - set(winner.phone_numbers):
            assert await store.find_clinic_by_number(number) is None  # withdrawn

    run_with_store(store_backend, scenario)


# -- listing and removing ---------------------------------------------------------------


def test_clinics_are_listed_by_id(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        assert await store.list_clinics() == []
        b = other_clinic()
        a = replace(demo_clinic(), clinic_id="a-clinic", phone_number="+15550100600")
        for clinic in (demo_clinic(), b, a):
            await store.save_clinic(clinic)

        assert await store.list_clinics() == [a, b, demo_clinic()]

    run_with_store(store_backend, scenario)


def _record(call_id: str) -> CallRecord:
    return CallRecord(
        call_id=call_id,
        clinic_id=DEMO_CLINIC_ID,
        started_at=T0,
        ended_at=T0 + dt.timedelta(minutes=3),
        outcome="booked",
        transcript=(("caller", "This is Linda Wilson."),),
    )


def test_a_removed_clinic_is_gone_with_its_numbers_and_its_records_stay(
    store_backend: StoreBackend,
) -> None:
    message = Message("m-1", "call-1", DEMO_CLINIC_ID, T0, "Call me back.", "Linda Wilson")
    audit = AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Patient/pat_1", T0)

    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(full_clinic())
        await store.save_clinic(other_clinic())
        await store.save_call(_record("call-1"))
        await store.save_message(message)
        await store.record_audit(audit)

        assert await store.remove_clinic(DEMO_CLINIC_ID) is True

        assert await store.get_clinic(DEMO_CLINIC_ID) is None
        assert await store.list_clinics() == [other_clinic()]
        for number in full_clinic().phone_numbers:
            assert await store.find_clinic_by_number(number) is None
        assert await store.remove_clinic(DEMO_CLINIC_ID) is False
        # Medical-record retention: the records stay, and still open (the data keys stay).
        assert await store.get_call("call-1") == _record("call-1")
        assert await store.list_messages(DEMO_CLINIC_ID) == [message]
        assert await store.audit_trail("call-1") == [audit]
        # Its numbers are free; and the clinic may be added again.
        await store.save_clinic(other_clinic(DEMO_PHONE_NUMBER))
        again = replace(full_clinic(), phone_number="+15550100700", other_phone_numbers=())
        await store.save_clinic(again)
        assert await store.list_clinics() == [other_clinic(DEMO_PHONE_NUMBER), again]
        assert await store.find_clinic_by_number("+15550100700") == again
        assert await store.find_clinic_by_number(DEMO_PHONE_NUMBER) == other_clinic(
            DEMO_PHONE_NUMBER
        )

    run_with_store(store_backend, scenario)


def test_removing_a_clinic_that_does_not_exist_is_false(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        assert await store.remove_clinic("no-such-clinic") is False
        await store.save_clinic(demo_clinic())
        assert await store.remove_clinic("no-such-clinic") is False
        assert await store.get_clinic(DEMO_CLINIC_ID) == demo_clinic()

    run_with_store(store_backend, scenario)


# -- calls in progress ------------------------------------------------------------------


def test_a_clinic_with_a_call_in_progress_is_not_removed_until_it_ends(
    store_backend: StoreBackend,
) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(full_clinic())
        await store.call_started("call-1", DEMO_CLINIC_ID, at=_now())

        async with store_backend.open() as other:  # the admin's process, not the call's
            with pytest.raises(ClinicBusy, match=DEMO_CLINIC_ID) as refused:
                await other.remove_clinic(DEMO_CLINIC_ID)
        assert refused.value.calls_in_progress == 1
        assert await store.get_clinic(DEMO_CLINIC_ID) == full_clinic()
        for number in full_clinic().phone_numbers:
            assert await store.find_clinic_by_number(number) == full_clinic()

        await store.call_ended("call-1")
        assert await store.calls_in_progress(DEMO_CLINIC_ID, now=_now()) == 0
        assert await store.remove_clinic(DEMO_CLINIC_ID) is True

    run_with_store(store_backend, scenario)


def test_a_call_that_never_ended_stops_counting_after_4_hours(
    store_backend: StoreBackend,
) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_clinic(demo_clinic())
        await store.call_started("crashed", DEMO_CLINIC_ID, at=T0)

        count = store.calls_in_progress
        assert await count(DEMO_CLINIC_ID, now=T0) == 1
        assert await count(DEMO_CLINIC_ID, now=T0 + dt.timedelta(hours=4)) == 1
        assert await count(DEMO_CLINIC_ID, now=T0 + dt.timedelta(hours=4, seconds=1)) == 0

        # A worker that crashed mid-call (its call started 5 hours ago) blocks nothing.
        await store.call_started("crashed-too", DEMO_CLINIC_ID, at=_now() - dt.timedelta(hours=5))
        assert await store.remove_clinic(DEMO_CLINIC_ID) is True

    run_with_store(store_backend, scenario)


def test_calls_in_progress_are_counted_per_clinic_and_once_per_call(
    store_backend: StoreBackend,
) -> None:
    async def scenario(store: ContractStore) -> None:
        async with store_backend.open() as worker:  # the calls' process
            await worker.call_started("call-1", DEMO_CLINIC_ID, at=T0)
            await worker.call_started("call-2", DEMO_CLINIC_ID, at=T0 + dt.timedelta(minutes=1))
            await worker.call_started("call-2", DEMO_CLINIC_ID, at=T0 + dt.timedelta(minutes=1))
            await worker.call_started("call-3", "other-clinic", at=T0)
            await worker.call_ended("never-started")

        later = T0 + dt.timedelta(minutes=5)
        assert await store.calls_in_progress(DEMO_CLINIC_ID, now=later) == 2
        assert await store.calls_in_progress("other-clinic", now=later) == 1
        assert await store.calls_in_progress("no-such-clinic", now=later) == 0
        await store.call_ended("call-1")
        await store.call_ended("call-1")  # again: nothing
        assert await store.calls_in_progress(DEMO_CLINIC_ID, now=later) == 1

    run_with_store(store_backend, scenario)


def test_a_naive_call_start_is_refused(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        with pytest.raises(ValueError, match="aware"):
            await store.call_started("call-1", DEMO_CLINIC_ID, at=dt.datetime(2026, 3, 2, 9))
        with pytest.raises(ValueError, match="aware"):
            await store.calls_in_progress(DEMO_CLINIC_ID, now=dt.datetime(2026, 3, 2, 9))

    run_with_store(store_backend, scenario)


# -- the Cosmos DB adapter's own promises, apart from the contract ---------------------


@asynccontextmanager
async def _cosmos(
    server: CosmosServer, tmp_path: Path
) -> AsyncIterator[tuple[CosmosStore, DatabaseProxy]]:
    """A store on a fresh database, and the SDK's own handle on that database."""
    database = f"clinics-{uuid.uuid4().hex[:12]}"
    async with (
        cosmos_data_keys(server, database) as keys,
        open_cosmos_store(
            server, database, cipher=PhiCipher(kek=LocalKeyFile(tmp_path / "keys"), keys=keys)
        ) as store,
        CosmosClient(server.endpoint, EMULATOR_KEY, connection_verify=server.ca_file) as client,
    ):
        yield store, client.get_database_client(database)


def test_a_cosmos_clinic_document_from_before_the_newer_fields_still_reads(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    old = {k: v for k, v in clinic_to_document(demo_clinic()).items() if k not in NEWER_KEYS}
    old.update(id=item_id(DEMO_CLINIC_ID), phone_numbers=[DEMO_PHONE_NUMBER, SECOND_NUMBER])

    async def scenario() -> None:
        async with _cosmos(cosmos_server, tmp_path) as (store, database):
            await database.get_container_client("clinics").create_item(old)
            numbers = database.get_container_client("numbers")
            for number in (DEMO_PHONE_NUMBER, SECOND_NUMBER):  # mapped by the older code
                await numbers.create_item(number_to_document(number, DEMO_CLINIC_ID))

            assert await store.get_clinic(DEMO_CLINIC_ID) == demo_clinic()  # the defaults
            assert await store.find_clinic_by_number(SECOND_NUMBER) == demo_clinic()
            assert await store.list_clinics() == [demo_clinic()]

            await store.save_clinic(full_clinic())  # over the old document and numbers
            assert await store.get_clinic(DEMO_CLINIC_ID) == full_clinic()
            for number in full_clinic().phone_numbers:
                assert await store.find_clinic_by_number(number) == full_clinic()

    asyncio.run(scenario())


def test_numbers_an_interrupted_cosmos_save_left_are_finished_later(
    cosmos_server: CosmosServer, tmp_path: Path
) -> None:
    # A save takes its new numbers before it writes the clinic: stopped in between, they
    # point at the clinic, which does not list them (or does not exist yet).
    async def scenario() -> None:
        async with _cosmos(cosmos_server, tmp_path) as (store, database):
            numbers = database.get_container_client("numbers")
            await numbers.create_item(number_to_document(OTHER_NUMBER, "never-saved"))
            assert await store.find_clinic_by_number(OTHER_NUMBER) is None  # rings nobody
            assert await store.remove_clinic("never-saved") is False  # and is let go
            await store.save_clinic(other_clinic(OTHER_NUMBER))

            await store.save_clinic(demo_clinic())
            await numbers.create_item(number_to_document(THIRD_NUMBER, DEMO_CLINIC_ID))
            assert await store.find_clinic_by_number(THIRD_NUMBER) == demo_clinic()
            await store.save_clinic(full_clinic())  # lists it: kept
            await store.save_clinic(demo_clinic())  # does not: released
            assert await store.find_clinic_by_number(THIRD_NUMBER) is None
            assert await store.find_clinic_by_number(OTHER_NUMBER) == other_clinic(OTHER_NUMBER)

    asyncio.run(scenario())


@pytest.mark.parametrize("how", ["drop", "garble"])
def test_cosmos_clinic_writes_whose_response_was_lost_still_land(
    cosmos_server: CosmosServer, tmp_path: Path, how: Literal["drop", "garble"]
) -> None:
    # The write lands, its response is lost, the SDK sends it again and gets 409 or 412.
    # The save must see its own write there, not another writer's.
    async def scenario() -> None:
        async with _cosmos(cosmos_server, tmp_path) as (store, database):

            def lose_next(method: str, container: str) -> None:
                path = f"/dbs/{database.id}/colls/{container}/docs"
                cosmos_server.lose_next_response(method=method, path=path, how=how)

            lose_next("POST", "numbers")  # taking a number
            await store.save_clinic(full_clinic())
            lose_next("PUT", "numbers")  # re-writing a kept one
            lose_next("PUT", "clinics")  # replacing the clinic
            renamed = replace(full_clinic(), name="Reddy Family Clinic North")
            await store.save_clinic(renamed)

            assert await store.get_clinic(DEMO_CLINIC_ID) == renamed
            for number in renamed.phone_numbers:
                assert await store.find_clinic_by_number(number) == renamed
            lose_next("POST", "live_calls")  # an upsert: sent again, it lands the same
            await store.call_started("call-1", DEMO_CLINIC_ID, at=T0)
            lose_next("DELETE", "live_calls")  # sent again: 404, nothing to end
            await store.call_ended("call-1")
            assert await store.calls_in_progress(DEMO_CLINIC_ID, now=T0) == 0

    asyncio.run(scenario())
