"""The Cosmos DB store's finished calls: the ``calls`` container, partitioned by
``/clinic_id``.

A call's transcript and tool calls are sealed (:data:`CALL_PHI`) right before the write
and opened right after the read, as in SQLite. :class:`CosmosCalls` is what
:class:`~reddytalk.providers.store.cosmos.CosmosStore` delegates to; what each read
costs is said here.

``get_call`` knows only the call id, so it is a cross-partition query (``WHERE c.id =
@id``). It fans out to every physical partition, about 3 RU each plus the document,
where a second "call id → clinic" document would make it a 1 RU point read but cost a
write (about 6 RU) on every call saved and a second write that can fail apart from the
first. Calls are written on every call and read by hand (the CLI, support), so the
query is the cheaper side.

``list_calls`` (the admin console, a page at a time) is one single-partition query, the
clinic's, ``SELECT TOP @limit <the fields that are not PHI> ... ORDER BY c.started_at
DESC``: the default indexing policy (every path range-indexed) serves an ORDER BY on one
path, and TOP stops the index scan at the page's end: the charge follows the page size,
not the length of the clinic's history. The projection leaves the sealed transcript and
tool calls in the account: they are neither sent nor opened. Ties on ``started_at`` are
ordered by call id within a page here; which of several calls started in the same
microsecond fall on a page's edge is Cosmos DB's choice (ordering by the call id as well
would need a composite index the containers do not declare). The loopback test server
runs the same query.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from azure.cosmos.aio import ContainerProxy

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import CallListing, CallRecord
from reddytalk.providers.store.checks import check_call_listing
from reddytalk.providers.store.cosmos_account import create_once, provider_errors
from reddytalk.providers.store.cosmos_documents import (
    CALL_PHI,
    call_from_document,
    call_to_document,
    item_id,
    listing_from_document,
)

__all__ = ["CosmosCalls"]

# Every field of a call's document but its PHI (CALL_PHI's keys): what a listing needs.
_LISTED = "c.call_id, c.clinic_id, c.started_at, c.ended_at, c.outcome, c.turn_timings"


class CosmosCalls:
    """Finished calls in the ``calls`` container, PHI sealed.

    Args:
        calls: The ``calls`` container.
        cipher: Seals PHI before it is written and opens it after it is read.
    """

    def __init__(self, *, calls: ContainerProxy, cipher: PhiCipher) -> None:
        self._calls = calls
        self._cipher = cipher

    def __repr__(self) -> str:
        return "CosmosCalls()"

    async def save_call(self, record: CallRecord, *, replace: bool = True) -> bool:
        """Store a finished call (an upsert, or a create when not ``replace``); whether
        it was stored."""
        document = await CALL_PHI.seal(self._cipher, call_to_document(record))
        with provider_errors("save call"):
            if not replace:
                return await create_once(self._calls, document, record.clinic_id)
            await self._calls.upsert_item(document)
            return True

    async def get_call(self, call_id: str, *, clinic_id: str | None = None) -> CallRecord | None:
        """A stored call, times in UTC, or None (a cross-partition query); with
        ``clinic_id`` only that clinic's, filtered by Cosmos before anything is opened."""
        query = "SELECT * FROM c WHERE c.id = @id"
        parameters: list[dict[str, Any]] = [{"name": "@id", "value": item_id(call_id)}]
        if clinic_id is not None:
            query += " AND c.clinic_id = @clinic_id"
            parameters.append({"name": "@clinic_id", "value": clinic_id})
        with provider_errors("read call"):
            items = self._calls.query_items(query, parameters=parameters)
            async for document in items:
                return call_from_document(await CALL_PHI.open(self._cipher, document))
        return None

    async def list_calls(
        self, clinic_id: str, *, limit: int = 50, before: dt.datetime | None = None
    ) -> list[CallListing]:
        """The clinic's calls, newest first, without their PHI (see the module).

        Raises:
            ValueError: ``limit`` is not 1 to 200, or ``before`` is naive.
        """
        before_iso = check_call_listing(limit, before)
        where = "c.clinic_id = @clinic_id"
        parameters: list[dict[str, Any]] = [
            {"name": "@limit", "value": limit},
            {"name": "@clinic_id", "value": clinic_id},
        ]
        if before_iso is not None:
            # Fixed-width UTC ISO text: its order is time order (cosmos_documents).
            where += " AND c.started_at < @before"
            parameters.append({"name": "@before", "value": before_iso})
        query = f"SELECT TOP @limit {_LISTED} FROM c WHERE {where} ORDER BY c.started_at DESC"
        with provider_errors("list calls"):
            items = self._calls.query_items(
                query, parameters=parameters, partition_key=clinic_id, max_item_count=limit
            )
            documents = [document async for document in items]
        listed = [listing_from_document(document) for document in documents]
        # Ties within the page by call id, newest first, as SQLite orders them.
        listed.sort(key=lambda c: (c.started_at, c.call_id), reverse=True)
        return listed
