"""The cloud profile's records as ``open_records`` wires them, against loopback servers.

``open_records`` builds the store and the EHR from :class:`~reddytalk.settings.Settings`.
Here every part is the real adapter through its real SDK or HTTP client, and every
service is a loopback stand-in the repository already has:

- Cosmos DB: the @vercel/cosmosdb-server of ``tests/contracts/store_fixtures.py``
  (HTTPS, one database per test);
- FHIR R4: the Medplum server of ``tests/contracts/ehr_fixtures.py``, which wants a
  bearer token, seeded with the demo clinic;
- OAuth2: the token endpoint of ``tests/providers/test_fhir_auth.py``, which hands out
  the FHIR server's token and records the client credentials it was sent;
- Key Vault: ``tests/servers/keyvault.py``, holding the key-encryption key and the FHIR
  client secret, checking the test credential's token, recording every request.

Settings come from a dict of ``REDDYTALK_*`` variables (``Settings.from_env``), so the
variables' names are tested with the wiring. Nothing of ReddyTalk's is patched.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import gc
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import aiohttp
import pytest
from azure.cosmos.aio import CosmosClient

from reddytalk.calls.back_office import ClinicRecords
from reddytalk.clinics.admin import DeploymentEhr
from reddytalk.errors import ProviderError
from reddytalk.ports import CallRecord, Message
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_seed import seed_fhir_demo
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic
from reddytalk.records import Records, open_records
from reddytalk.scheduling.model import Clinic
from reddytalk.settings import Settings
from tests.contracts.ehr_fixtures import (
    CHICAGO,
    NOW,
    TODAY,
    StaticToken,
    fhir_server_fixture,  # noqa: F401  (pytest finds fixtures in this module's namespace)
)
from tests.contracts.store_fixtures import (
    EMULATOR_KEY,
    CosmosServer,
    cosmos_server_fixture,  # noqa: F401
)
from tests.providers.test_fhir_auth import Reply, TokenEndpoint, token_endpoint
from tests.servers.fhir.launch import FhirServer
from tests.servers.keyvault import (
    LoopbackKeyVault,
    Recorded,
    RecordingCredential,
    TlsFiles,
    make_tls,
    unreachable_vault_url,
)

CLIENT_ID = "reddytalk-at-the-ehr"
SECRET_NAME = "ehr-client-secret"  # not the default name: REDDYTALK_FHIR_CLIENT_SECRET_NAME
VAULT_SECRET = "the-vault's client secret: /+&"  # what Basic auth must form-urlencode
ENV_SECRET = "the environment's client secret"
KEK_NAME = "phi-kek"
CALL_ID = "call-records-1"
ROBERT = ("Robert", "Taylor", dt.date(1980, 3, 15))  # a patient seed_fhir_demo adds

CALLER_LINE = "This is Robert Taylor, born March fifteenth nineteen eighty."
MESSAGE_TEXT = "Please ask Doctor Patel to call me about my blood pressure pills."
RECORD = CallRecord(
    call_id=CALL_ID,
    clinic_id=DEMO_CLINIC_ID,
    started_at=NOW,
    ended_at=NOW + dt.timedelta(minutes=2),
    outcome="message_taken",
    transcript=(("receptionist", "How can I help?"), ("caller", CALLER_LINE)),
    turn_timings=({"turn": 1, "caller_speech_end_ms": 900.5},),
)
MESSAGE = Message(
    f"{CALL_ID}:message:1", CALL_ID, DEMO_CLINIC_ID, NOW, MESSAGE_TEXT, "Robert Taylor"
)
PHI = (CALLER_LINE, MESSAGE_TEXT, "Robert Taylor", "Taylor", "blood pressure", "1980-03-15")


# -- the loopback services ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """The loopback Key Vaults' certificate (each vault listens on a port of its own)."""
    return make_tls(tmp_path_factory.mktemp("keyvault-tls"))


