"""The cloud :class:`~reddytalk.ports.CallStore`: ReddyTalk's own records in Azure Cosmos DB.

Containers (:data:`CONTAINERS`; Bicep creates the same ones in Azure):

========  ===============  ==============================================================
name      partition key    holds
========  ===============  ==============================================================
clinics   /clinic_id       one document per clinic (:func:`clinic_to_document`) and the
                           numbers mapped to it
numbers   /phone_number    one document per phone number naming its clinic: a call finds
                           its clinic with two point reads (number, clinic), no query
calls     /clinic_id       one document per finished call, transcript included
audit     /call_id         append-only; a call's trail is one single-partition query, and
                           no logical partition grows without bound (unlike /clinic_id)
messages  /clinic_id       messages for staff; a clinic's list is one single-partition query
claims    /id              idempotency claims; ``default_ttl`` 7 days reclaims the space
                           (Event Grid and ACS stop redelivering long before)
========  ===============  ==============================================================

``get_call`` knows only the call id, so it is a cross-partition query on ``calls``
(``WHERE c.id = @id``). It fans out to every physical partition, about 3 RU each plus
the document, where a second "call id → clinic" document would make it a 1 RU point
read but cost a write (about 6 RU) on every call saved and a second write that can
fail apart from the first. Calls are written on every call and read by hand (the
CLI, support), so the query is the cheaper side.

Atomicity comes from Cosmos DB, never from a read before a write: "create if absent"
is ``create_item``, whose 409 means the id exists (claims, messages, the first record
of a call, a phone number); read-modify-write (a clinic's numbers) replaces with the
ETag read (``IfNotModified``), and a 412 is a retryable :class:`ProviderError`. Both
need the account's single write region (``enableMultipleWriteLocations: false``):
with several, conflicting creates are resolved after the fact.

Ids are unique within a partition only: a call id or message id is taken to belong to
one clinic (both come from the ACS call id, a GUID), and saving one under two clinics
would keep two documents where SQLite keeps one.

Retries are the SDK's (:data:`_CLIENT_OPTIONS` says what is set and why); this module
has no retry loop. Creates carry a ``write_id``, so a create the SDK retried after
losing the first response recognises its own document in the 409 that follows.

Documents and item ids are made in :mod:`~reddytalk.providers.store.cosmos_documents`,
which marks the PHI fields; the envelope encryption layer wraps those functions.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.cosmos import PartitionKey
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy, CosmosClient

from reddytalk.errors import ProviderError
from reddytalk.ports import AuditEvent, CallRecord, Message
from reddytalk.providers.store.cosmos_documents import (
    audit_from_document,
    audit_to_document,
    call_from_document,
    call_to_document,
    clinic_from_document,
    clinic_to_cosmos,
    item_id,
    message_from_document,
    message_to_document,
)
from reddytalk.providers.store.sqlite_db import to_utc_iso
from reddytalk.scheduling.model import Clinic

__all__ = ["CLAIM_TTL_S", "CONTAINERS", "ContainerSpec", "CosmosStore"]

CLAIM_TTL_S = 7 * 24 * 3600
"""How long an idempotency claim is kept (the ``claims`` container's ``default_ttl``)."""


@dataclass(frozen=True, slots=True)
class ContainerSpec:
    """How one container is made: its partition key path and default TTL (None: off)."""

    partition_key: str
    default_ttl_s: int | None = None


CONTAINERS: Mapping[str, ContainerSpec] = {
    "clinics": ContainerSpec("/clinic_id"),
    "numbers": ContainerSpec("/phone_number"),
    "calls": ContainerSpec("/clinic_id"),
    "audit": ContainerSpec("/call_id"),
    "messages": ContainerSpec("/clinic_id"),
    "claims": ContainerSpec("/id", default_ttl_s=CLAIM_TTL_S),
}
"""Every container the store uses, by name. Bicep must create exactly these."""

# The SDK's own retry policies, configured (azure-cosmos 4.17 client keywords):
# - 429: the SDK waits what Cosmos DB says (x-ms-retry-after-ms), at most 5 times and
#   5 s in all per operation (defaults 9 and 30 s). Store calls sit on the answering
#   path and under live calls; Event Grid and ACS redeliver, so failing fast with a
#   retryable ProviderError beats ringing for 30 s. ``retry_total`` also bounds the
#   connection-level retries, ``retry_backoff_max`` their backoff.
# - read_timeout: 10 s instead of 65 s for a socket read; point operations take ms.
# - retry_write: a write whose response was lost (read timeout, unreadable response,
#   408, 5xx) is sent once more. In 4.17.1 the value counts attempts, not retries
#   (_service_response_retry_policy, _timeout_failover_retry_policy: ``count + 1 >=
#   retry_write`` stops), so 2 is one retry; 1, as the README suggests, retries nothing.
#   Safe here: upserts and deletes are idempotent, a replace whose ETag moved fails with
#   412 (retryable), and creates recognise their own ``write_id`` in the 409. (A
#   dropped connection is resent whatever this says: the SDK takes it for a request
#   that never arrived; ``write_id`` covers that too.)
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 5,
    "retry_backoff_max": 5,
    "read_timeout": 10,
    "retry_write": 2,
}

