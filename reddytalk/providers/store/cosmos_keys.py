"""The cloud :class:`~reddytalk.phi.DataKeyStore`: wrapped data keys in Cosmos DB.

One document per clinic and key version in the ``data_keys`` container, partitioned by
``/clinic_id`` (a clinic's keys are one single-partition query), with the version as
the item id, so the partition key and id together are the ``(clinic, version)`` primary
key of the SQLite table::

    {"id": "1", "clinic_id": "...", "version": 1, "wrapped": "<base64>",
     "kek_id": "https://<vault>/keys/<name>/<version>", "write_id": "<hex>"}

The container has no TTL and nothing here deletes a key: a data key lost is every
value it sealed lost. The key-encryption key that wrapped them lives elsewhere (Key
Vault), so the account alone opens nothing.

* :meth:`CosmosDataKeys.add_data_key` is a create: of two processes making a clinic's
  first key, Cosmos DB keeps the first and answers the second 409.
* :meth:`CosmosDataKeys.replace_wrap` is a compare and swap: a point read, a check that
  the stored wrap is ``old``'s, and a replace with the ETag read (``IfNotModified``);
  412 means another process re-wrapped it in between, and it loses.

Both writes carry a ``write_id``, so a write the SDK sent again after losing its
response (``retry_write``) recognises its own document in the 409 or 412 that follows.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials_async import AsyncTokenCredential
from azure.cosmos import exceptions as cosmos_errors

from reddytalk.phi.data_keys import WrappedDataKey
from reddytalk.providers.store.cosmos_account import (
    create_once,
    new_client,
    provider_errors,
    read_item,
)

__all__ = ["CosmosDataKeys"]


def _key_from_document(document: Mapping[str, Any]) -> WrappedDataKey:
    return WrappedDataKey(
        clinic_id=document["clinic_id"],
        version=int(document["version"]),
        wrapped=base64.b64decode(document["wrapped"], validate=True),
        kek_id=document["kek_id"],
    )


def _key_to_document(key: WrappedDataKey) -> dict[str, Any]:
    return {
        "id": str(key.version),
        "clinic_id": key.clinic_id,
        "version": key.version,
        "wrapped": base64.b64encode(key.wrapped).decode("ascii"),
        "kek_id": key.kek_id,
    }


class CosmosDataKeys:
    """Wrapped data keys in the ``data_keys`` container.

    A client of its own, apart from the store's, so the cipher and the store stay two
    objects that close apart; it sends a few requests per clinic per process (the
    cipher caches the keys). ``close`` releases its connections; it never closes
    ``credential``.

    Args:
        endpoint: The account, like ``https://<account>.documents.azure.com:443/``.
        credential: An account key (local emulator, tests) or an async
            ``TokenCredential`` (the managed identity in Azure).
        database: The database holding the ``data_keys`` container (the store's).
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
        self._client = new_client(endpoint=endpoint, credential=credential, ca_file=ca_file)
        self._database_name = database
        db = self._client.get_database_client(database)
        self._keys = db.get_container_client("data_keys")

    def __repr__(self) -> str:
        return f"CosmosDataKeys(database={self._database_name!r})"

    async def close(self) -> None:
        """Close the client's connections."""
        await self._client.close()

    async def __aenter__(self) -> CosmosDataKeys:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def data_keys(self, clinic_id: str) -> list[WrappedDataKey]:
        """The clinic's data keys, oldest version first: one single-partition query."""
        query = "SELECT * FROM c WHERE c.clinic_id = @clinic_id"
        with provider_errors("read data keys"):
            items = self._keys.query_items(
                query,
                parameters=[{"name": "@clinic_id", "value": clinic_id}],
                partition_key=clinic_id,
            )
            keys = [_key_from_document(document) async for document in items]
        return sorted(keys, key=lambda k: k.version)

    async def add_data_key(self, key: WrappedDataKey) -> bool:
        """Keep ``key`` unless the clinic has that version already (a create: 409 decides)."""
        with provider_errors("add data key"):
            return await create_once(self._keys, _key_to_document(key), key.clinic_id)

    async def all_data_keys(self) -> list[WrappedDataKey]:
        """Every clinic's data keys, by clinic and version (a cross-partition query: run
        by a rotation of the key-encryption key, not on a call's path)."""
        with provider_errors("read all data keys"):
            items = self._keys.query_items("SELECT * FROM c")
            keys = [_key_from_document(document) async for document in items]
        return sorted(keys, key=lambda k: (k.clinic_id, k.version))

    async def replace_wrap(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Store ``new``'s wrap and ``kek_id`` in place of ``old``'s if ``old``'s is still
        the stored one; False if the key is gone or another process changed it first."""
        document_id = str(old.version)
        write_id = uuid.uuid4().hex
        with provider_errors("replace data key wrap"):
            stored = await read_item(self._keys, document_id, old.clinic_id)
            if stored is None or _key_from_document(stored) != old:
                return False
            swapped = {
                **_key_to_document(old),
                "wrapped": base64.b64encode(new.wrapped).decode("ascii"),
                "kek_id": new.kek_id,
                "write_id": write_id,
            }
            try:
                await self._keys.replace_item(
                    document_id,
                    swapped,
                    etag=stored["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except cosmos_errors.CosmosAccessConditionFailedError:
                # Lost the race, or won it and this is the SDK's resend of our own write.
                again = await read_item(self._keys, document_id, old.clinic_id)
                return again is not None and again.get("write_id") == write_id
        return True
