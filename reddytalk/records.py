"""ReddyTalk's records and the clinics' EHR, built from settings for either profile.

Part of the composition root (:mod:`reddytalk.composition`): the one place that
picks adapters. The embedded profile keeps both in one SQLite file with PHI sealed
under local key files; the cloud profile keeps ReddyTalk's records in Cosmos DB,
PHI sealed under data keys wrapped by a Key Vault key, and reads the clinics'
schedules over FHIR R4. The Azure SDKs are imported only when the cloud adapters
are built, so the embedded profile never loads them.

Credentials: one ``DefaultAzureCredential`` (the managed identity in Azure) shared
by Cosmos DB and Key Vault; a local Cosmos emulator takes its account key instead.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reddytalk.ports import CallStore, Ehr, KeyEncryptionKey, Secrets
from reddytalk.settings import Settings

if TYPE_CHECKING:
    from azure.core.credentials_async import AsyncTokenCredential

__all__ = ["Records", "open_credential", "open_records", "open_secrets"]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class Records:
    """The store and the EHR, and what closes them."""

    store: CallStore
    ehr: Ehr | None
    _closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list, repr=False)

    async def aclose(self) -> None:
        """Close every client, last opened first (errors on the way do not stop the rest)."""
        while self._closers:
            with contextlib.suppress(Exception):
                await self._closers.pop()()


async def open_records(
    settings: Settings,
    *,
    now: Callable[[], dt.datetime] = _utc_now,
    with_ehr: bool = True,
    credential: AsyncTokenCredential | None = None,
) -> Records:
    """Open the store and the EHR that ``settings`` name.

    Args:
        settings: Which adapters, and where.
        now: The EHR's clock.
        with_ehr: False for the media worker in the cloud, which reaches the EHR only
            through the tools API (its ``ehr`` is then None).
        credential: The Azure credential to use instead of ``DefaultAzureCredential``
            (the caller keeps and closes it).

    Raises:
        ProviderError: A service could not be reached or refused us.
        ValueError: A setting the chosen adapters need is missing.
    """
    _check(settings, with_ehr=with_ehr)
    closers: list[Callable[[], Awaitable[None]]] = []
    try:
        if settings.store == "sqlite" and (settings.ehr == "embedded" or not with_ehr):
            from reddytalk.composition import open_embedded_records

            embedded = open_embedded_records(settings, now=now)
            closers.append(_async(embedded.close))
            if not with_ehr:
                return Records(store=embedded.store, ehr=embedded.ehr, _closers=closers)
            routed = await per_clinic_ehrs(settings, embedded.store, embedded.ehr, None,
                                           closers, now)  # fmt: skip
            return Records(store=embedded.store, ehr=routed, _closers=closers)
        if credential is None and _needs_credential(settings):
            credential = open_credential(settings, closers)
        store = await _store(settings, credential, closers, now)
        ehr = None
        if with_ehr:
            own = await _ehr(settings, credential, closers, now)
            ehr = await per_clinic_ehrs(settings, store, own, credential, closers, now)
        return Records(store=store, ehr=ehr, _closers=closers)
    except BaseException:
        await Records(store=None, ehr=None, _closers=closers).aclose()  # type: ignore[arg-type]
        raise


def _check(settings: Settings, *, with_ehr: bool) -> None:
    """Name the first setting the chosen adapters need and lack."""
    needed = []
    if settings.store == "cosmos":
        needed += [("REDDYTALK_COSMOS_ENDPOINT", settings.cosmos_endpoint),
                   ("REDDYTALK_KEK_ID", settings.kek_id)]  # fmt: skip
    if with_ehr and settings.ehr == "fhir":
        needed.append(("REDDYTALK_FHIR_BASE_URL", settings.fhir_base_url))
    for name, value in needed:
        if not value:
            raise ValueError(f"{name} is needed for the {settings.profile} profile's records")


def _async(close: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def closer() -> None:
        close()

    return closer


def _needs_credential(settings: Settings) -> bool:
    return bool(settings.kek_id or settings.key_vault_url) or (
        settings.store == "cosmos" and not settings.cosmos_key
    )


def open_credential(
    settings: Settings, closers: list[Callable[[], Awaitable[None]]]
) -> AsyncTokenCredential:
    from azure.identity.aio import DefaultAzureCredential

    credential = DefaultAzureCredential(
        managed_identity_client_id=settings.managed_identity_client_id or None
    )
    closers.append(credential.close)
    return credential


def _key_vault_options(settings: Settings) -> dict[str, Any] | None:
    if not settings.key_vault_ca_file:
        return None
    # A loopback Key Vault (tests) names itself 127.0.0.1, not *.vault.azure.net.
    return {"connection_verify": settings.key_vault_ca_file, "verify_challenge_resource": False}


async def open_secrets(
    settings: Settings,
    credential: AsyncTokenCredential | None,
    closers: list[Callable[[], Awaitable[None]]],
) -> Secrets:
    """Key Vault when a vault is configured (through the managed identity), else the
    ``REDDYTALK_SECRET_*`` environment variables."""
    if settings.key_vault_url and credential is not None:
        from reddytalk.providers.secrets.keyvault import KeyVaultSecrets

        secrets = KeyVaultSecrets(
            vault_url=settings.key_vault_url,
            credential=credential,
            client_options=_key_vault_options(settings),
        )
        closers.append(secrets.close)
        return secrets
    from reddytalk.providers.secrets.env import EnvironmentSecrets

    return EnvironmentSecrets(environ=settings.environment_secrets)


async def _kek(
    settings: Settings,
    credential: AsyncTokenCredential | None,
    closers: list[Callable[[], Awaitable[None]]],
) -> KeyEncryptionKey:
    if settings.kek_id and credential is not None:
        from reddytalk.providers.keys.keyvault import KeyVaultKek

        kek = await KeyVaultKek.open(
            key_id=settings.kek_id,
            credential=credential,
            client_options=_key_vault_options(settings),
        )
        closers.append(kek.close)
        return kek
    from reddytalk.phi.local_kek import LocalKeyFile

    return LocalKeyFile(settings.phi_key_dir)


async def _store(
    settings: Settings,
    credential: AsyncTokenCredential | None,
    closers: list[Callable[[], Awaitable[None]]],
    now: Callable[[], dt.datetime],
) -> CallStore:
    if settings.store == "sqlite":
        from reddytalk.composition import open_embedded_records

        embedded = open_embedded_records(settings, now=now)
        closers.append(_async(embedded.close))
        return embedded.store
    from reddytalk.phi.cipher import PhiCipher
    from reddytalk.providers.store.cosmos import CosmosStore
    from reddytalk.providers.store.cosmos_keys import CosmosDataKeys

    kek = await _kek(settings, credential, closers)
    account: str | AsyncTokenCredential | None = settings.cosmos_key or credential
    assert account is not None  # _needs_credential made one when there is no key
    endpoint, database = settings.cosmos_endpoint, settings.cosmos_database
    ca_file = settings.cosmos_ca_file or None
    keys = CosmosDataKeys(endpoint=endpoint, credential=account, database=database, ca_file=ca_file)
    closers.append(keys.close)
    store = await CosmosStore.connect(
        endpoint=endpoint,
        credential=account,
        database=database,
        ca_file=ca_file,
        create_containers=settings.cosmos_create_containers,
        cipher=PhiCipher(kek=kek, keys=keys),
    )
    closers.append(store.close)
    return store


async def per_clinic_ehrs(
    settings: Settings,
    store: CallStore,
    ehr: Ehr,
    credential: AsyncTokenCredential | None,
    closers: list[Callable[[], Awaitable[None]]],
    now: Callable[[], dt.datetime],
) -> Ehr:
    """``ehr`` (the deployment's) behind the router that sends each clinic's requests to
    the EHR its configuration names (:mod:`reddytalk.providers.ehr.clinic_ehrs`)."""
    from reddytalk.clinics.admin import DeploymentEhr
    from reddytalk.providers.ehr.clinic_ehrs import ClinicEhrs

    router = ClinicEhrs(
        default=ehr,
        default_connection=DeploymentEhr.of(settings).connection,
        clinic=store.get_clinic,
        secrets=await open_secrets(settings, credential, closers),
        now=now,
    )
    closers.append(router.close)
    return router


async def _ehr(
    settings: Settings,
    credential: AsyncTokenCredential | None,
    closers: list[Callable[[], Awaitable[None]]],
    now: Callable[[], dt.datetime],
) -> Ehr:
    if settings.ehr == "embedded":
        from reddytalk.composition import open_embedded_records

        embedded = open_embedded_records(settings, now=now)
        closers.append(_async(embedded.close))
        return embedded.ehr
    from reddytalk.providers.ehr.fhir import FhirEhr
    from reddytalk.providers.ehr.fhir_auth import ClientCredentialsToken

    token = None
    if settings.fhir_token_url:
        secrets = await open_secrets(settings, credential, closers)
        secret = await secrets.get(settings.fhir_client_secret_name)
        if not secret:
            raise ValueError(f"no secret named {settings.fhir_client_secret_name!r} for the EHR")
        token = ClientCredentialsToken(
            token_url=settings.fhir_token_url,
            client_id=settings.fhir_client_id,
            client_secret=secret,
            scope=settings.fhir_scope,
        )
    ehr = FhirEhr(base_url=settings.fhir_base_url, token_provider=token, now=now)
    closers.append(ehr.close)
    return ehr