# Failures the same request may get past: throttled, timed out, gone (a partition
# moved), retry-with (449), or the service failing.
_RETRYABLE_STATUS = frozenset({408, 410, 429, 449, 500, 502, 503, 504})

# ITU-T E.164: a plus, then up to 15 digits, the first not zero.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


class CosmosStore:
    """ReddyTalk's records in Cosmos DB (the cloud profile's store).

    Build it, then ``await store.open()`` (or use ``async with``, or :meth:`connect`);
    ``close`` releases the connections. It never closes ``credential``.

    Args:
        endpoint: The account, like ``https://<account>.documents.azure.com:443/``.
        credential: An account key (local emulator, tests) or an async
            ``TokenCredential`` (``azure.identity.aio.DefaultAzureCredential``: the
            managed identity in Azure, where keys are disabled).
        database: The database holding :data:`CONTAINERS`.
        ca_file: A CA bundle to trust instead of the system's (a loopback emulator's
            self-signed certificate); None in Azure.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        credential: str | AsyncTokenCredential,
        database: str,
        ca_file: str | None = None,
    ) -> None:
        options = dict(_CLIENT_OPTIONS)
        if ca_file is not None:
            options["connection_verify"] = ca_file
        self._client = CosmosClient(endpoint, credential, **options)
        self._database_name = database
        db = self._client.get_database_client(database)
        self._clinics = db.get_container_client("clinics")
        self._numbers = db.get_container_client("numbers")
        self._calls = db.get_container_client("calls")
        self._audit = db.get_container_client("audit")
        self._messages = db.get_container_client("messages")
        self._claims = db.get_container_client("claims")
        self._audit_lock = threading.Lock()
        self._last_audit_ns = 0

    @classmethod
    async def connect(
        cls,
        *,
        endpoint: str,
        credential: str | AsyncTokenCredential,
        database: str,
        ca_file: str | None = None,
        create_containers: bool = False,
    ) -> CosmosStore:
        """An open store; with ``create_containers`` (local and tests only: in Azure the
        identity may not create them, Bicep does) the database and containers are made
        first if missing.

        Raises:
            ProviderError: The account cannot be reached or refused the request.
        """
        store = cls(endpoint=endpoint, credential=credential, database=database, ca_file=ca_file)
        try:
            await store.open()
            if create_containers:
                await store.ensure_containers()
        except BaseException:
            await store.close()
            raise
        return store

    async def open(self) -> None:
        """Read the account (regions, consistency); the first request would otherwise."""
        with _provider_errors("open"):
            await self._client.__aenter__()

    async def close(self) -> None:
        """Close the client's connections; the store stops working."""
        await self._client.close()

    async def __aenter__(self) -> CosmosStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def ensure_containers(self) -> None:
        """Create the database and :data:`CONTAINERS` where missing (existing ones stay)."""
        with _provider_errors("create containers"):
            db = await self._client.create_database_if_not_exists(self._database_name)
            for name, spec in CONTAINERS.items():
                await db.create_container_if_not_exists(
                    name, PartitionKey(spec.partition_key), default_ttl=spec.default_ttl_s
                )

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic and map its phone number to it.

        Numbers mapped to the clinic before stay mapped (a clinic may have several).

        Raises:
            ValueError: The number is not E.164, or belongs to another clinic (then
                nothing changed).
            ProviderError: Cosmos DB failed, or the clinic changed while it was saved
                (retryable: saving again reads the new version).
        """
        if not _E164.fullmatch(clinic.phone_number):
            raise ValueError("the clinic's phone number must be E.164, like +15550100200")
        number = {"id": item_id(clinic.phone_number), "phone_number": clinic.phone_number}
        with _provider_errors("save clinic"):
            try:
                await self._numbers.create_item({**number, "clinic_id": clinic.clinic_id})
            except cosmos_errors.CosmosResourceExistsError:
                owner = await _read(self._numbers, number["id"], clinic.phone_number)
                if owner is None or owner["clinic_id"] != clinic.clinic_id:
                    raise ValueError("the phone number belongs to another clinic") from None
            stored = await _read(self._clinics, item_id(clinic.clinic_id), clinic.clinic_id)
            numbers = {clinic.phone_number, *(stored or {}).get("phone_numbers", ())}
            document = clinic_to_cosmos(clinic, numbers)
            try:
                if stored is None:
                    await self._clinics.create_item(document)
                else:
                    await self._clinics.replace_item(
                        stored["id"],
                        document,
                        etag=stored["_etag"],
                        match_condition=MatchConditions.IfNotModified,
                    )
            except (
                cosmos_errors.CosmosResourceExistsError,
                cosmos_errors.CosmosAccessConditionFailedError,
            ):
                raise ProviderError(
                    "the clinic changed while it was saved", retryable=True
                ) from None

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns ``phone_number`` (E.164), or None: two point reads."""
        with _provider_errors("find clinic"):
            number = await _read(self._numbers, item_id(phone_number), phone_number)
            if number is None:
                return None
            return await self.get_clinic(str(number["clinic_id"]))

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id, or None."""
        with _provider_errors("read clinic"):
            document = await _read(self._clinics, item_id(clinic_id), clinic_id)
        return None if document is None else clinic_from_document(document)

    async def save_call(self, record: CallRecord, *, replace: bool = True) -> bool:
        """Store a finished call; whether it was stored.

        Saving the same ``call_id`` again replaces it (an upsert), unless ``replace``
        is False: then it is a create, and a stored record stays (False is returned).

        Raises:
            ValueError: A time is naive.
        """
        document = call_to_document(record)
        with _provider_errors("save call"):
            if not replace:
                return await _create_once(self._calls, document, record.clinic_id)
            await self._calls.upsert_item(document)
            return True

    async def get_call(self, call_id: str) -> CallRecord | None:
        """A stored call, times in UTC, or None (a cross-partition query: see the module)."""
        query = "SELECT * FROM c WHERE c.id = @id"
        with _provider_errors("read call"):
            items = self._calls.query_items(
                query, parameters=[{"name": "@id", "value": item_id(call_id)}]
            )
            async for document in items:
                return call_from_document(document)
        return None

    async def record_audit(self, event: AuditEvent) -> None:
        """Append an audit record (a create: nothing here updates or deletes one).

        Raises:
            ValueError: ``event.at`` is naive.
        """
        document = audit_to_document(event, self._next_audit_id())
        with _provider_errors("record audit"):
            try:
                await self._audit.create_item(document)
            except cosmos_errors.CosmosResourceExistsError:
                pass  # each write has its own id: this one, resent by the SDK after it landed

    async def audit_trail(self, call_id: str) -> list[AuditEvent]:
        """The audit records of one call, in the order they were appended.

        Append order is the order of the ids: the appending process's clock in
        nanoseconds, strictly increasing within a process.
        """
        query = "SELECT * FROM c WHERE c.call_id = @call_id ORDER BY c.id"
        with _provider_errors("read audit"):
            items = self._audit.query_items(
                query, parameters=[{"name": "@call_id", "value": call_id}], partition_key=call_id
            )
            return [audit_from_document(document) async for document in items]

    async def save_message(self, message: Message) -> bool:
        """Keep a message for staff; False (and nothing changed) if its id is kept already.

        Raises:
            ValueError: ``message.taken_at`` is naive.
        """
        document = message_to_document(message)
        with _provider_errors("save message"):
            return await _create_once(self._messages, document, message.clinic_id)

    async def list_messages(self, clinic_id: str) -> list[Message]:
        """The clinic's messages, oldest first (ties by message id)."""
        query = "SELECT * FROM c WHERE c.clinic_id = @clinic_id"
        with _provider_errors("list messages"):
            items = self._messages.query_items(
                query,
                parameters=[{"name": "@clinic_id", "value": clinic_id}],
                partition_key=clinic_id,
            )
            documents = [document async for document in items]
        # Sorted here, not with ORDER BY over two fields, which needs a composite index.
        documents.sort(key=lambda d: (d["taken_at"], d["message_id"]))
        return [message_from_document(document) for document in documents]

    async def claim(self, key: str) -> bool:
        """Claim ``key`` once: a create, so Cosmos DB decides between racing processes."""
        document = {
            "id": item_id(key),
            "key": key,
            "claimed_at": to_utc_iso(dt.datetime.now(dt.UTC)),
        }
        with _provider_errors("claim"):
            return await _create_once(self._claims, document, document["id"])

    async def release(self, key: str) -> None:
        """Give up a claim so a redelivery may try again (nothing if there is none)."""
        claim_id = item_id(key)
        with _provider_errors("release claim"):
            try:
                await self._claims.delete_item(claim_id, partition_key=claim_id)
            except cosmos_errors.CosmosResourceNotFoundError:
                pass

    def _next_audit_id(self) -> str:
        # Nanoseconds, strictly increasing in this process, then a random part so two
        # processes appending in the same nanosecond still write two records.
        with self._audit_lock:
            self._last_audit_ns = max(time.time_ns(), self._last_audit_ns + 1)
            stamp = self._last_audit_ns
        return f"{stamp:020d}-{uuid.uuid4().hex[:16]}"


