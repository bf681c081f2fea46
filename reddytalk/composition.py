"""The composition root: the one place that builds adapters from settings."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from reddytalk.calls.back_office import LocalBackOffice
from reddytalk.calls.service import Receptionist
from reddytalk.calls.session import CallTuning
from reddytalk.phi.cipher import PhiCipher
from reddytalk.phi.local_kek import LocalKeyFile
from reddytalk.ports import BackOffice, CallControl, CallStore, SmsSender, TextToSpeech
from reddytalk.providers.back_office.tools_api import ToolsApi
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import seed_demo
from reddytalk.providers.sms.outbox import OutboxSmsSender
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.providers.store.sqlite_db import SCHEMA_VERSION, SqliteDb
from reddytalk.providers.store.sqlite_keys import SqliteDataKeys
from reddytalk.providers.store.sqlite_upgrade import seal_plaintext_store
from reddytalk.providers.stt.pocketsphinx import PocketsphinxSpeechToText
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.settings import Settings
from reddytalk.telephony.acs_auth import AcsTokenVerifier
from reddytalk.workflows.activities import ActivityDeps
from reddytalk.workflows.runner import InlineRunner

__all__ = [
    "EmbeddedRecords",
    "build_call_control",
    "build_phi_cipher",
    "build_receptionist",
    "build_sms_sender",
    "build_tts",
    "build_token_verifier",
    "open_embedded_records",
    "rotate_embedded_kek",
]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class EmbeddedRecords:
    """The embedded profile's records: one SQLite file, its PHI cipher, the store and the
    EHR on it. Closing it closes the file."""

    db: SqliteDb
    cipher: PhiCipher
    store: SqliteStore
    ehr: EmbeddedEhr

    def close(self) -> None:
        """Close the SQLite file."""
        self.db.close()

    def __enter__(self) -> EmbeddedRecords:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def build_phi_cipher(db: SqliteDb, *, key_dir: Path) -> PhiCipher:
    """The embedded profile's cipher: data keys in ``db``, wrapped by the key files in
    ``key_dir`` (created on first use)."""
    return PhiCipher(kek=LocalKeyFile(key_dir), keys=SqliteDataKeys(db=db))


def open_embedded_records(
    settings: Settings,
    *,
    now: Callable[[], dt.datetime] = _utc_now,
    open_plaintext: bool = False,
) -> EmbeddedRecords:
    """Open (or create) the SQLite file under ``settings.data_dir``, with its cipher.

    The key-encryption key files live in ``settings.phi_key_dir``; everything that opens
    one store file must use the same folder.

    Args:
        settings: Where the file and the keys are.
        now: The EHR's clock.
        open_plaintext: Open a schema 1 file too, for :func:`seal_plaintext_store`.

    Raises:
        ProviderError: The file cannot be opened, is of a newer schema, or of schema 1
            (PHI in plaintext) without ``open_plaintext``.
    """
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = SqliteDb(settings.store_path, open_plaintext=open_plaintext)
    cipher = build_phi_cipher(db, key_dir=settings.phi_key_dir)
    return EmbeddedRecords(
        db=db,
        cipher=cipher,
        store=SqliteStore(db=db, cipher=cipher),
        ehr=EmbeddedEhr(db=db, cipher=cipher, now=now),
    )


async def rotate_embedded_kek(settings: Settings) -> int:
    """Rotate the local key-encryption key and re-wrap every data key with the new one;
    how many data keys were re-wrapped. Sealed data is not touched; the old key files
    stay (delete them once no process may still hold a wrap of theirs)."""
    with open_embedded_records(settings) as records:
        await asyncio.to_thread(LocalKeyFile(settings.phi_key_dir).rotate)
        return await records.cipher.rotate_kek()


async def build_receptionist(
    settings: Settings, *, clock: Callable[[], dt.datetime] = _utc_now
) -> Receptionist:
    """Build the receptionist for ``settings.profile``.

    The embedded profile opens (or creates) the SQLite store under
    ``settings.data_dir`` and seeds the demo clinic with two weeks of schedule
    from today; seeding is idempotent. A store written by schema 1, with PHI in
    plaintext, is sealed in place first.
    """
    if settings.store != "sqlite":
        return await _build_cloud_receptionist(settings, clock=clock)
    records = open_embedded_records(settings, now=clock, open_plaintext=True)
    if records.db.schema_version < SCHEMA_VERSION:
        await seal_plaintext_store(records.db, records.cipher)
    store, ehr = records.store, records.ehr
    await seed_demo(store, ehr, today=clock().date())
    closers: list[Callable[[], Awaitable[None]]] = []
    office: BackOffice
    if settings.tools_api_url:
        office = ToolsApi(base_url=settings.tools_api_url)
    else:
        runner = InlineRunner(deps=ActivityDeps(ehr=ehr, store=store, control=None, clock=clock))
        sms = OutboxSmsSender(store=store, clock=clock)  # embedded: texts go to the outbox
        office = LocalBackOffice(ehr=ehr, store=store, runner=runner, clock=clock, sms=sms)
    return Receptionist(
        store=store,
        office=office,
        stt=PocketsphinxSpeechToText(),
        tts=await build_tts(settings, on_close=closers),
        tuning=CallTuning(
            end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
            barge_in_ms=settings.barge_in_ms,
        ),
        clock=clock,
        on_close=lambda: _close_all(closers),
    )


async def _build_cloud_receptionist(
    settings: Settings, *, clock: Callable[[], dt.datetime]
) -> Receptionist:
    """The media worker in the cloud: clinics from the store, every tool through the
    Functions app's tools API (it holds no EHR credentials and writes no PHI itself)."""
    if not settings.tools_api_url:
        raise ValueError(
            "REDDYTALK_TOOLS_API_URL is needed: in the cloud the media worker reaches the "
            "clinic's records only through the Functions app's tools API"
        )
    from reddytalk.records import open_records

    records = await open_records(settings, now=clock, with_ehr=False)
    closers: list[Callable[[], Awaitable[None]]] = [records.aclose]
    return Receptionist(
        store=records.store,
        office=ToolsApi(base_url=settings.tools_api_url),
        stt=PocketsphinxSpeechToText(),  # Azure Speech is not wired in yet (issue 5)
        tts=await build_tts(settings, on_close=closers),
        tuning=CallTuning(
            end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
            barge_in_ms=settings.barge_in_ms,
        ),
        clock=clock,
        on_close=lambda: _close_all(closers),
    )


