"""The composition root: the one place that builds adapters from settings."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reddytalk.calls.back_office import LocalBackOffice
from reddytalk.calls.service import PolicyFactory, Receptionist, VoiceChooser
from reddytalk.calls.session import CallTuning
from reddytalk.clinics.admin import open_schedules
from reddytalk.dialogue.tools import ReceptionistTools
from reddytalk.phi.cipher import PhiCipher
from reddytalk.phi.local_kek import LocalKeyFile
from reddytalk.ports import (
    BackOffice,
    CallControl,
    CallStore,
    DialoguePolicy,
    SmsSender,
    SpeechToText,
    TextToSpeech,
)
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
from reddytalk.scheduling.model import Clinic
from reddytalk.settings import Settings
from reddytalk.telephony.acs_auth import AcsTokenVerifier
from reddytalk.workflows.activities import ActivityDeps
from reddytalk.workflows.runner import InlineRunner

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential as SyncTokenCredential

__all__ = [
    "EmbeddedRecords",
    "build_call_control",
    "build_phi_cipher",
    "build_policy",
    "build_stt",
    "build_voices",
    "build_receptionist",
    "build_sms_sender",
    "build_tts",
    "build_token_verifier",
    "call_tuning",
    "open_embedded_records",
    "rotate_embedded_kek",
]


_COGNITIVE_SCOPE = "https://cognitiveservices.azure.com/.default"


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
    await open_schedules(store, ehr, now=clock())  # the clinics scripts/clinic added
    closers: list[Callable[[], Awaitable[None]]] = []
    office: BackOffice
    if settings.tools_api_url:
        office = ToolsApi(base_url=settings.tools_api_url)
    else:
        from reddytalk.records import per_clinic_ehrs  # records imports this module

        # Each clinic's requests to the EHR its file names (the embedded one, or its own).
        routed = await per_clinic_ehrs(settings, store, ehr, None, closers, clock)
        deps = ActivityDeps(ehr=routed, store=store, control=None, clock=clock)
        runner = InlineRunner(deps=deps)
        sms = OutboxSmsSender(store=store, clock=clock)  # embedded: texts go to the outbox
        office = LocalBackOffice(ehr=routed, store=store, runner=runner, clock=clock, sms=sms)
    return await _receptionist(settings, store, office, clock=clock, closers=closers)


#: How much longer a turn waits for Azure Speech's interim words to reach the end of the
#: speech before it waits for the final instead (~1 s): the interims lag the audio.
AZURE_WAIT_FOR_WORDS_MS = 300


def call_tuning(settings: Settings) -> CallTuning:
    """The calls' timing knobs: the settings', and what the recognizer needs."""
    return CallTuning(
        end_of_turn_silence_ms=settings.end_of_turn_silence_ms,
        settled_end_of_turn_silence_ms=settings.settled_end_of_turn_silence_ms,
        wait_for_words_ms=AZURE_WAIT_FOR_WORDS_MS if settings.stt == "azure" else 0,
        barge_in_ms=settings.barge_in_ms,
    )


async def _receptionist(
    settings: Settings,
    store: CallStore,
    office: BackOffice,
    *,
    clock: Callable[[], dt.datetime],
    closers: list[Callable[[], Awaitable[None]]],
) -> Receptionist:
    """The receptionist on ``store`` and ``office``, with the engines the settings pick."""
    try:
        tts = await build_tts(settings, on_close=closers)
        voices = await build_voices(settings, tts, on_close=closers)
        stt = await build_stt(settings, on_close=closers)
        policy = await build_policy(settings, on_close=closers)
    except BaseException:
        await _close_all(closers)
        raise
    return Receptionist(
        store=store,
        office=office,
        stt=stt,
        tts=tts,
        tuning=call_tuning(settings),
        clock=clock,
        on_close=lambda: _close_all(closers),
        policy=policy,
        voices=voices,
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
    office = ToolsApi(base_url=settings.tools_api_url)
    return await _receptionist(settings, records.store, office, clock=clock, closers=closers)


async def _close_all(closers: list[Callable[[], Awaitable[None]]]) -> None:
    for close in reversed(closers):
        await close()


async def build_tts(
    settings: Settings, *, on_close: list[Callable[[], Awaitable[None]]]
) -> TextToSpeech:
    """The receptionist's voice, with a fallback chain ending in espeak-ng (local, always
    there): ``espeak``; ``azure`` (Azure Neural, then espeak-ng); ``elevenlabs``
    (ElevenLabs, then Azure Neural when a Speech resource is configured, then espeak-ng).
    A voice that fails or is late to its first audio hands the sentence to the next; a
    cloud voice keeps its fixed phrases ("One moment.", ...) after saying them once.

    Raises:
        ValueError: ElevenLabs is chosen without a voice or an API key, or Azure without a
            Speech endpoint or region.
    """
    from reddytalk.providers.tts.fallback import CircuitBreaker, FallbackTextToSpeech
    from reddytalk.providers.tts.phrase_cache import PhraseCache

    voice: TextToSpeech = EspeakTextToSpeech(voice=settings.voice)
    if settings.tts == "espeak":
        return voice
    bound = settings.tts_first_audio_timeout_ms
    if settings.tts == "azure" or settings.azure_speech_endpoint or settings.azure_speech_region:
        from reddytalk.providers.tts.azure_neural import AzureNeuralTextToSpeech

        access = _speech_access(settings, await _speech_key(settings, on_close), on_close)
        azure = AzureNeuralTextToSpeech(**access, voice=settings.azure_tts_voice)
        on_close.append(azure.aclose)
        # The cache wraps the voice, inside the fallback: a phrase the fallback said is
        # never replayed in the fallback's voice once the primary is back.
        voice = FallbackTextToSpeech(
            PhraseCache(azure), voice, first_audio_timeout_ms=bound, breaker=CircuitBreaker()
        )
    if settings.tts == "azure":
        return voice
    from reddytalk.providers.tts.elevenlabs import ElevenLabsTextToSpeech

    if not settings.elevenlabs_voice_id:
        raise ValueError("REDDYTALK_ELEVENLABS_VOICE_ID is needed for the ElevenLabs voice")
    api_key = await _secret(settings, settings.elevenlabs_api_key_name, "ElevenLabs", on_close)
    eleven = ElevenLabsTextToSpeech(
        api_key=api_key,
        voice_id=settings.elevenlabs_voice_id,
        model_id=settings.elevenlabs_model_id,
        base_url=settings.elevenlabs_base_url,
    )
    on_close.append(eleven.aclose)
    return FallbackTextToSpeech(
        PhraseCache(eleven), voice, first_audio_timeout_ms=bound, breaker=CircuitBreaker()
    )


async def build_voices(
    settings: Settings, tts: TextToSpeech, *, on_close: list[Callable[[], Awaitable[None]]]
) -> VoiceChooser:
    """Each clinic's voice: its own ElevenLabs voice (``Clinic.voice_id``) over the same
    account, fallback chain and circuit breaker (with its own phrase cache), else ``tts``;
    one object per voice, made on the clinic's first call."""
    from reddytalk.providers.tts.elevenlabs import ElevenLabsTextToSpeech
    from reddytalk.providers.tts.fallback import FallbackTextToSpeech
    from reddytalk.providers.tts.phrase_cache import PhraseCache

    by_voice: dict[str, TextToSpeech] = {}

    def choose(clinic: Clinic) -> TextToSpeech:
        if clinic.voice_id is None or not isinstance(tts, FallbackTextToSpeech):
            return tts
        cached = tts.primary
        if not isinstance(cached, PhraseCache):
            return tts
        eleven = cached.voice
        if not isinstance(eleven, ElevenLabsTextToSpeech):
            return tts
        if clinic.voice_id not in by_voice:
            own = PhraseCache(eleven.with_voice(clinic.voice_id))
            by_voice[clinic.voice_id] = tts.with_primary(own)
        return by_voice[clinic.voice_id]

    return choose


