"""The composition root: the one place that builds adapters from settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from reddytalk.calls.service import Receptionist
from reddytalk.calls.session import CallTuning
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import seed_demo
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.providers.store.sqlite_db import SqliteDb
from reddytalk.providers.stt.pocketsphinx import PocketsphinxSpeechToText
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.settings import Settings

__all__ = ["build_receptionist"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def build_receptionist(
    settings: Settings, *, clock: Callable[[], dt.datetime] = _utc_now
) -> Receptionist:
    """Build the receptionist for ``settings.profile``.

    The embedded profile opens (or creates) the SQLite store under
    ``settings.data_dir`` and seeds the demo clinic with two weeks of schedule
    from today; seeding is idempotent.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = SqliteDb(settings.store_path)
    store = SqliteStore(db=db)
    ehr = EmbeddedEhr(db=db, now=clock)
    await seed_demo(store, ehr, today=clock().date())
    return Receptionist(
        store=store,
        ehr=ehr,
        stt=PocketsphinxSpeechToText(),
        tts=EspeakTextToSpeech(voice=settings.voice),
        tuning=CallTuning(
            end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
            barge_in_ms=settings.barge_in_ms,
        ),
        clock=clock,
    )
