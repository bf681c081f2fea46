"""The embedded profile's :class:`~reddytalk.ports.SmsSender`: texts kept in the store.

Nothing leaves the machine: each text goes to the store's outbox (number and text
sealed, like every PHI field), where a person or a test reads it back with
``list_outbox``. The idempotency key is the message id, so the same key keeps one
message however often it is sent.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from reddytalk.ports import CallStore, OutboxMessage

__all__ = ["OutboxSmsSender"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class OutboxSmsSender:
    """Keeps each text in the store's outbox instead of sending it.

    Args:
        store: The store whose outbox holds the texts.
        clock: The time stamped on each message.
    """

    def __init__(self, *, store: CallStore, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self._store = store
        self._clock = clock

    def __repr__(self) -> str:
        return "OutboxSmsSender()"

    async def send(
        self,
        to_number: str,
        text: str,
        *,
        from_number: str,
        clinic_id: str,
        call_id: str,
        idempotency_key: str,
    ) -> str:
        """Keep the text in the outbox; the message id (the idempotency key).

        ``from_number`` is not kept: the outbox belongs to the clinic it is sent for.

        Raises:
            ProviderError: The store failed.
        """
        message = OutboxMessage(
            message_id=idempotency_key,
            clinic_id=clinic_id,
            call_id=call_id,
            created_at=self._clock(),
            to_number=to_number,
            text=text,
        )
        await self._store.add_to_outbox(message)  # False: kept already, by an earlier send
        return message.message_id

    async def close(self) -> None:
        """Nothing to release: the store belongs to its owner."""