async def _secret(
    settings: Settings, name: str, what: str, on_close: list[Callable[[], Awaitable[None]]]
) -> str:
    """The secret ``name`` (Key Vault through the managed identity when a vault is
    configured, else ``REDDYTALK_SECRET_<NAME>``).

    Raises:
        ValueError: There is no such secret (``what`` names who needs it).
    """
    from reddytalk.records import open_credential, open_secrets

    credential = open_credential(settings, on_close) if settings.key_vault_url else None
    value = await (await open_secrets(settings, credential, on_close)).get(name)
    if not value:
        raise ValueError(f"no secret named {name!r} for {what}")
    return value


def _sync_credential(
    settings: Settings, on_close: list[Callable[[], Awaitable[None]]]
) -> SyncTokenCredential:
    """The managed identity as a synchronous credential (the Speech SDK calls it from its
    own threads)."""
    from azure.identity import DefaultAzureCredential

    credential = DefaultAzureCredential(
        managed_identity_client_id=settings.managed_identity_client_id or None
    )

    async def close() -> None:
        credential.close()

    on_close.append(close)
    return credential


def _speech_access(
    settings: Settings, key: str | None, on_close: list[Callable[[], Awaitable[None]]]
) -> dict[str, Any]:
    """How the Speech SDK reaches the resource: a key with the region or endpoint, or
    the managed identity with the endpoint (its custom domain)."""
    endpoint = settings.azure_speech_endpoint or None
    if key is not None:
        if endpoint is None and not settings.azure_speech_region:
            raise ValueError(
                "REDDYTALK_AZURE_SPEECH_ENDPOINT or REDDYTALK_AZURE_SPEECH_REGION is needed"
            )
        return {"key": key, "endpoint": endpoint, "region": settings.azure_speech_region or None}
    if endpoint is None:
        raise ValueError(
            "REDDYTALK_AZURE_SPEECH_ENDPOINT is needed for Azure Speech with the managed identity"
        )
    return {"credential": _sync_credential(settings, on_close), "endpoint": endpoint}


