"""The store contract for the clinic's admin console: what every
:class:`~reddytalk.ports.CallStore` promises it.

A clinic's calls listed a page at a time without their PHI, its messages marked open or
done, and the audit trail that records the console's views. One suite, run on the
SQLite store and on the Cosmos DB store (the loopback Cosmos DB REST server), as
``test_store_contract.py``. "Opens no PHI" is the stores' cipher not being asked to open
anything (``StoreBackend.phi_opens``). The test at the end is the Cosmos DB adapter's
own (a patch whose response was lost).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo

import pytest
from store_fixtures import (  # the fixtures are found by pytest in this module's namespace
    ContractStore,
    CosmosServer,
    StoreBackend,
    cosmos_data_keys,
    cosmos_server_fixture,  # noqa: F401
    open_cosmos_store,
    run_with_store,
    store_backend_fixture,  # noqa: F401
)

from reddytalk.phi import LocalKeyFile, PhiCipher
from reddytalk.ports import AuditEvent, CallListing, CallRecord, Message
from reddytalk.providers.seed import DEMO_CLINIC_ID

CHICAGO = ZoneInfo("America/Chicago")
TOKYO = ZoneInfo("Asia/Tokyo")
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)
OTHER_CLINIC = "other-clinic"


def _call(call_id: str, minutes: int, *, clinic_id: str = DEMO_CLINIC_ID) -> CallRecord:
    """A call that started ``minutes`` after T0, written in Chicago time."""
    started = (T0 + dt.timedelta(minutes=minutes, microseconds=minutes)).astimezone(CHICAGO)
    return CallRecord(
        call_id=call_id,
        clinic_id=clinic_id,
        started_at=started,
        ended_at=started + dt.timedelta(minutes=2, seconds=30),
        outcome="booked" if minutes % 2 else "message_taken",
        transcript=(("receptionist", "How can I help?"), ("caller", "This is Linda Wilson.")),
        tool_calls=({"name": "verify_patient", "arguments": {"family_name": "Wilson"}},),
        turn_timings=({"turn": 1, "stt_ms": 120 + minutes, "llm_first_token_ms": 180.5},),
    )


def _listing(record: CallRecord) -> CallListing:
    return CallListing(
        call_id=record.call_id,
        clinic_id=record.clinic_id,
        started_at=record.started_at,
        ended_at=record.ended_at,
        outcome=record.outcome,
        turn_timings=record.turn_timings,
    )


def _message(message_id: str = "call-1:message:1", *, minute: int = 0) -> Message:
    return Message(
        message_id=message_id,
        call_id="call-1",
        clinic_id=DEMO_CLINIC_ID,
        taken_at=T0 + dt.timedelta(minutes=minute),
        text="Please call me back about my refill.",
        caller_name="Linda Wilson",
        patient_id="pat_2",
    )


# -- the clinic's calls -----------------------------------------------------------------


def test_calls_are_listed_newest_first_and_only_the_clinics_own(
    store_backend: StoreBackend,
) -> None:
    # Saved out of order; one of them at another clinic, started later than all.
    calls = [_call(f"call-{n}", minutes) for n, minutes in enumerate((30, 5, 50, 20, 40))]
    elsewhere = _call("call-elsewhere", 90, clinic_id=OTHER_CLINIC)

    async def scenario(store: ContractStore) -> None:
        for record in (*calls[:2], elsewhere, *calls[2:]):
            assert await store.save_call(record) is True

        listed = await store.list_calls(DEMO_CLINIC_ID)
        newest_first = sorted(calls, key=lambda r: r.started_at, reverse=True)
        assert listed == [_listing(r) for r in newest_first]
        assert all(c.started_at.utcoffset() == dt.timedelta(0) for c in listed)  # UTC
        assert await store.list_calls(OTHER_CLINIC) == [_listing(elsewhere)]
        assert await store.list_calls("no-such-clinic") == []

    run_with_store(store_backend, scenario)


def test_listing_calls_opens_no_phi(store_backend: StoreBackend) -> None:
    async def scenario(store: ContractStore) -> None:
        for n in range(3):
            await store.save_call(_call(f"call-{n}", n))
        opens = store_backend.phi_opens

        before = opens.count
        assert len(await store.list_calls(DEMO_CLINIC_ID, limit=2)) == 2
        assert len(await store.list_calls(DEMO_CLINIC_ID, before=T0 + dt.timedelta(hours=1))) == 3
        assert opens.count == before  # not one transcript or tool call opened

        # The count does see opens: reading the record opens its transcript and tool calls.
        assert await store.get_call("call-1") == _call("call-1", 1)
        assert opens.count == before + 2

    run_with_store(store_backend, scenario)


def test_a_call_read_for_its_clinic_is_never_opened_for_another(
    store_backend: StoreBackend,
) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_call(_call("call-1", 1))
        opens = store_backend.phi_opens
        before = opens.count
        assert await store.get_call("call-1", clinic_id=OTHER_CLINIC) is None
        assert await store.get_call("no-such-call", clinic_id=DEMO_CLINIC_ID) is None
        assert opens.count == before  # the other clinic's transcript was not opened
        assert await store.get_call("call-1", clinic_id=DEMO_CLINIC_ID) == _call("call-1", 1)
        assert opens.count == before + 2

    run_with_store(store_backend, scenario)


def test_calls_are_paged_with_before_without_overlap_or_gaps(store_backend: StoreBackend) -> None:
    calls = [_call(f"call-{minutes:02}", minutes) for minutes in (7, 3, 11, 1, 9, 5, 13)]

    async def scenario(store: ContractStore) -> None:
        for record in calls:
            await store.save_call(record)

        pages: list[list[CallListing]] = []
        before: dt.datetime | None = None
        while page := await store.list_calls(DEMO_CLINIC_ID, limit=3, before=before):
            pages.append(page)
            # The next page starts before the last call listed, in whatever zone it is given.
            before = page[-1].started_at.astimezone(TOKYO)

        assert [len(page) for page in pages] == [3, 3, 1]
        listed = [c for page in pages for c in page]
        newest_first = sorted(calls, key=lambda r: r.started_at, reverse=True)
        assert listed == [_listing(r) for r in newest_first]  # each call once, in order

        # ``before`` is strict: a call that started at that instant is on no later page.
        at_13 = calls[-1].started_at
        assert [c.call_id for c in await store.list_calls(DEMO_CLINIC_ID, before=at_13)][:1] == [
            "call-11"
        ]
        earliest = min(r.started_at for r in calls)
        assert await store.list_calls(DEMO_CLINIC_ID, before=earliest) == []

    run_with_store(store_backend, scenario)


@pytest.mark.parametrize("limit", [0, -1, 201, 10_000])
def test_a_limit_out_of_range_is_refused(store_backend: StoreBackend, limit: int) -> None:
    async def scenario(store: ContractStore) -> None:
        await store.save_call(_call("call-1", 1))
        with pytest.raises(ValueError, match="limit"):
            await store.list_calls(DEMO_CLINIC_ID, limit=limit)

    run_with_store(store_backend, scenario)


def test_a_limit_bounds_the_page(store_backend: StoreBackend) -> None:
    calls = [_call(f"call-{n:03}", n) for n in range(205)]

    async def scenario(store: ContractStore) -> None:
        await asyncio.gather(*(store.save_call(record) for record in calls))

        newest = [_listing(r) for r in reversed(calls)]
        assert await store.list_calls(DEMO_CLINIC_ID, limit=1) == newest[:1]
        assert await store.list_calls(DEMO_CLINIC_ID) == newest[:50]  # the default
        assert await store.list_calls(DEMO_CLINIC_ID, limit=200) == newest[:200]
        with pytest.raises(ValueError, match="aware"):
            await store.list_calls(DEMO_CLINIC_ID, before=dt.datetime(2026, 3, 2, 16))

    run_with_store(store_backend, scenario)


# -- the clinic's messages --------------------------------------------------------------


def test_a_message_is_marked_done_and_open_again(store_backend: StoreBackend) -> None:
    message = _message()
    other = _message("call-2:message:1", minute=5)

    async def scenario(store: ContractStore) -> None:
        await store.save_message(message)
        await store.save_message(other)
        opens = store_backend.phi_opens
        before = opens.count

        assert await store.set_message_status(DEMO_CLINIC_ID, message.message_id, status="done")
        assert await store.set_message_status(DEMO_CLINIC_ID, message.message_id, status="done")
        assert opens.count == before  # the text and caller name stay sealed

        async with store_backend.open() as console:  # another process sees it
            assert await console.list_messages(DEMO_CLINIC_ID) == [
                replace(message, status="done"),
                other,
            ]
            assert await console.set_message_status(
                DEMO_CLINIC_ID, message.message_id, status="open"
            )
        assert await store.list_messages(DEMO_CLINIC_ID) == [message, other]

    run_with_store(store_backend, scenario)


def test_another_clinics_message_is_not_found_and_not_changed(
    store_backend: StoreBackend,
) -> None:
    message = _message()

    async def scenario(store: ContractStore) -> None:
        await store.save_message(message)

        assert not await store.set_message_status(OTHER_CLINIC, message.message_id, status="done")
        assert not await store.set_message_status(DEMO_CLINIC_ID, "no-such-message", status="done")
        assert await store.list_messages(DEMO_CLINIC_ID) == [message]
        assert await store.list_messages(OTHER_CLINIC) == []

    run_with_store(store_backend, scenario)


@pytest.mark.parametrize("status", ["closed", "", "DONE", "open "])
def test_a_status_other_than_open_or_done_is_refused(
    store_backend: StoreBackend, status: str
) -> None:
    message = _message()

    async def scenario(store: ContractStore) -> None:
        await store.save_message(message)
        await store.set_message_status(DEMO_CLINIC_ID, message.message_id, status="done")

        with pytest.raises(ValueError, match="'open' or 'done'"):
            await store.set_message_status(DEMO_CLINIC_ID, message.message_id, status=status)
        with pytest.raises(ValueError, match="'open' or 'done'"):
            await store.set_message_status(OTHER_CLINIC, "no-such-message", status=status)
        assert await store.list_messages(DEMO_CLINIC_ID) == [replace(message, status="done")]

    run_with_store(store_backend, scenario)


# -- the audit trail of the console's views ---------------------------------------------


def test_a_console_view_is_audited_with_its_details_oldest_first(
    store_backend: StoreBackend,
) -> None:
    during = AuditEvent("call-1", DEMO_CLINIC_ID, "read", "Patient/pat_1", T0, {"why": "verify"})
    viewed = AuditEvent(
        call_id="call-1",
        clinic_id=DEMO_CLINIC_ID,
        action="call.viewed",
        resource="call",
        at=T0 + dt.timedelta(days=1),
        details={"actor": "admin:ops@clinic.example/7", "via": "console"},
    )
    # Another admin, a second later; written in another zone (read back in UTC).
    again = replace(
        viewed, at=(viewed.at + dt.timedelta(seconds=1)).astimezone(TOKYO), details={"actor": "b"}
    )
    elsewhere = replace(viewed, call_id="call-2", details={"actor": "admin-9"})
    # A view of no one call (the clinic's messages) is kept under the clinic's id.
    messages_viewed = AuditEvent(
        DEMO_CLINIC_ID, DEMO_CLINIC_ID, "messages.viewed", "messages", T0, {"actor": "a"}
    )

    async def scenario(store: ContractStore) -> None:
        for event in (during, viewed, elsewhere, messages_viewed, again):
            await store.record_audit(event)

        async with store_backend.open() as auditor:  # another process reads it back
            trail = await auditor.audit_trail("call-1")
        assert trail == [during, viewed, again]
        assert [e.details for e in trail] == [
            {"why": "verify"},
            {"actor": "admin:ops@clinic.example/7", "via": "console"},
            {"actor": "b"},
        ]
        assert trail[2].at.utcoffset() == dt.timedelta(0)
        assert await store.audit_trail("call-2") == [elsewhere]
        assert await store.audit_trail(DEMO_CLINIC_ID) == [messages_viewed]

    run_with_store(store_backend, scenario)


# -- the Cosmos DB adapter's own promises, apart from the contract ---------------------


@pytest.mark.parametrize("how", ["drop", "garble"])
def test_a_status_patch_whose_response_was_lost_still_counts_as_done(
    cosmos_server: CosmosServer, tmp_path: Path, how: Literal["drop", "garble"]
) -> None:
    # The patch lands and its response is lost: the SDK sends it again (``retry_write``),
    # and a ``set`` applied twice is applied once.
    database = f"patch-{uuid.uuid4().hex[:12]}"
    message = _message()

    async def scenario() -> None:
        async with (
            cosmos_data_keys(cosmos_server, database) as keys,
            open_cosmos_store(
                cosmos_server,
                database,
                cipher=PhiCipher(kek=LocalKeyFile(tmp_path / "keys"), keys=keys),
            ) as store,
        ):
            await store.save_message(message)
            cosmos_server.lose_next_response(
                method="PATCH", path=f"/dbs/{database}/colls/messages/docs", how=how
            )
            done = await store.set_message_status(DEMO_CLINIC_ID, message.message_id, status="done")
            assert done is True
            assert await store.list_messages(DEMO_CLINIC_ID) == [replace(message, status="done")]

    asyncio.run(scenario())
