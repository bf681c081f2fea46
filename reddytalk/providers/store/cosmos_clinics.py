"""The Cosmos DB store's clinics: their documents, the numbers that ring them, live calls.

:class:`~reddytalk.providers.store.cosmos.CosmosStore` delegates to
:class:`CosmosClinics`. Containers (:data:`~reddytalk.providers.store.cosmos_account.
CONTAINERS`): ``clinics`` (one document per clinic), ``numbers`` (one per phone number,
naming its clinic: the mapping itself), ``live_calls`` (one per call in progress).

What is atomic, and what is not. Cosmos DB has no transaction across partitions, and
each phone number is its own partition (``/phone_number``), the clinic another. So:

- A number's owner is decided by Cosmos DB: taking a free number is a create, whose
  409 means another clinic has it; two clinics never both hold one.
- Every write of a save is conditional on what it read (a create, or the ETag with
  ``IfNotModified``), and carries the save's ``write_id``, which tells a write the SDK
  sent again after it landed from another writer's. Of two saves of one clinic at once,
  one fails with a retryable :class:`ProviderError`; a release never deletes a number
  that a later save re-wrote.
- A save as a whole is not atomic. It checks every number before writing any, so the
  usual refusal (a number another clinic has) writes nothing. Then, in the order that
  keeps the old mapping usable if it stops midway: (1) it takes the new numbers and
  re-writes the kept ones, (2) writes the clinic's document, (3) releases the numbers
  no longer listed. Stopped after (1), every number it lists rings the clinic, with its
  old document (a first save's new numbers ring nobody, as before: there is no
  document yet); after (2), the released numbers ring it until the next save. If (1)
  fails, another clinic having taken a number since the check included, the numbers
  it took are withdrawn (each only if unchanged since; best effort), and a refusal is
  a ``ValueError`` as if checked. A clinic's numbers are read from ``numbers`` (a query
  on ``clinic_id``), never from its document, so the next save, or a removal, finishes
  whatever an interrupted one left.
- A removal releases the numbers first, then deletes the document (with its ETag):
  stopped midway, the clinic is still there with fewer numbers, and removing it again
  finishes. It refuses while calls are in progress, but a call answered between that
  check and the release of its number still runs to its end (the check and the writes
  are in different partitions).

A call in progress is a document in ``live_calls`` (partitioned by call: its start and
its end are point writes, on the hot path of every call), deleted when the call ends;
``default_ttl`` (4 hours) deletes a crashed worker's, and since Cosmos DB expires
documents lazily, counting checks their age as well.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import AzureError
from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy

from reddytalk.errors import ClinicBusy, ProviderError
from reddytalk.providers.store.clinics import check_clinic_numbers, live_since
from reddytalk.providers.store.cosmos_account import provider_errors, read_item
from reddytalk.providers.store.cosmos_documents import (
    clinic_from_document,
    clinic_to_cosmos,
    item_id,
    live_call_to_document,
    number_to_document,
)
from reddytalk.scheduling.model import Clinic

__all__ = ["CosmosClinics"]

log = logging.getLogger(__name__)

_Document = dict[str, Any]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class CosmosClinics:
    """Clinics, their phone numbers and their calls in progress, in Cosmos DB.

    Args:
        clinics: The ``clinics`` container.
        numbers: The ``numbers`` container.
        live_calls: The ``live_calls`` container.
    """

    def __init__(
        self, *, clinics: ContainerProxy, numbers: ContainerProxy, live_calls: ContainerProxy
    ) -> None:
        self._clinics = clinics
        self._numbers = numbers
        self._live_calls = live_calls

    def __repr__(self) -> str:
        return "CosmosClinics()"

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic, and map exactly ``clinic.phone_numbers`` to it (see
        the module for the order of the writes)."""
        numbers = check_clinic_numbers(clinic)
        clinic_id = clinic.clinic_id
        with provider_errors("save clinic"):
            stored = await read_item(self._clinics, item_id(clinic_id), clinic_id)
            mapped = await self._mapped(clinic_id)
            for number in numbers:  # every number checked before anything is written
                if number not in mapped:
                    owner = await read_item(self._numbers, item_id(number), number)
                    if owner is not None and owner["clinic_id"] != clinic_id:
                        raise ValueError(f"the phone number {number} belongs to another clinic")
                    if owner is not None:
                        mapped[number] = owner  # mapped since the query read the container
            write_id = uuid.uuid4().hex
            taken: list[_Document] = []
            try:
                for number in numbers:
                    created = await self._hold_number(
                        number, clinic_id, mapped.get(number), write_id
                    )
                    if created is not None:
                        taken.append(created)
            except Exception:
                await self._withdraw(taken)
                raise
            await self._write_clinic(clinic, stored, write_id)
            for number, document in mapped.items():
                if number not in numbers:
                    await self._delete_unchanged(self._numbers, document, number)

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns ``phone_number`` (E.164), or None: two point reads."""
        with provider_errors("find clinic"):
            number = await read_item(self._numbers, item_id(phone_number), phone_number)
            if number is None:
                return None
            return await self.get_clinic(str(number["clinic_id"]))

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id, or None: a point read."""
        with provider_errors("read clinic"):
            document = await read_item(self._clinics, item_id(clinic_id), clinic_id)
        return None if document is None else clinic_from_document(document)

    async def list_clinics(self) -> list[Clinic]:
        """Every clinic, by clinic id: a cross-partition query (an admin's, not a call's)."""
        with provider_errors("list clinics"):
            documents = [d async for d in self._clinics.query_items("SELECT * FROM c")]
        clinics = [clinic_from_document(document) for document in documents]
        return sorted(clinics, key=lambda clinic: clinic.clinic_id)

    async def remove_clinic(self, clinic_id: str) -> bool:
        """Release a clinic's numbers, then delete it, unless calls to it are in progress
        (then :class:`ClinicBusy`); whether there was such a clinic."""
        with provider_errors("remove clinic"):
            stored = await read_item(self._clinics, item_id(clinic_id), clinic_id)
            mapped = await self._mapped(clinic_id)
            if stored is None:
                # Numbers an interrupted save left behind ring no clinic, yet block others.
                for number, document in mapped.items():
                    await self._delete_unchanged(self._numbers, document, number)
                return False
            live = await self.calls_in_progress(clinic_id, now=_utc_now())
            if live:
                raise ClinicBusy(
                    f"clinic {clinic_id!r} has {live} call(s) in progress", calls_in_progress=live
                )
            for number, document in mapped.items():
                await self._delete_unchanged(self._numbers, document, number)
            try:
                await self._clinics.delete_item(
                    stored["id"],
                    partition_key=clinic_id,
                    etag=stored["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except cosmos_errors.CosmosResourceNotFoundError:
                pass  # removed by another process meanwhile: removed all the same
            except cosmos_errors.CosmosAccessConditionFailedError:
                raise ProviderError(
                    "the clinic changed while it was removed", retryable=True
                ) from None
        return True

    async def call_started(self, call_id: str, clinic_id: str, *, at: dt.datetime) -> None:
        """Count the call as in progress from ``at``: an upsert, so a retry is harmless."""
        document = live_call_to_document(call_id, clinic_id, started_at=at)
        with provider_errors("record call start"):
            await self._live_calls.upsert_item(document)

    async def call_ended(self, call_id: str) -> None:
        """The call is no longer in progress (nothing if it was not): a point delete."""
        with provider_errors("record call end"):
            try:
                await self._live_calls.delete_item(item_id(call_id), partition_key=call_id)
            except cosmos_errors.CosmosResourceNotFoundError:
                pass

    async def calls_in_progress(self, clinic_id: str, *, now: dt.datetime) -> int:
        """The clinic's calls started at most 4 hours before ``now`` and not ended: a
        cross-partition query (the container is partitioned by call)."""
        query = "SELECT c.id FROM c WHERE c.clinic_id = @clinic_id AND c.started_at >= @since"
        parameters: list[dict[str, object]] = [
            {"name": "@clinic_id", "value": clinic_id},
            {"name": "@since", "value": live_since(now)},
        ]
        with provider_errors("count calls in progress"):
            items = self._live_calls.query_items(query, parameters=parameters)
            return len([item async for item in items])

    async def _mapped(self, clinic_id: str) -> dict[str, _Document]:
        """The numbers mapped to the clinic now, each with its document (and ETag)."""
        items = self._numbers.query_items(
            "SELECT * FROM c WHERE c.clinic_id = @clinic_id",
            parameters=[{"name": "@clinic_id", "value": clinic_id}],
        )
        return {str(d["phone_number"]): dict(d) async for d in items}

    async def _hold_number(
        self, number: str, clinic_id: str, current: _Document | None, write_id: str
    ) -> _Document | None:
        """Write the number's document for this save: re-write ``current`` (the clinic's
        already) with its ETag, or create it; the document if this save created it.

        Raises:
            ValueError: Another clinic took the number since it was checked.
            ProviderError: Another save changed the number meanwhile (retryable).
        """
        document = {**number_to_document(number, clinic_id), "write_id": write_id}
        if current is not None:
            try:
                await self._numbers.replace_item(
                    current["id"],
                    document,
                    etag=current["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
                return None
            except cosmos_errors.CosmosResourceNotFoundError:
                pass  # an older save of this clinic released it meanwhile: take it again
            except cosmos_errors.CosmosAccessConditionFailedError:
                if await self._is_own_write(number, write_id):
                    return None  # this very replace, sent again by the SDK after it landed
                raise ProviderError(
                    "a phone number changed while the clinic was saved", retryable=True
                ) from None
        try:
            return dict(await self._numbers.create_item(document))
        except cosmos_errors.CosmosResourceExistsError:
            owner = await read_item(self._numbers, item_id(number), number)
        if owner is not None and owner.get("write_id") == write_id:
            return owner  # this very create, sent again by the SDK after it landed
        if owner is not None and owner["clinic_id"] != clinic_id:
            raise ValueError(f"the phone number {number} belongs to another clinic")
        raise ProviderError("a phone number changed while the clinic was saved", retryable=True)

    async def _is_own_write(self, number: str, write_id: str) -> bool:
        owner = await read_item(self._numbers, item_id(number), number)
        return owner is not None and owner.get("write_id") == write_id

    async def _withdraw(self, taken: list[_Document]) -> None:
        """Best effort: release the numbers a refused save took. A number that cannot be
        released still rings this clinic, until its next save or removal releases it."""
        try:
            for document in taken:
                await self._delete_unchanged(self._numbers, document, document["phone_number"])
        except AzureError as error:  # the SDK's errors, HTTP ones included
            log.warning("a refused clinic save kept numbers it took: %s", type(error).__name__)

    async def _write_clinic(self, clinic: Clinic, stored: _Document | None, write_id: str) -> None:
        """Create the clinic's document, or replace the one read (its ETag unchanged).

        Raises:
            ProviderError: Another save or a removal changed it meanwhile (retryable).
        """
        document = {**clinic_to_cosmos(clinic), "write_id": write_id}
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
            cosmos_errors.CosmosResourceNotFoundError,
        ):
            now = await read_item(self._clinics, document["id"], clinic.clinic_id)
            if now is not None and now.get("write_id") == write_id:
                return  # this very write, sent again by the SDK after it landed
            raise ProviderError("the clinic changed while it was saved", retryable=True) from None

    @staticmethod
    async def _delete_unchanged(
        container: ContainerProxy, document: _Document, partition_key: str
    ) -> None:
        """Delete ``document`` if it is still as read (nothing if it changed or is gone:
        then it is no longer the one this call meant to delete)."""
        try:
            await container.delete_item(
                document["id"],
                partition_key=partition_key,
                etag=document["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except (
            cosmos_errors.CosmosResourceNotFoundError,
            cosmos_errors.CosmosAccessConditionFailedError,
        ):
            pass