@pytest.fixture
def seeded_fhir(fhir_server: FhirServer) -> FhirServer:
    """The FHIR server, emptied and seeded with the demo clinic for ``TODAY``."""
    fhir_server.reset()

    async def seed() -> None:
        token = StaticToken(fhir_server.token)
        async with FhirEhr(
            base_url=fhir_server.base_url, token_provider=token, now=lambda: NOW
        ) as ehr:
            await seed_fhir_demo(ehr, today=TODAY)

    asyncio.run(seed())
    return fhir_server


@dataclass
class Cloud:
    """The loopback services of one test, and the environment naming them."""

    vault: LoopbackKeyVault
    credential: RecordingCredential
    tokens: TokenEndpoint
    kek_version_id: str
    env: dict[str, str]


@asynccontextmanager
async def _cloud(
    cosmos: CosmosServer, fhir: FhirServer, tls: TlsFiles, data_dir: Path
) -> AsyncIterator[Cloud]:
    """A Key Vault holding the KEK and the FHIR client secret, a token endpoint that
    issues the FHIR server's token, and the cloud profile's variables for all of them."""
    credential = RecordingCredential()
    issued = Reply(body={"access_token": fhir.token, "token_type": "Bearer", "expires_in": 3600})
    async with (
        LoopbackKeyVault(tls, token=credential.token) as vault,
        token_endpoint(issued) as tokens,
    ):
        kek_version_id = vault.create_key(KEK_NAME)
        vault.set_secret(SECRET_NAME, VAULT_SECRET)
        env = {
            "REDDYTALK_PROFILE": "cloud",
            "REDDYTALK_DATA_DIR": str(data_dir),
            "REDDYTALK_COSMOS_ENDPOINT": cosmos.endpoint,
            "REDDYTALK_COSMOS_KEY": EMULATOR_KEY,
            "REDDYTALK_COSMOS_CA_FILE": cosmos.ca_file,
            "REDDYTALK_COSMOS_DATABASE": f"records-{uuid.uuid4().hex[:12]}",
            "REDDYTALK_COSMOS_CREATE_CONTAINERS": "true",
            "REDDYTALK_FHIR_BASE_URL": fhir.base_url,
            "REDDYTALK_FHIR_TOKEN_URL": tokens.url,
            "REDDYTALK_FHIR_CLIENT_ID": CLIENT_ID,
            "REDDYTALK_FHIR_CLIENT_SECRET_NAME": SECRET_NAME,
            "REDDYTALK_KEY_VAULT_URL": vault.url,
            "REDDYTALK_KEK_ID": f"{vault.url}/keys/{KEK_NAME}",  # unversioned: the current one
            "REDDYTALK_KEY_VAULT_CA_FILE": str(tls.cert_file),
        }
        yield Cloud(vault, credential, tokens, kek_version_id, env)


def _office(records: Records) -> ClinicRecords:
    assert records.ehr is not None
    return ClinicRecords(
        ehr=records.ehr,
        store=records.store,
        clock=lambda: NOW,
        call_id=CALL_ID,
        clinic_id=DEMO_CLINIC_ID,
    )


async def _find_robert(office: ClinicRecords) -> str:
    given, family, born = ROBERT
    patient = await office.find_patient(given_name=given, family_name=family, birth_date=born)
    assert patient is not None
    assert (patient.given_name, patient.family_name, patient.birth_date) == ROBERT
    return patient.patient_id


def _basic(client_id: str, secret: str) -> str:
    """RFC 6749 §2.3.1 client_secret_basic, as the token endpoint must receive it."""
    return "Basic " + base64.b64encode(f"{client_id}:{quote_plus(secret)}".encode()).decode()


def _grants(tokens: TokenEndpoint) -> list[tuple[str, str]]:
    return [(form["grant_type"], headers["Authorization"]) for form, headers in tokens.requests]


def _authorized(vault: LoopbackKeyVault, suffix: str) -> list[Recorded]:
    """The vault's authenticated requests whose path ends with ``suffix``."""
    return [r for r in vault.requests if "authorization" in r.headers and r.path.endswith(suffix)]


