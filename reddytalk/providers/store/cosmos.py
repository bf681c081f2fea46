"""The cloud :class:`~reddytalk.ports.CallStore`: ReddyTalk's own records in Azure Cosmos DB.

The containers are :data:`~reddytalk.providers.store.cosmos_account.CONTAINERS` (what
each holds, and its partition key, is drawn there).

PHI is sealed by :class:`~reddytalk.phi.PhiCipher` before a document is written and
opened after it is read, as the SQLite store does, with the same field names and
record ids (so a token opens in either): a call's transcript and tool calls (bound to
the call id), a message's text and caller name (the message id), a call's phone number
(``<call id>/<party>``), an outbox message's number and text (its message id). Which
document keys those are is :data:`~reddytalk.providers.store.cosmos_documents.CALL_PHI`,
``MESSAGE_PHI``, ``CALL_NUMBER_PHI`` and ``OUTBOX_PHI``; the sealing is one step here,
between the pure document functions and the SDK. Ids, times, outcomes, turn timings,
the audit trail (ids only) and clinics stay readable. The clinics' data keys live in
the same account (:class:`~reddytalk.providers.store.cosmos_keys.CosmosDataKeys`),
wrapped by a key that does not (Key Vault).

Finished calls are :class:`~reddytalk.providers.store.cosmos_calls.CosmosCalls`'s (what
``get_call`` and ``list_calls`` cost is drawn there); messages for staff are
:class:`~reddytalk.providers.store.cosmos_messages.CosmosMessages`'s (a message's status
is set by a patch that opens nothing).

Atomicity comes from Cosmos DB, never from a read before a write: "create if absent"
is :func:`~reddytalk.providers.store.cosmos_account.create_once`, whose 409 means the
id exists (claims, messages, outbox texts, the first record of a call, a clinic's
phone number); read-modify-write (a clinic's document) replaces with the ETag read
(``IfNotModified``), and a 412 is a retryable :class:`ProviderError`. A clinic and its
numbers span partitions, so saving or removing one is several writes, ordered so that
stopping midway leaves a usable mapping: what is atomic there and what is not is drawn
in :mod:`~reddytalk.providers.store.cosmos_clinics`.

Ids are unique within a partition only: a call id or message id is taken to belong to
one clinic (both come from the ACS call id, a GUID), and saving one under two clinics
would keep two documents where SQLite keeps one. A call's numbers are partitioned by
call, as SQLite keys them: one per call and party, and another clinic reads none.

Retries are the SDK's (configured in :mod:`~reddytalk.providers.store.cosmos_account`);
this module has no retry loop.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.cosmos import exceptions as cosmos_errors

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import AuditEvent, CallListing, CallRecord, Message, OutboxMessage
from reddytalk.providers.store.clinics import is_e164
from reddytalk.providers.store.cosmos_account import (
    CLAIM_TTL_S,
    CONTAINERS,
    ContainerSpec,
    create_once,
    ensure_containers,
    new_client,
    provider_errors,
    query_partition,
    read_item,
)
from reddytalk.providers.store.cosmos_calls import CosmosCalls
from reddytalk.providers.store.cosmos_clinics import CosmosClinics
from reddytalk.providers.store.cosmos_documents import (
    CALL_NUMBER_PHI,
    OUTBOX_PHI,
    audit_from_document,
    audit_to_document,
    call_number_to_document,
    item_id,
    outbox_from_document,
    outbox_to_document,
)
from reddytalk.providers.store.cosmos_messages import CosmosMessages
from reddytalk.providers.store.sqlite_db import to_utc_iso
from reddytalk.scheduling.model import Clinic

# CLAIM_TTL_S, CONTAINERS and ContainerSpec are defined with the account, shared by the
# adapters; they are named here too, where the store's readers look for them.
__all__ = ["CLAIM_TTL_S", "CONTAINERS", "ContainerSpec", "CosmosStore"]


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
        cipher: Seals PHI before it is written and opens it after it is read.
        ca_file: A CA bundle to trust instead of the system's (a loopback emulator's
            self-signed certificate); None in Azure.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        credential: str | AsyncTokenCredential,
        database: str,
        cipher: PhiCipher,
        ca_file: str | None = None,
    ) -> None:
        self._client = new_client(endpoint=endpoint, credential=credential, ca_file=ca_file)
        self._database_name = database
        self._cipher = cipher
        db = self._client.get_database_client(database)
        self._calls = CosmosCalls(calls=db.get_container_client("calls"), cipher=cipher)
        self._audit = db.get_container_client("audit")
        self._messages = CosmosMessages(messages=db.get_container_client("messages"), cipher=cipher)
        self._claims = db.get_container_client("claims")
        self._call_numbers = db.get_container_client("call_numbers")
        self._outbox = db.get_container_client("outbox")
        self._clinic_records = CosmosClinics(
            clinics=db.get_container_client("clinics"),
            numbers=db.get_container_client("numbers"),
            live_calls=db.get_container_client("live_calls"),
        )
        self._audit_lock = threading.Lock()
        self._last_audit_ns = 0

    @classmethod
    async def connect(
        cls,
        *,
        endpoint: str,
        credential: str | AsyncTokenCredential,
        database: str,
        cipher: PhiCipher,
        ca_file: str | None = None,
        create_containers: bool = False,
    ) -> CosmosStore:
        """An open store; with ``create_containers`` (local and tests only: in Azure the
        identity may not create them, Bicep does) the database and containers are made
        first if missing.

        Raises:
            ProviderError: The account cannot be reached or refused the request.
        """
        store = cls(
            endpoint=endpoint,
            credential=credential,
            database=database,
            cipher=cipher,
            ca_file=ca_file,
        )
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
        with provider_errors("open"):
            await self._client.__aenter__()

    async def close(self) -> None:
        """Close the client's connections; the store stops working."""
        await self._client.close()

    async def __aenter__(self) -> CosmosStore:
        await self.open()
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    def __repr__(self) -> str:
        return f"CosmosStore(database={self._database_name!r})"

    async def ensure_containers(self) -> None:
        """Create the database and :data:`CONTAINERS` where missing (existing ones stay)."""
        await ensure_containers(self._client, self._database_name)

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic, and map exactly ``clinic.phone_numbers`` to it.

        Numbers mapped to the clinic before and no longer listed are released (another
        clinic may take them then). Every number is checked before anything is written;
        the writes that follow are not one transaction (see
        :mod:`~reddytalk.providers.store.cosmos_clinics`).

        Raises:
            ValueError: A number is not E.164, is listed twice, or belongs to another
                clinic (the error names it; nothing stays changed).
            ProviderError: Cosmos DB failed, or the clinic changed while it was saved
                (retryable: saving again reads the new version).
        """
        await self._clinic_records.save_clinic(clinic)

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns ``phone_number`` (E.164), or None: two point reads."""
        return await self._clinic_records.find_clinic_by_number(phone_number)

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id, or None."""
        return await self._clinic_records.get_clinic(clinic_id)

    async def list_clinics(self) -> list[Clinic]:
        """Every clinic, sorted by clinic id (a cross-partition query)."""
        return await self._clinic_records.list_clinics()

    async def remove_clinic(self, clinic_id: str) -> bool:
        """Remove a clinic and release its numbers; False if there is no such clinic.

        Its calls' records, messages, audit trail and data keys are kept (medical-record
        retention). The numbers are released first, then the clinic's document deleted:
        stopped midway, removing again finishes.

        Raises:
            ClinicBusy: Calls to the clinic are in progress (nothing was changed).
            ProviderError: Cosmos DB failed, or the clinic changed while it was removed
                (retryable).
        """
        return await self._clinic_records.remove_clinic(clinic_id)

    async def call_started(self, call_id: str, clinic_id: str, *, at: dt.datetime) -> None:
        """Count the call as in progress from ``at``, until :meth:`call_ended` or 4 hours.

        Raises:
            ValueError: ``at`` is naive.
        """
        await self._clinic_records.call_started(call_id, clinic_id, at=at)

    async def call_ended(self, call_id: str) -> None:
        """The call is no longer in progress (nothing if it was not)."""
        await self._clinic_records.call_ended(call_id)

    async def calls_in_progress(self, clinic_id: str, *, now: dt.datetime) -> int:
        """The clinic's calls started and not ended, that started at most 4 hours before
        ``now`` (a cross-partition query).

        Raises:
            ValueError: ``now`` is naive.
        """
        return await self._clinic_records.calls_in_progress(clinic_id, now=now)

    async def save_call(self, record: CallRecord, *, replace: bool = True) -> bool:
        """Store a finished call; whether it was stored.

        Saving the same ``call_id`` again replaces it (an upsert), unless ``replace``
        is False: then it is a create, and a stored record stays (False is returned).

        Raises:
            ValueError: A time is naive.
            ProviderError: Cosmos DB or the cipher's keys failed.
        """
        return await self._calls.save_call(record, replace=replace)

    async def get_call(self, call_id: str, *, clinic_id: str | None = None) -> CallRecord | None:
        """A stored call, times in UTC, or None (a cross-partition query: see
        :mod:`~reddytalk.providers.store.cosmos_calls`); with ``clinic_id`` only that
        clinic's (in the query, before anything sealed is opened)."""
        return await self._calls.get_call(call_id, clinic_id=clinic_id)

    async def list_calls(
        self, clinic_id: str, *, limit: int = 50, before: dt.datetime | None = None
    ) -> list[CallListing]:
        """The clinic's calls, newest first, without their PHI (not even fetched).

        Raises:
            ValueError: ``limit`` is not 1 to 200, or ``before`` is naive.
            ProviderError: Cosmos DB failed.
        """
        return await self._calls.list_calls(clinic_id, limit=limit, before=before)

    async def record_audit(self, event: AuditEvent) -> None:
        """Append an audit record (a create: nothing here updates or deletes one).

        Raises:
            ValueError: ``event.at`` is naive.
        """
        document = audit_to_document(event, self._next_audit_id())
        with provider_errors("record audit"):
            try:
                await self._audit.create_item(document)
            except cosmos_errors.CosmosResourceExistsError:
                pass  # each write has its own id: this one, resent by the SDK after it landed

    async def audit_trail(self, call_id: str) -> list[AuditEvent]:
        """The audit records of one call, in the order they were appended: oldest first,
        as SQLite's. A single-partition query (``audit`` is partitioned by call).

        Append order is the order of the ids: the appending process's clock in
        nanoseconds, strictly increasing within a process (across processes, as far as
        their clocks agree).
        """
        query = "SELECT * FROM c WHERE c.call_id = @call_id ORDER BY c.id"
        with provider_errors("read audit"):
            items = self._audit.query_items(
                query, parameters=[{"name": "@call_id", "value": call_id}], partition_key=call_id
            )
            return [audit_from_document(document) async for document in items]

    async def appointment_changes(self, clinic_id: str, *, since: dt.datetime) -> list[AuditEvent]:
        """The clinic's audit records of appointment changes since ``since``, newest first.

        A cross-partition query (``audit`` is partitioned by call, so that a call's trail is
        one partition): an admin's view, bounded by ``since``, never a call's. The order is
        the ids' (append order, as ``audit_trail``), sorted here: an ORDER BY across
        partitions needs the gateway's query plan for nothing this filter does not do.
        """
        query = (
            "SELECT * FROM c WHERE c.clinic_id = @clinic_id AND c.at >= @since"
            ' AND STARTSWITH(c.resource, "Appointment/") AND IS_DEFINED(c.details.change)'
        )
        parameters: list[dict[str, Any]] = [
            {"name": "@clinic_id", "value": clinic_id},
            {"name": "@since", "value": to_utc_iso(since)},
        ]
        with provider_errors("read appointment changes"):
            items = self._audit.query_items(query, parameters=parameters)
            documents = [document async for document in items]
        documents.sort(key=lambda document: str(document["id"]), reverse=True)
        return [audit_from_document(document) for document in documents]

    async def save_message(self, message: Message) -> bool:
        """Keep a message for staff; False (and nothing changed) if its id is kept already.

        Raises:
            ValueError: ``message.taken_at`` is naive.
            ProviderError: Cosmos DB or the cipher's keys failed.
        """
        return await self._messages.save_message(message)

    async def list_messages(self, clinic_id: str) -> list[Message]:
        """The clinic's messages, oldest first (ties by message id)."""
        return await self._messages.list_messages(clinic_id)

    async def set_message_status(self, clinic_id: str, message_id: str, *, status: str) -> bool:
        """Mark the clinic's message ``open`` or ``done`` with one patch of its status
        (nothing read, nothing opened); False if the clinic has no such message.

        Raises:
            ValueError: ``status`` is neither ``open`` nor ``done`` (nothing changed).
            ProviderError: Cosmos DB failed.
        """
        return await self._messages.set_message_status(clinic_id, message_id, status=status)

    async def save_call_number(
        self, call_id: str, clinic_id: str, *, party: str, number: str
    ) -> None:
        """Keep a phone number for the call (sealed); the same party again replaces it
        (an upsert). Cosmos DB deletes it a day later (the container's TTL).

        Raises:
            ValueError: ``number`` is not E.164 (its value is not named).
            ProviderError: Cosmos DB or the cipher's keys failed.
        """
        if not is_e164(number):
            raise ValueError("a call's number must be E.164")
        document = call_number_to_document(
            call_id, clinic_id, party=party, number=number, saved_at=dt.datetime.now(dt.UTC)
        )
        sealed = await CALL_NUMBER_PHI.seal(self._cipher, document)
        with provider_errors("save call number"):
            await self._call_numbers.upsert_item(sealed)

    async def get_call_number(self, call_id: str, clinic_id: str, *, party: str) -> str | None:
        """The number kept for the call and party at this clinic, or None: a point read."""
        with provider_errors("read call number"):
            document = await read_item(self._call_numbers, item_id(party), call_id)
        if document is None or document["clinic_id"] != clinic_id:
            return None  # as in SQLite: another clinic's call has no number for this one
        return str((await CALL_NUMBER_PHI.open(self._cipher, document))["number"])

    async def add_to_outbox(self, message: OutboxMessage) -> bool:
        """Keep a text message; False (and nothing changed) if its id is kept already.

        Raises:
            ValueError: ``message.created_at`` is naive.
            ProviderError: Cosmos DB or the cipher's keys failed.
        """
        document = await OUTBOX_PHI.seal(self._cipher, outbox_to_document(message))
        with provider_errors("add to outbox"):
            return await create_once(self._outbox, document, message.clinic_id)

    async def list_outbox(self, clinic_id: str) -> list[OutboxMessage]:
        """The clinic's outbox, oldest first (ties by message id)."""
        with provider_errors("list outbox"):
            documents = await query_partition(self._outbox, "clinic_id", clinic_id)
        documents.sort(key=lambda d: (d["created_at"], d["message_id"]))  # as list_messages
        return [outbox_from_document(await OUTBOX_PHI.open(self._cipher, d)) for d in documents]

    async def claim(self, key: str) -> bool:
        """Claim ``key`` once: a create, so Cosmos DB decides between racing processes."""
        document = {
            "id": item_id(key),
            "key": key,
            "claimed_at": to_utc_iso(dt.datetime.now(dt.UTC)),
        }
        with provider_errors("claim"):
            return await create_once(self._claims, document, document["id"])

    async def release(self, key: str) -> None:
        """Give up a claim so a redelivery may try again (nothing if there is none)."""
        claim_id = item_id(key)
        with provider_errors("release claim"):
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
