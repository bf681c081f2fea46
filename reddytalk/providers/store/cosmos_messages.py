"""The Cosmos DB store's messages for staff: the ``messages`` container, partitioned by
``/clinic_id``.

A message's text and caller name are sealed (:data:`MESSAGE_PHI`) right before the
write and opened right after the read, as in SQLite. :class:`CosmosMessages` is what
:class:`~reddytalk.providers.store.cosmos.CosmosStore` delegates to.

Keeping a message is a create (:func:`create_once`: 409 means its id is kept). Marking
it open or done is a partial document update (Cosmos DB "patch", one ``set`` of
``/status``): the service applies it to the stored version atomically, so nothing is
read first, nothing sealed is opened or rewritten, and a concurrent write to the
document is not lost (there is no read-modify-write whose ETag could go stale). The
patch names the clinic's partition, so another clinic's message id is a 404; and ``set``
is idempotent, so the SDK resending it changes nothing more. The client's ``retry_write``
(:mod:`~reddytalk.providers.store.cosmos_account`) does not reach patches (azure-cosmos
4.17.1 ``_request_object.set_retry_write`` skips them: a patch may not be idempotent), so
this one asks for it itself.
"""

from __future__ import annotations

from azure.cosmos import exceptions as cosmos_errors
from azure.cosmos.aio import ContainerProxy

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import Message
from reddytalk.providers.store.checks import check_message_status
from reddytalk.providers.store.cosmos_account import create_once, provider_errors, query_partition
from reddytalk.providers.store.cosmos_documents import (
    MESSAGE_PHI,
    item_id,
    message_from_document,
    message_to_document,
)

__all__ = ["CosmosMessages"]

# Attempts, not retries, as the client's option (see cosmos_account): one resend of a
# patch whose response was lost (unreadable, timed out, 408, 5xx).
_PATCH_RETRY_WRITE = 2


class CosmosMessages:
    """Messages for staff in the ``messages`` container, PHI sealed.

    Args:
        messages: The ``messages`` container.
        cipher: Seals PHI before it is written and opens it after it is read.
    """

    def __init__(self, *, messages: ContainerProxy, cipher: PhiCipher) -> None:
        self._messages = messages
        self._cipher = cipher

    def __repr__(self) -> str:
        return "CosmosMessages()"

    async def save_message(self, message: Message) -> bool:
        """Keep a message; False (and nothing changed) if its id is kept already."""
        document = await MESSAGE_PHI.seal(self._cipher, message_to_document(message))
        with provider_errors("save message"):
            return await create_once(self._messages, document, message.clinic_id)

    async def list_messages(self, clinic_id: str) -> list[Message]:
        """The clinic's messages, oldest first (ties by message id)."""
        with provider_errors("list messages"):
            documents = await query_partition(self._messages, "clinic_id", clinic_id)
        # Sorted here, not with ORDER BY over two fields, which needs a composite index.
        documents.sort(key=lambda d: (d["taken_at"], d["message_id"]))
        return [message_from_document(await MESSAGE_PHI.open(self._cipher, d)) for d in documents]

    async def set_message_status(self, clinic_id: str, message_id: str, *, status: str) -> bool:
        """Set the status of the clinic's message with one patch; False if the clinic has
        no such message.

        Raises:
            ValueError: ``status`` is neither ``open`` nor ``done``.
        """
        check_message_status(status)
        with provider_errors("set message status"):
            try:
                await self._messages.patch_item(
                    item_id(message_id),
                    partition_key=clinic_id,
                    patch_operations=[{"op": "set", "path": "/status", "value": status}],
                    no_response=True,  # the document holds sealed PHI: nothing to send back
                    retry_write=_PATCH_RETRY_WRITE,  # a ``set`` sent twice is applied once
                )
            except cosmos_errors.CosmosResourceNotFoundError as error:
                if error.sub_status not in (None, 0):  # 1003: the container is missing
                    raise
                return False
        return True