async def _speech_key(
    settings: Settings, on_close: list[Callable[[], Awaitable[None]]]
) -> str | None:
    if not settings.azure_speech_key_name:
        return None
    return await _secret(settings, settings.azure_speech_key_name, "Azure Speech", on_close)


async def build_stt(
    settings: Settings, *, on_close: list[Callable[[], Awaitable[None]]]
) -> SpeechToText:
    """The receptionist's ears: pocketsphinx, or Azure Speech continuous recognition.

    Raises:
        ValueError: Azure Speech is chosen without an endpoint (or region and key).
    """
    if settings.stt == "pocketsphinx":
        return PocketsphinxSpeechToText()
    from reddytalk.providers.stt.azure_speech import AzureSpeechToText

    access = _speech_access(settings, await _speech_key(settings, on_close), on_close)
    return AzureSpeechToText(
        **access,
        segmentation_silence_ms=settings.speech_segmentation_silence_ms,
        final_wait_ms=settings.speech_final_wait_ms,
    )


async def build_policy(
    settings: Settings, *, on_close: list[Callable[[], Awaitable[None]]]
) -> PolicyFactory | None:
    """Who answers: None for the deterministic receptionist; for ``tiered``, a factory of
    :class:`TieredPolicy` over one Azure OpenAI client shared by every call (its
    connections stay warm), with the managed identity's token or a key.

    Raises:
        ValueError: The tiered policy is chosen without an Azure OpenAI endpoint.
    """
    if settings.policy == "deterministic":
        return None
    from reddytalk.dialogue.tiered import TieredPolicy
    from reddytalk.providers.llm.azure_openai import AzureOpenAIChat
    from reddytalk.providers.llm.tool_schemas import receptionist_tools

    if not settings.azure_openai_endpoint:
        raise ValueError("REDDYTALK_AZURE_OPENAI_ENDPOINT is needed for the tiered policy")
    access: dict[str, Any]
    if settings.azure_openai_api_key_name:
        name = settings.azure_openai_api_key_name
        access = {"api_key": await _secret(settings, name, "Azure OpenAI", on_close)}
    else:
        from azure.identity.aio import get_bearer_token_provider

        from reddytalk.records import open_credential

        credential = open_credential(settings, on_close)
        access = {"token_provider": get_bearer_token_provider(credential, _COGNITIVE_SCOPE)}
    chat = AzureOpenAIChat(
        endpoint=settings.azure_openai_endpoint,
        api_version=settings.azure_openai_api_version,
        first_token_late_ms=settings.llm_first_token_late_ms,
        **access,
    )
    on_close.append(chat.aclose)
    schemas = receptionist_tools()

    def tiered(tools: ReceptionistTools) -> DialoguePolicy:
        return TieredPolicy(
            tools=tools,
            chat=chat,
            tool_schemas=schemas,
            fast_deployment=settings.azure_openai_fast_deployment,
            complex_deployment=settings.azure_openai_complex_deployment,
        )

    return tiered


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
