"""OutboxSmsSender: the embedded profile's texts, kept in the SQLite store's outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

from reddytalk.composition import open_embedded_records
from reddytalk.ports import OutboxMessage
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER
from reddytalk.providers.sms.outbox import OutboxSmsSender
from reddytalk.settings import Settings

AT = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)
KEY = "sms-confirmation:call-1:book_appointment:appt-1"


def test_a_text_is_kept_once_per_key_and_read_back_opened(tmp_path: Path) -> None:
    async def scenario() -> tuple[list[str], list[OutboxMessage]]:
        with open_embedded_records(Settings(data_dir=tmp_path)) as records:
            sender = OutboxSmsSender(store=records.store, clock=lambda: AT)
            ids = [
                await sender.send(
                    "+15555550123",
                    text,
                    from_number=DEMO_PHONE_NUMBER,
                    clinic_id=DEMO_CLINIC_ID,
                    call_id="call-1",
                    idempotency_key=KEY,
                )  # fmt: skip
                for text in ("Your appointment is booked.", "A retry's text, not kept.")
            ]
            return ids, await records.store.list_outbox(DEMO_CLINIC_ID)

    ids, outbox = asyncio.run(scenario())

    assert ids == [KEY, KEY]
    assert outbox == [
        OutboxMessage(KEY, DEMO_CLINIC_ID, "call-1", AT, "+15555550123",
                      "Your appointment is booked.", "queued")
    ]  # fmt: skip
    assert repr(OutboxSmsSender(store=None)) == "OutboxSmsSender()"  # type: ignore[arg-type]
