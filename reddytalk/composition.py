"""The composition root: the one place that builds adapters from settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from reddytalk.calls.back_office import LocalBackOffice
from reddytalk.calls.service import Receptionist
from reddytalk.calls.session import CallTuning
from reddytalk.ports import BackOffice, CallControl, CallStore, Ehr
from reddytalk.providers.back_office.tools_api import ToolsApi
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import seed_demo
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.providers.store.sqlite_db import SqliteDb
from reddytalk.providers.stt.pocketsphinx import PocketsphinxSpeechToText
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.settings import Settings
from reddytalk.telephony.acs_auth import AcsTokenVerifier
from reddytalk.workflows.activities import ActivityDeps
from reddytalk.workflows.runner import InlineRunner

__all__ = ["build_call_control", "build_receptionist", "build_records", "build_token_verifier"]


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
    office: BackOffice
    if settings.tools_api_url:
        office = ToolsApi(base_url=settings.tools_api_url)
    else:
        runner = InlineRunner(deps=ActivityDeps(ehr=ehr, store=store, control=None, clock=clock))
        office = LocalBackOffice(ehr=ehr, store=store, runner=runner, clock=clock)
    return Receptionist(
        store=store,
        office=office,
        stt=PocketsphinxSpeechToText(),
        tts=EspeakTextToSpeech(voice=settings.voice),
        tuning=CallTuning(
            end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
            barge_in_ms=settings.barge_in_ms,
        ),
        clock=clock,
    )


def build_records(settings: Settings) -> tuple[CallStore, Ehr]:
    """ReddyTalk's own records and the clinics' EHR (one SQLite file on this profile)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = SqliteDb(settings.store_path)
    return SqliteStore(db=db), EmbeddedEhr(db=db)


def build_call_control(settings: Settings) -> CallControl:
    """ACS Call Automation, from its connection string.

    Raises:
        ValueError: No connection string is configured.
    """
    if not settings.acs_connection_string:
        raise ValueError("REDDYTALK_ACS_CONNECTION_STRING is not set")
    # Imported here: only the Functions app controls calls, and the media worker's
    # image does not carry the callautomation SDK.
    from reddytalk.telephony.call_automation import AcsCallControl

    trust = {"connection_verify": settings.acs_ca_file} if settings.acs_ca_file else None
    return AcsCallControl(
        connection_string=settings.acs_connection_string,
        cognitive_services_endpoint=settings.cognitive_services_endpoint or None,
        client_options=trust,
    )


def build_token_verifier(settings: Settings) -> AcsTokenVerifier:
    """The verifier of ACS's JWTs, for the configured ACS resource.

    Raises:
        ValueError: No ACS resource id (the tokens' audience) is configured.
    """
    if not settings.acs_resource_id:
        raise ValueError("REDDYTALK_ACS_RESOURCE_ID is not set")
    return AcsTokenVerifier(
        audience=settings.acs_resource_id, openid_config_url=settings.acs_openid_config_url
    )