async def _every_document(cosmos: CosmosServer, database: str) -> dict[str, list[Any]]:
    """Every document of every container, read through the plain SDK, not the store."""
    async with CosmosClient(
        cosmos.endpoint, EMULATOR_KEY, connection_verify=cosmos.ca_file
    ) as client:
        db = client.get_database_client(database)
        found: dict[str, list[Any]] = {}
        async for container in db.list_containers():
            items = db.get_container_client(container["id"]).query_items("SELECT * FROM c")
            found[container["id"]] = [document async for document in items]
        return found


def _open_sessions() -> set[int]:
    """The aiohttp sessions alive and open (every client here is aiohttp underneath:
    azure-core's transport, the FHIR client, the token endpoint's client)."""
    gc.collect()
    return {
        id(o) for o in gc.get_objects() if isinstance(o, aiohttp.ClientSession) and not o.closed
    }


# -- the whole chain ---------------------------------------------------------------------------


def _on_the_deployments_ehr(settings: Settings) -> Clinic:
    """The demo clinic on the deployment's FHIR EHR (Azure keeps no embedded schedule)."""
    return replace(demo_clinic(), ehr=DeploymentEhr.of(settings).connection)


def test_the_cloud_records_seal_phi_in_cosmos_under_key_vault_and_read_fhir_with_its_secret(
    cosmos_server: CosmosServer, seeded_fhir: FhirServer, tls: TlsFiles, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with _cloud(cosmos_server, seeded_fhir, tls, tmp_path) as cloud:
            settings = Settings.from_env(cloud.env)
            records = await open_records(settings, now=lambda: NOW, credential=cloud.credential)
            try:
                clinic = _on_the_deployments_ehr(settings)
                await records.store.save_clinic(clinic)
                assert await records.store.find_clinic_by_number(DEMO_PHONE_NUMBER) == clinic

                office = _office(records)
                patient_id = await _find_robert(office)
                opens = dt.datetime.combine(TODAY, dt.time(8, 0), tzinfo=CHICAGO)
                slots = await office.find_free_slots(
                    start=opens, end=opens + dt.timedelta(hours=9), provider_id="dr-patel"
                )
                assert slots and all(s.provider_id == "dr-patel" for s in slots)
                assert all(opens <= s.start < opens + dt.timedelta(hours=9) for s in slots)
                message = replace(MESSAGE, patient_id=patient_id)
                assert await office.take_message(message) is True
                await office.keep_record(RECORD)

                assert await records.store.get_call(CALL_ID) == RECORD
                assert await records.store.list_messages(DEMO_CLINIC_ID) == [message]
            finally:
                await records.aclose()

            # The FHIR server wants its token and only the token endpoint hands it out: it
            # was asked once, with the client secret the vault held.
            assert _grants(cloud.tokens) == [
                ("client_credentials", _basic(CLIENT_ID, VAULT_SECRET))
            ]
            [secret_read] = _authorized(cloud.vault, f"/secrets/{SECRET_NAME}/")
            assert secret_read.headers["authorization"] == f"Bearer {cloud.credential.token}"
            # This process made the clinic's data key and wrapped it locally with the
            # vault key's public half: the vault has unwrapped nothing yet.
            assert _authorized(cloud.vault, "/unwrapkey") == []

            # At rest: no PHI in any document, the data key wrapped by the vault's key.
            database = settings.cosmos_database
            documents = await _every_document(cosmos_server, database)
            raw = json.dumps(documents, ensure_ascii=False)
            leaks = [s for s in PHI for form in (s, s.lower()) if form in raw]
            assert not leaks, f"plaintext PHI in the documents: {leaks}"
            assert [(k["clinic_id"], k["kek_id"]) for k in documents["data_keys"]] == [
                (DEMO_CLINIC_ID, cloud.kek_version_id)
            ]

            # Another process (as the media worker would be) opens the same settings: it
            # holds the data key only wrapped, so the vault must unwrap it.
            other = await open_records(
                settings, now=lambda: NOW, with_ehr=False, credential=cloud.credential
            )
            try:
                assert other.ehr is None
                assert await other.store.list_messages(DEMO_CLINIC_ID) == [message]
                assert await other.store.get_call(CALL_ID) == RECORD
            finally:
                await other.aclose()
            [unwrap] = _authorized(cloud.vault, "/unwrapkey")
            version = cloud.kek_version_id.rsplit("/", 1)[1]
            assert (unwrap.method, unwrap.path) == ("POST", f"/keys/{KEK_NAME}/{version}/unwrapkey")
            assert unwrap.body["alg"] == "RSA-OAEP-256"
            assert unwrap.headers["authorization"] == f"Bearer {cloud.credential.token}"
            assert not cloud.credential.is_closed  # the caller's: open_records never closes it

    asyncio.run(scenario())


# -- settings ----------------------------------------------------------------------------------

_CLOSED = unreachable_vault_url()  # never contacted: the check comes before any connection
_CLOUD_ENV = {
    "REDDYTALK_PROFILE": "cloud",
    "REDDYTALK_COSMOS_ENDPOINT": f"{_CLOSED}/",
    "REDDYTALK_COSMOS_KEY": EMULATOR_KEY,
    "REDDYTALK_KEY_VAULT_URL": _CLOSED,
    "REDDYTALK_KEK_ID": f"{_CLOSED}/keys/{KEK_NAME}",
    "REDDYTALK_FHIR_BASE_URL": f"{_CLOSED}/fhir/R4",
}


@pytest.mark.parametrize(
    "variable", ["REDDYTALK_COSMOS_ENDPOINT", "REDDYTALK_KEK_ID", "REDDYTALK_FHIR_BASE_URL"]
)
def test_a_missing_cloud_setting_is_named_before_anything_is_opened(
    variable: str, tmp_path: Path
) -> None:
    env = {**_CLOUD_ENV, "REDDYTALK_DATA_DIR": str(tmp_path)}
    del env[variable]
    credential = RecordingCredential()
    with pytest.raises(ValueError, match=f"^{variable} is needed for the cloud profile's records"):
        asyncio.run(open_records(Settings.from_env(env), credential=credential))
    assert credential.requests == []


def test_the_media_worker_opens_the_cloud_store_without_the_ehr_settings(
    cosmos_server: CosmosServer, fhir_server: FhirServer, tls: TlsFiles, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with _cloud(cosmos_server, fhir_server, tls, tmp_path) as cloud:
            env = {k: v for k, v in cloud.env.items() if not k.startswith("REDDYTALK_FHIR_")}
            records = await open_records(
                Settings.from_env(env), with_ehr=False, credential=cloud.credential
            )
            try:
                assert records.ehr is None
                clinic = demo_clinic()  # the media worker reads clinics, never their EHR
                await records.store.save_clinic(clinic)
                assert await records.store.find_clinic_by_number(DEMO_PHONE_NUMBER) == clinic
            finally:
                await records.aclose()
            assert cloud.tokens.requests == []
            assert _authorized(cloud.vault, f"/secrets/{SECRET_NAME}/") == []

    asyncio.run(scenario())


def test_without_key_vault_the_fhir_client_secret_comes_from_the_environment(
    seeded_fhir: FhirServer, tmp_path: Path
) -> None:
    # A machine without Key Vault: the SQLite store sealing under local key files, the
    # FHIR EHR with its client secret in REDDYTALK_SECRET_FHIR_CLIENT_SECRET.
    async def scenario() -> None:
        issued = Reply(body={"access_token": seeded_fhir.token, "expires_in": 3600})
        async with token_endpoint(issued) as tokens:
            env = {
                "REDDYTALK_PROFILE": "cloud",
                "REDDYTALK_STORE": "sqlite",
                "REDDYTALK_DATA_DIR": str(tmp_path),
                "REDDYTALK_FHIR_BASE_URL": seeded_fhir.base_url,
                "REDDYTALK_FHIR_TOKEN_URL": tokens.url,
                "REDDYTALK_FHIR_CLIENT_ID": CLIENT_ID,
                "REDDYTALK_SECRET_FHIR_CLIENT_SECRET": ENV_SECRET,
            }
            records = await open_records(Settings.from_env(env), now=lambda: NOW)
            try:
                office = _office(records)
                patient_id = await _find_robert(office)
                message = replace(MESSAGE, patient_id=patient_id)
                assert await office.take_message(message) is True
                assert await records.store.list_messages(DEMO_CLINIC_ID) == [message]
            finally:
                await records.aclose()
            assert _grants(tokens) == [("client_credentials", _basic(CLIENT_ID, ENV_SECRET))]
        assert (tmp_path / "reddytalk.sqlite3").is_file()
        assert any((tmp_path / "keys").iterdir())  # the local key-encryption key

    asyncio.run(scenario())


# -- closing -----------------------------------------------------------------------------------


def test_aclose_closes_every_client_once_and_leaves_the_credential_to_its_owner(
    cosmos_server: CosmosServer, seeded_fhir: FhirServer, tls: TlsFiles, tmp_path: Path
) -> None:
    async def scenario() -> None:
        async with _cloud(cosmos_server, seeded_fhir, tls, tmp_path) as cloud:
            settings = Settings.from_env(cloud.env)
            writer = await open_records(settings, now=lambda: NOW, credential=cloud.credential)
            try:
                await writer.store.save_message(MESSAGE)
            finally:
                await writer.aclose()

            baseline = _open_sessions()
            records = await open_records(settings, now=lambda: NOW, credential=cloud.credential)
            # Use every client, so each has a session open: Cosmos DB (the store, and the
            # data keys), Key Vault (the secret read at opening, the KEK's unwrap), FHIR.
            assert await records.store.list_messages(DEMO_CLINIC_ID) == [MESSAGE]
            await _find_robert(_office(records))
            opened = _open_sessions() - baseline
            assert len(opened) >= 5, "store, data keys, secrets, KEK and FHIR each opened one"

            await records.aclose()
            assert _open_sessions() & opened == set()
            await records.aclose()  # a second close is harmless
            assert not cloud.credential.is_closed

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("failing", "variable", "expected"),
    [
        # The first thing opened: nothing is open yet.
        ("key vault", "REDDYTALK_KEK_ID", "Key Vault get key failed"),
        # The KEK is open, and the data keys' client made (not yet connected).
        ("cosmos", "REDDYTALK_COSMOS_ENDPOINT", "Cosmos DB open failed"),
        # The last step: the KEK, the store, the data keys and the vault client are open.
        ("secret", "REDDYTALK_FHIR_CLIENT_SECRET_NAME", "no secret named 'no-such-secret'"),
    ],
)
def test_a_failure_while_opening_leaves_nothing_open(
    failing: str,
    variable: str,
    expected: str,
    cosmos_server: CosmosServer,
    fhir_server: FhirServer,
    tls: TlsFiles,
    tmp_path: Path,
) -> None:
    value = {
        "key vault": f"{unreachable_vault_url()}/keys/{KEK_NAME}",
        "cosmos": f"{unreachable_vault_url()}/",  # any closed loopback port
        "secret": "no-such-secret",
    }[failing]

    async def scenario() -> None:
        complaints: list[str] = []  # aiohttp reports an unclosed session to the loop
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: complaints.append(str(context.get("message")))
        )
        async with _cloud(cosmos_server, fhir_server, tls, tmp_path) as cloud:
            settings = Settings.from_env({**cloud.env, variable: value})
            baseline = _open_sessions()
            error = await _opening_error(settings, cloud.credential)
            assert expected in str(error)
            if failing == "secret":
                assert type(error) is ValueError
            else:
                assert isinstance(error, ProviderError) and error.retryable
            assert _open_sessions() - baseline == set()
            assert not cloud.credential.is_closed
        assert complaints == []

    asyncio.run(scenario())


async def _opening_error(settings: Settings, credential: RecordingCredential) -> Exception:
    """What ``open_records`` raised, with its traceback dropped (its frames would keep
    whatever it opened alive)."""
    try:
        records = await open_records(settings, now=lambda: NOW, credential=credential)
    except (ProviderError, ValueError) as error:
        return error.with_traceback(None)
    await records.aclose()
    raise AssertionError("open_records opened")