async def _close_all(closers: list[Callable[[], Awaitable[None]]]) -> None:
    for close in reversed(closers):
        await close()


async def build_tts(
    settings: Settings, *, on_close: list[Callable[[], Awaitable[None]]]
) -> TextToSpeech:
    """The receptionist's voice: espeak-ng, or ElevenLabs with espeak-ng speaking any
    sentence ElevenLabs fails or is late with (its API key from the secrets port).

    Raises:
        ValueError: ElevenLabs is chosen without a voice or an API key.
    """
    local = EspeakTextToSpeech(voice=settings.voice)
    if settings.tts == "espeak":
        return local
    from reddytalk.providers.tts.elevenlabs import ElevenLabsTextToSpeech
    from reddytalk.providers.tts.fallback import CircuitBreaker, FallbackTextToSpeech
    from reddytalk.records import open_credential, open_secrets

    if not settings.elevenlabs_voice_id:
        raise ValueError("REDDYTALK_ELEVENLABS_VOICE_ID is needed for the ElevenLabs voice")
    credential = open_credential(settings, on_close) if settings.key_vault_url else None
    secrets = await open_secrets(settings, credential, on_close)
    api_key = await secrets.get(settings.elevenlabs_api_key_name)
    if not api_key:
        raise ValueError(f"no secret named {settings.elevenlabs_api_key_name!r} for ElevenLabs")
    eleven = ElevenLabsTextToSpeech(
        api_key=api_key,
        voice_id=settings.elevenlabs_voice_id,
        model_id=settings.elevenlabs_model_id,
        base_url=settings.elevenlabs_base_url,
    )
    on_close.append(eleven.aclose)
    return FallbackTextToSpeech(
        eleven,
        local,
        first_audio_timeout_ms=settings.tts_first_audio_timeout_ms,
        breaker=CircuitBreaker(),
    )


def build_sms_sender(settings: Settings, store: CallStore) -> SmsSender:
    """Where confirmations are texted: ACS SMS on the cloud profile (from the ACS
    connection string), the store's outbox on the embedded one (nothing leaves the
    machine; the local stack's texts can be read there)."""
    if settings.profile != "cloud":
        return OutboxSmsSender(store=store)
    if not settings.acs_connection_string:
        raise ValueError("REDDYTALK_ACS_CONNECTION_STRING is not set (needed to send texts)")
    # Imported here: only the Functions app sends texts.
    from reddytalk.providers.sms.acs_sms import AcsSmsSender

    trust = {"connection_verify": settings.acs_ca_file} if settings.acs_ca_file else None
    return AcsSmsSender(connection_string=settings.acs_connection_string, client_options=trust)


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
