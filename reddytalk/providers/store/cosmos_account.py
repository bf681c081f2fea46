"""What the Cosmos DB adapters share: the account's containers, the client, its errors.

Containers (:data:`CONTAINERS`; Bicep creates the same ones in Azure):

============  ===============  ==================================================================
name          partition key    holds
============  ===============  ==================================================================
clinics       /clinic_id       one document per clinic (:func:`clinic_to_document`) and the
                               numbers it lists
numbers       /phone_number    one document per phone number naming its clinic: a call finds
                               its clinic with two point reads (number, clinic), no query;
                               the mapping itself (a clinic's numbers: a query on clinic_id)
calls         /clinic_id       one document per finished call, transcript sealed
audit         /call_id         append-only; a call's trail is one single-partition query, and
                               no logical partition grows without bound (unlike /clinic_id)
messages      /clinic_id       messages for staff, text and caller name sealed; a clinic's
                               list is one single-partition query
claims        /id              idempotency claims; ``default_ttl`` 7 days reclaims the space
                               (Event Grid and ACS stop redelivering long before)
data_keys     /clinic_id       each clinic's wrapped data keys, one document per version
                               (:class:`~reddytalk.providers.store.cosmos_keys.CosmosDataKeys`);
                               never a TTL: a data key lost is its clinic's PHI lost
call_numbers  /call_id         a call's phone numbers, one document per party, sealed;
                               ``default_ttl`` 1 day: only the call's own tools read them
                               (to text a confirmation), so PHI kept longer serves nobody
outbox        /clinic_id       text messages kept instead of sent, number and text sealed;
                               a clinic's list is one single-partition query
live_calls    /call_id         calls in progress, one document from a call's start to its
                               end: a point write and a point delete on every call; counting
                               a clinic's (only when it is removed) is the cross-partition
                               query. ``default_ttl`` 4 hours removes a crashed worker's
============  ===============  ==================================================================

Two writes are the building blocks of both adapters: :func:`create_once` ("create if
absent", whose 409 means the id exists) and a replace with the ETag read
(``IfNotModified``, 412 when another writer came first). Both rely on the account's
single write region (``enableMultipleWriteLocations: false``): with several,
conflicting writes are resolved after the fact.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import AzureError, ClientAuthenticationError
from azure.cosmos import PartitionKey
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy, CosmosClient

from reddytalk.errors import ProviderError
from reddytalk.providers.store.clinics import LIVE_CALL_MAX_AGE_S

__all__ = [
    "CALL_NUMBER_TTL_S",
    "CLAIM_TTL_S",
    "CONTAINERS",
    "LIVE_CALL_TTL_S",
    "ContainerSpec",
    "create_once",
    "ensure_containers",
    "new_client",
    "provider_errors",
    "query_partition",
    "read_item",
]

CLAIM_TTL_S = 7 * 24 * 3600
"""How long an idempotency claim is kept (the ``claims`` container's ``default_ttl``)."""

CALL_NUMBER_TTL_S = 24 * 3600
"""How long a call's phone number is kept (the ``call_numbers`` container's
``default_ttl``): past any call's end, when nothing reads it any more."""

LIVE_CALL_TTL_S = LIVE_CALL_MAX_AGE_S
"""How long a call counts as in progress at most (the ``live_calls`` container's
``default_ttl``): a worker that crashed mid-call never deletes its document. Cosmos DB
deletes expired documents lazily (with spare request units), so the store's query checks
the age too."""


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
    "data_keys": ContainerSpec("/clinic_id"),  # no TTL, ever: see the module docstring
    # A call's numbers (PHI) are read only by the call's own tools, while the call lasts:
    # kept a day (every call is over by then), then Cosmos DB deletes them, so the store
    # holds no phone number longer than the call needs it (HIPAA's minimum necessary).
    "call_numbers": ContainerSpec("/call_id", default_ttl_s=CALL_NUMBER_TTL_S),
    "outbox": ContainerSpec("/clinic_id"),
    # By call: the start and the end of a call know its id, and the end only its id.
    "live_calls": ContainerSpec("/call_id", default_ttl_s=LIVE_CALL_TTL_S),
}
"""Every container the adapters use, by name. Bicep must create exactly these."""

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
#   412, and creates and compare-and-swap replaces carry a ``write_id`` that recognises
#   their own document afterwards. (A dropped connection is resent whatever this says:
#   the SDK takes it for a request that never arrived; ``write_id`` covers that too.)
_CLIENT_OPTIONS: dict[str, Any] = {
    "retry_total": 5,
    "retry_backoff_max": 5,
    "read_timeout": 10,
    "retry_write": 2,
}

# Failures the same request may get past: throttled, timed out, gone (a partition
# moved), retry-with (449), or the service failing.
_RETRYABLE_STATUS = frozenset({408, 410, 429, 449, 500, 502, 503, 504})


def new_client(
    *, endpoint: str, credential: str | AsyncTokenCredential, ca_file: str | None = None
) -> CosmosClient:
    """A client with the options above (not opened yet: ``async with`` it, or its first
    request reads the account).

    Args:
        endpoint: The account, like ``https://<account>.documents.azure.com:443/``.
        credential: An account key (local emulator, tests) or an async
            ``TokenCredential`` (the managed identity in Azure, where keys are disabled).
        ca_file: A CA bundle to trust instead of the system's (a loopback emulator's
            self-signed certificate); None in Azure.
    """
    options = dict(_CLIENT_OPTIONS)
    if ca_file is not None:
        # azure-cosmos 4.17 reads connection_verify as a flag, not a CA bundle, and never
        # verifies TLS to localhost / 127.0.0.1 (aio/_asynchronous_request.py: the
        # emulator's rule), so a loopback emulator needs nothing and the file is not
        # used. Kept so that a non-loopback emulator at least keeps verification on.
        options["connection_verify"] = ca_file
    return CosmosClient(endpoint, credential, **options)


async def ensure_containers(client: CosmosClient, database: str) -> None:
    """Create ``database`` and :data:`CONTAINERS` where missing (existing ones stay as
    they are). Local and tests only: in Azure the identity may not, Bicep does.

    Raises:
        ProviderError: The account cannot be reached or refused the request.
    """
    with provider_errors("create containers"):
        db = await client.create_database_if_not_exists(database)
        for name, spec in CONTAINERS.items():
            await db.create_container_if_not_exists(
                name, PartitionKey(spec.partition_key), default_ttl=spec.default_ttl_s
            )


async def read_item(
    container: ContainerProxy, document_id: str, partition_key: str
) -> dict[str, Any] | None:
    """A point read; None when the item does not exist (not when its container does not)."""
    try:
        return dict(await container.read_item(document_id, partition_key=partition_key))
    except cosmos_errors.CosmosResourceNotFoundError as error:
        if error.sub_status not in (None, 0):  # 1003: the container or database is missing
            raise
        return None


async def query_partition(container: ContainerProxy, key: str, value: str) -> list[dict[str, Any]]:
    """Every document whose ``key`` (the container's partition key) is ``value``: a
    single-partition query, in no particular order."""
    items = container.query_items(
        f"SELECT * FROM c WHERE c.{key} = @value",
        parameters=[{"name": "@value", "value": value}],
        partition_key=value,
    )
    return [dict(document) async for document in items]


async def create_once(
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
        stored = await read_item(container, document["id"], partition_key)
        return stored is not None and stored.get("write_id") == write_id


@contextmanager
def provider_errors(operation: str) -> Iterator[None]:
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
