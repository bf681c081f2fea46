"""One settings object, read from the environment in one place.

``REDDYTALK_PROFILE`` picks the profile (``embedded`` or ``cloud``); a setting per
provider may override it (``REDDYTALK_STORE``, ``REDDYTALK_EHR``, ``REDDYTALK_STT``,
``REDDYTALK_POLICY``, ``REDDYTALK_TTS``), so any one cloud engine can be tried with the
rest local. Nothing else in ReddyTalk reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reddytalk.telephony.acs_auth import ACS_OPENID_CONFIG_URL

SECRET_PREFIX = "REDDYTALK_SECRET_"
"""The embedded profile's secrets: ``REDDYTALK_SECRET_<NAME>`` (see ``providers.secrets.env``)."""

__all__ = ["Settings"]


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, not {value}")
    return value


_STORES = ("sqlite", "cosmos")
_EHRS = ("embedded", "fhir")


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = (env.get(name) or "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ValueError(f"{name} must be true or false, not {raw!r}")
    return raw in ("true", "1")


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything configurable, with the embedded profile's defaults.

    Attributes:
        profile: ``embedded`` (local engines, no cloud) or ``cloud``.
        data_dir: Where the embedded store keeps its SQLite file.
        key_dir: The embedded profile's key-encryption key files (they wrap the
            clinics' PHI data keys); None: ``<data_dir>/keys`` (see :attr:`phi_key_dir`).
        host: Interface the media worker listens on (loopback by default: the
            embedded profile has no caller authentication yet).
        port: Its port.
        end_of_turn_silence_ms: Caller silence that ends a turn.
        settled_end_of_turn_silence_ms: The shorter silence that ends a turn once the
            recognizer's hypothesis covers all the caller said and does not stop
            mid-sentence (the turn is answered on that hypothesis).
        barge_in_ms: Caller speech over an answer that interrupts it.
        voice: The receptionist's espeak-ng voice.
        log_level: Root log level.
        acs_connection_string: ACS Call Automation's connection string (a secret:
            a Key Vault reference in Azure; never in repr).
        acs_resource_id: The ACS resource's ``immutableResourceId``: the audience
            of the JWTs ACS signs on callbacks and media connections.
        acs_openid_config_url: Where ACS publishes its signing keys' OpenID
            configuration (the documented URL unless a test serves its own).
        acs_ca_file: A CA bundle to trust for ACS's endpoint instead of the system's
            (the local stack's loopback ACS only; empty in Azure).
        cognitive_services_endpoint: The Speech resource ACS speaks through when
            it plays text itself (the apology when the media stream fails).
        public_functions_url: The Functions app's public origin (callbacks go to
            ``<it>/api/call_events``).
        public_media_url: The media worker's public ``wss://`` origin.
        tools_secret: The secret the Functions app signs and verifies per-call tool tokens
            with (at least 32 bytes; Key Vault in Azure; never in repr).
        admin_tenant_id: The Entra ID tenant whose tokens the admin API accepts.
        admin_audience: The admin API's app registration (client id or App ID URI):
            what the tokens' ``aud`` must be.
        admin_openid_config_url: Where the tenant's signing keys' OpenID configuration
            is; empty: Entra ID's v2.0 configuration of ``admin_tenant_id``.
        admin_token: The embedded profile's local admin token (Operator rights;
            never in repr); empty: none is accepted.
        softphone_line_url: The phone line the console's softphone dials (the local
            stack's ``ws://127.0.0.1:<port>``); empty (Azure): no softphone.
        tools_api_url: The Functions app's origin, for the media worker: when set,
            every tool of a call (reads, writes as orchestrations, messages, the
            call record) goes to its tools API; else it runs in process.
        store: Where ReddyTalk's records live: ``sqlite`` (embedded default) or
            ``cosmos`` (cloud default).
        ehr: The clinics' schedules: ``embedded`` (in the SQLite file; embedded
            default) or ``fhir`` (cloud default).
        cosmos_endpoint: The Cosmos DB account (``https://<account>.documents.azure.com``).
        cosmos_database: Its database.
        cosmos_key: An account key, for a local emulator only (Azure uses the managed
            identity and has keys disabled; never in repr).
        cosmos_ca_file: A CA bundle for a local emulator's self-signed certificate.
        cosmos_create_containers: Create the database and containers if missing (a
            local emulator; in Azure, Bicep creates them).
        fhir_base_url: The EHR's FHIR R4 base URL.
        fhir_token_url: Its OAuth2 token endpoint (client credentials); empty: no auth.
        fhir_client_id: ReddyTalk's client id at the EHR.
        fhir_scope: The scopes to ask for, if the EHR wants them.
        fhir_client_secret_name: The name of the secret (Key Vault in the cloud,
            ``REDDYTALK_SECRET_<NAME>`` locally) holding the client secret.
        key_vault_url: The Key Vault holding secrets (``https://<vault>.vault.azure.net``).
        kek_id: The Key Vault key that wraps the clinics' PHI data keys; empty: local
            key files under :attr:`phi_key_dir`.
        key_vault_ca_file: A CA bundle for a loopback Key Vault (tests only).
        managed_identity_client_id: The user-assigned managed identity to use; empty:
            the default credential chain's choice.
        environment_secrets: The ``REDDYTALK_SECRET_*`` variables (the embedded
            profile's secrets; never in repr).
        tts: The receptionist's voice: ``espeak`` (local) or ``elevenlabs`` (with
            espeak-ng speaking any sentence ElevenLabs fails or is late with).
        elevenlabs_voice_id: The ElevenLabs voice.
        elevenlabs_model_id: Its model (a low-latency one).
        elevenlabs_base_url: Its API origin.
        elevenlabs_api_key_name: The secret holding the API key (Key Vault in the
            cloud, ``REDDYTALK_SECRET_<NAME>`` locally).
        tts_first_audio_timeout_ms: How long the voice may take to its first audio
            before the fallback speaks the sentence.
        tts: ``espeak``, ``elevenlabs`` (Azure Neural behind it when a Speech resource
            is configured, espeak-ng last) or ``azure`` (Azure Neural, espeak-ng behind).
        azure_tts_voice: The Azure Neural voice.
        stt: Speech to text: ``pocketsphinx`` (embedded default) or ``azure`` (cloud).
        azure_speech_endpoint: The Speech resource's endpoint (its custom domain: needed
            for managed identity).
        azure_speech_region: Its region (with a key, instead of the endpoint).
        azure_speech_key_name: The secret holding a Speech key; empty: managed identity.
        speech_segmentation_silence_ms: Azure Speech's segmentation silence (the
            pipeline's VAD still decides the end of the turn and barge-in).
        speech_final_wait_ms: How long a turn waits for Azure Speech's final result.
        policy: Who answers: ``deterministic`` (embedded default) or ``tiered`` (code
            first, then the fast and the complex Azure OpenAI deployments; cloud).
        azure_openai_endpoint: The Azure OpenAI resource's endpoint.
        azure_openai_api_version: Its data-plane API version.
        azure_openai_fast_deployment: The deployment for ordinary turns.
        azure_openai_complex_deployment: The deployment the escalation rule picks.
        azure_openai_api_key_name: The secret holding a key; empty: managed identity.
        llm_first_token_late_ms: After this long without the model's first token the
            caller hears a holding phrase ("One moment.").
    """

    profile: str = "embedded"
    data_dir: Path = Path("var")
    key_dir: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8765
    end_of_turn_silence_ms: int = 400
    settled_end_of_turn_silence_ms: int = 200
    barge_in_ms: int = 200
    voice: str = "en-us+m3"
    log_level: str = "INFO"
    acs_connection_string: str = field(default="", repr=False)
    acs_resource_id: str = ""
    acs_openid_config_url: str = ACS_OPENID_CONFIG_URL
    acs_ca_file: str = ""
    cognitive_services_endpoint: str = ""
    public_functions_url: str = "http://127.0.0.1:7071"
    public_media_url: str = "ws://127.0.0.1:8765"
    tools_secret: bytes = field(default=b"", repr=False)
    admin_tenant_id: str = ""
    admin_audience: str = ""
    admin_openid_config_url: str = ""
    admin_token: str = field(default="", repr=False)
    softphone_line_url: str = ""
    tools_api_url: str = ""
    store: str = "sqlite"
    ehr: str = "embedded"
    cosmos_endpoint: str = ""
    cosmos_database: str = "reddytalk"
    cosmos_key: str = field(default="", repr=False)
    cosmos_ca_file: str = ""
    cosmos_create_containers: bool = False
    fhir_base_url: str = ""
    fhir_token_url: str = ""
    fhir_client_id: str = ""
    fhir_scope: str = ""
    fhir_client_secret_name: str = "fhir-client-secret"
    key_vault_url: str = ""
    kek_id: str = ""
    key_vault_ca_file: str = ""
    managed_identity_client_id: str = ""
    environment_secrets: Mapping[str, str] = field(default_factory=dict, repr=False)
    tts: str = "espeak"
    elevenlabs_voice_id: str = ""
    elevenlabs_model_id: str = "eleven_flash_v2_5"
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_api_key_name: str = "elevenlabs-api-key"
    tts_first_audio_timeout_ms: int = 300
    azure_tts_voice: str = "en-US-JennyNeural"
    stt: str = "pocketsphinx"
    azure_speech_endpoint: str = ""
    azure_speech_region: str = ""
    azure_speech_key_name: str = ""
    speech_segmentation_silence_ms: int = 300
    speech_final_wait_ms: int = 600
    policy: str = "deterministic"
    azure_openai_endpoint: str = ""
    azure_openai_api_version: str = "2024-10-21"
    azure_openai_fast_deployment: str = "fast"
    azure_openai_complex_deployment: str = "complex"
    azure_openai_api_key_name: str = ""
    llm_first_token_late_ms: int = 700

    @property
    def store_path(self) -> Path:
        """The embedded store's SQLite file."""
        return self.data_dir / "reddytalk.sqlite3"

    @property
    def phi_key_dir(self) -> Path:
        """The folder of the local key-encryption key files: ``key_dir``, else
        ``<data_dir>/keys`` (so it follows a replaced ``data_dir``)."""
        return self.key_dir if self.key_dir is not None else self.data_dir / "keys"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read ``REDDYTALK_*`` variables; a bad value raises ValueError naming it."""
        env = os.environ if env is None else env
        profile = env.get("REDDYTALK_PROFILE", "embedded")
        if profile not in ("embedded", "cloud"):
            raise ValueError(f"REDDYTALK_PROFILE must be embedded or cloud, not {profile!r}")
        cloud = profile == "cloud"
        store = _choice(
            env, "REDDYTALK_STORE", "cosmos" if cloud else "sqlite", ("sqlite", "cosmos")
        )
        ehr = _choice(env, "REDDYTALK_EHR", "fhir" if cloud else "embedded", ("embedded", "fhir"))
        return cls(
            profile=profile,
            data_dir=Path(env.get("REDDYTALK_DATA_DIR", "var")),
            key_dir=Path(env["REDDYTALK_KEY_DIR"]) if env.get("REDDYTALK_KEY_DIR") else None,
            host=env.get("REDDYTALK_HOST", "127.0.0.1"),
            port=_int(env, "REDDYTALK_PORT", 8765, 0, 65535),
            end_of_turn_silence_ms=_int(env, "REDDYTALK_END_OF_TURN_MS", 400, 100, 3000),
            settled_end_of_turn_silence_ms=_int(
                env, "REDDYTALK_SETTLED_END_OF_TURN_MS", 200, 60, 3000
            ),
            barge_in_ms=_int(env, "REDDYTALK_BARGE_IN_MS", 200, 60, 2000),
            voice=env.get("REDDYTALK_VOICE", "en-us+m3"),
            log_level=env.get("REDDYTALK_LOG_LEVEL", "INFO").upper(),
            acs_connection_string=env.get("REDDYTALK_ACS_CONNECTION_STRING", ""),
            acs_resource_id=env.get("REDDYTALK_ACS_RESOURCE_ID", ""),
            acs_openid_config_url=env.get("REDDYTALK_ACS_OPENID_CONFIG_URL", ACS_OPENID_CONFIG_URL),
            acs_ca_file=env.get("REDDYTALK_ACS_CA_FILE", ""),
            cognitive_services_endpoint=env.get("REDDYTALK_COGNITIVE_SERVICES_ENDPOINT", ""),
            public_functions_url=env.get("REDDYTALK_PUBLIC_FUNCTIONS_URL", "http://127.0.0.1:7071"),
            public_media_url=env.get("REDDYTALK_PUBLIC_MEDIA_URL", "ws://127.0.0.1:8765"),
            tools_secret=env.get("REDDYTALK_TOOLS_SECRET", "").encode(),
            admin_tenant_id=env.get("REDDYTALK_ADMIN_TENANT_ID", ""),
            admin_audience=env.get("REDDYTALK_ADMIN_AUDIENCE", ""),
            admin_openid_config_url=env.get("REDDYTALK_ADMIN_OPENID_CONFIG_URL", ""),
            admin_token=env.get("REDDYTALK_ADMIN_TOKEN", ""),
            softphone_line_url=env.get("REDDYTALK_SOFTPHONE_LINE_URL", ""),
            tools_api_url=env.get("REDDYTALK_TOOLS_API_URL", ""),
            store=store,
            ehr=ehr,
            cosmos_endpoint=env.get("REDDYTALK_COSMOS_ENDPOINT", ""),
            cosmos_database=env.get("REDDYTALK_COSMOS_DATABASE", "") or "reddytalk",
            cosmos_key=env.get("REDDYTALK_COSMOS_KEY", ""),
            cosmos_ca_file=env.get("REDDYTALK_COSMOS_CA_FILE", ""),
            cosmos_create_containers=_flag(env, "REDDYTALK_COSMOS_CREATE_CONTAINERS"),
            fhir_base_url=env.get("REDDYTALK_FHIR_BASE_URL", ""),
            fhir_token_url=env.get("REDDYTALK_FHIR_TOKEN_URL", ""),
            fhir_client_id=env.get("REDDYTALK_FHIR_CLIENT_ID", ""),
            fhir_scope=env.get("REDDYTALK_FHIR_SCOPE", ""),
            fhir_client_secret_name=env.get("REDDYTALK_FHIR_CLIENT_SECRET_NAME", "")
            or "fhir-client-secret",
            key_vault_url=env.get("REDDYTALK_KEY_VAULT_URL", ""),
            kek_id=env.get("REDDYTALK_KEK_ID", ""),
            key_vault_ca_file=env.get("REDDYTALK_KEY_VAULT_CA_FILE", ""),
            managed_identity_client_id=env.get("REDDYTALK_MANAGED_IDENTITY_CLIENT_ID", ""),
            tts=_choice(env, "REDDYTALK_TTS", "espeak", ("espeak", "elevenlabs", "azure")),
            elevenlabs_voice_id=env.get("REDDYTALK_ELEVENLABS_VOICE_ID", ""),
            elevenlabs_model_id=env.get("REDDYTALK_ELEVENLABS_MODEL_ID", "") or "eleven_flash_v2_5",
            elevenlabs_base_url=env.get("REDDYTALK_ELEVENLABS_BASE_URL", "")
            or "https://api.elevenlabs.io",
            elevenlabs_api_key_name=env.get("REDDYTALK_ELEVENLABS_API_KEY_NAME", "")
            or "elevenlabs-api-key",
            tts_first_audio_timeout_ms=_int(env, "REDDYTALK_TTS_FIRST_AUDIO_MS", 300, 50, 3000),
            azure_tts_voice=env.get("REDDYTALK_AZURE_TTS_VOICE", "") or "en-US-JennyNeural",
            stt=_choice(
                env,
                "REDDYTALK_STT",
                "azure" if cloud else "pocketsphinx",
                ("pocketsphinx", "azure"),
            ),
            azure_speech_endpoint=env.get("REDDYTALK_AZURE_SPEECH_ENDPOINT", ""),
            azure_speech_region=env.get("REDDYTALK_AZURE_SPEECH_REGION", ""),
            azure_speech_key_name=env.get("REDDYTALK_AZURE_SPEECH_KEY_NAME", ""),
            speech_segmentation_silence_ms=_int(
                env, "REDDYTALK_SPEECH_SEGMENTATION_SILENCE_MS", 300, 100, 5000
            ),
            speech_final_wait_ms=_int(env, "REDDYTALK_SPEECH_FINAL_WAIT_MS", 600, 50, 5000),
            policy=_choice(
                env,
                "REDDYTALK_POLICY",
                "tiered" if cloud else "deterministic",
                ("deterministic", "tiered"),
            ),  # fmt: skip
            azure_openai_endpoint=env.get("REDDYTALK_AZURE_OPENAI_ENDPOINT", ""),
            azure_openai_api_version=env.get("REDDYTALK_AZURE_OPENAI_API_VERSION", "")
            or "2024-10-21",
            azure_openai_fast_deployment=env.get("REDDYTALK_AZURE_OPENAI_FAST_DEPLOYMENT", "")
            or "fast",
            azure_openai_complex_deployment=env.get("REDDYTALK_AZURE_OPENAI_COMPLEX_DEPLOYMENT", "")
            or "complex",
            azure_openai_api_key_name=env.get("REDDYTALK_AZURE_OPENAI_API_KEY_NAME", ""),
            llm_first_token_late_ms=_int(env, "REDDYTALK_LLM_FIRST_TOKEN_LATE_MS", 700, 100, 5000),
            environment_secrets={
                name: value for name, value in env.items() if name.startswith(SECRET_PREFIX)
            },
        )