async def _read(
    container: ContainerProxy, document_id: str, partition_key: str
) -> dict[str, Any] | None:
    """A point read; None when the item does not exist (not when its container does not)."""
    try:
        return dict(await container.read_item(document_id, partition_key=partition_key))
    except cosmos_errors.CosmosResourceNotFoundError as error:
        if error.sub_status not in (None, 0):  # 1003: the container or database is missing
            raise
        return None


async def _create_once(
    container: ContainerProxy, document: dict[str, Any], partition_key: str
) -> bool:
    """Create ``document`` unless its id exists in its partition; whether this call did.

    A 409 on a document carrying this call's ``write_id`` is this very write, sent
    again by the SDK after its first response was lost (a dropped connection, or
    ``retry_write``).
    """
    write_id = uuid.uuid4().hex
    try:
        await container.create_item({**document, "write_id": write_id})
        return True
    except cosmos_errors.CosmosResourceExistsError:
        stored = await _read(container, document["id"], partition_key)
        return stored is not None and stored.get("write_id") == write_id


@contextmanager
def _provider_errors(operation: str) -> Iterator[None]:
    """Turn SDK errors into :class:`ProviderError`.

    The SDK's message is dropped (``from None``): it may quote ids or the request.
    The status and the activity id (which Azure support can trace) are kept.
    """
    try:
        yield
    except cosmos_errors.CosmosHttpResponseError as error:
        status = error.status_code or 0
        activity = (error.headers or {}).get("x-ms-activity-id", "-")
        raise ProviderError(
            f"Cosmos DB {operation} failed: HTTP {status}/{error.sub_status or 0}"
            f" (activity {activity})",
            retryable=status in _RETRYABLE_STATUS,
        ) from None
    except ClientAuthenticationError:
        raise ProviderError(
            f"Cosmos DB {operation} failed: no token for the store", retryable=False
        ) from None
    except AzureError as error:
        # Connection failures and the client's timeouts: the request may not have arrived.
        raise ProviderError(
            f"Cosmos DB {operation} failed: {type(error).__name__}", retryable=True
        ) from None
