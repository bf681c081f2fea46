"""KeyVaultSecrets and KeyVaultKek through the real azure-keyvault SDKs.

The SDKs talk to a loopback Key Vault (``tests/servers/keyvault.py``) over HTTPS with a
self-signed certificate trusted through ``connection_verify``; it runs Key Vault's challenge
protocol, checks the bearer token the test credential issued, does real RSA-OAEP-256, and
records every request. Clients pass ``verify_challenge_resource=False`` because the challenge
names ``https://vault.azure.net`` while the vault is ``127.0.0.1``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.keyvault.keys.crypto import KeyWrapAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from reddytalk.errors import ProviderError
from reddytalk.providers.keys.keyvault import KeyVaultKek
from reddytalk.providers.secrets.keyvault import KeyVaultSecrets
from tests.servers.keyvault import (
    KEY_VAULT_SCOPE,
    LoopbackKeyVault,
    Recorded,
    RecordingCredential,
    TlsFiles,
    TokenRequest,
    make_tls,
    unreachable_vault_url,
)

SECRETS_API_VERSION = "2026-04-01"  # azure-keyvault-secrets 4.12's default
KEYS_API_VERSION = "2025-07-01"  # azure-keyvault-keys 4.11.3's default
SECRET_NAME = "ehr-client-secret"
SECRET_VALUE = "s3cr3t-Value-of-the-EHR-client"
KEY_NAME = "phi-kek"
DATA_KEY = bytes(range(32))  # an AES-256 data key

Scenario = Callable[[LoopbackKeyVault, RecordingCredential], Awaitable[None]]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("keyvault-tls"))


def _serve(tls: TlsFiles, scenario: Scenario) -> None:
    """Run ``scenario`` against a fresh vault that accepts the credential's token."""

    async def main() -> None:
        credential = RecordingCredential()
        async with LoopbackKeyVault(tls, token=credential.token) as vault:
            await scenario(vault, credential)

    asyncio.run(main())


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now_s = 1_000.0

    def __call__(self) -> float:
        return self.now_s


def _secrets(vault: LoopbackKeyVault, credential: Any, **kwargs: Any) -> KeyVaultSecrets:
    options = {**vault.client_options, **kwargs.pop("client_options", {})}
    return KeyVaultSecrets(
        vault_url=vault.url, credential=credential, client_options=options, **kwargs
    )


async def _kek(vault: LoopbackKeyVault, credential: Any, key_id: str, **more: Any) -> KeyVaultKek:
    options = {**vault.client_options, **more}
    return await KeyVaultKek.open(key_id=key_id, credential=credential, client_options=options)


def _authorized(vault: LoopbackKeyVault) -> list[Recorded]:
    return [r for r in vault.requests if "authorization" in r.headers]


def _version(key_id: str) -> str:
    return key_id.rsplit("/", 1)[1]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# -- secrets ---------------------------------------------------------------------------------


def test_secret_round_trip_runs_the_challenge_then_sends_the_token(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        vault.set_secret(SECRET_NAME, SECRET_VALUE)
        async with _secrets(vault, credential) as secrets:
            assert await secrets.get(SECRET_NAME) == SECRET_VALUE

        challenge, request = vault.requests
        path = f"/secrets/{SECRET_NAME}/"  # an empty version segment: the current version
        query = {"api-version": SECRETS_API_VERSION}
        assert (challenge.method, challenge.path, challenge.query) == ("GET", path, query)
        assert "authorization" not in challenge.headers
        assert (request.method, request.path, request.query) == ("GET", path, query)
        assert request.headers["authorization"] == f"Bearer {credential.token}"
        assert credential.requests == [
            TokenRequest((KEY_VAULT_SCOPE,), vault.tenant_id, claims=None, enable_cae=True)
        ]

    _serve(tls, scenario)


def test_unknown_secret_is_none(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        async with _secrets(vault, credential) as secrets:
            assert await secrets.get("no-such-secret") is None
        assert [r.path for r in _authorized(vault)] == ["/secrets/no-such-secret/"]

    _serve(tls, scenario)


def test_values_and_absences_are_cached_until_the_ttl_passes(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        clock = Clock()
        vault.set_secret(SECRET_NAME, "first")
        async with _secrets(vault, credential, cache_ttl_s=60, clock=clock) as secrets:
            assert await secrets.get(SECRET_NAME) == "first"
            assert await secrets.get("missing") is None
            vault.set_secret(SECRET_NAME, "rotated")
            vault.set_secret("missing", "added")
            sent = len(vault.requests)

            clock.now_s += 59.9
            assert await secrets.get(SECRET_NAME) == "first"
            assert await secrets.get(SECRET_NAME.upper()) == "first"  # names ignore case
            assert await secrets.get("missing") is None
            assert len(vault.requests) == sent

            clock.now_s += 0.1
            assert await secrets.get(SECRET_NAME) == "rotated"
            assert await secrets.get("missing") == "added"
            assert len(vault.requests) == sent + 2

    _serve(tls, scenario)


def test_concurrent_gets_of_one_name_share_one_request(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        vault.set_secret(SECRET_NAME, SECRET_VALUE)
        async with _secrets(vault, credential) as secrets:
            values = await asyncio.gather(*(secrets.get(SECRET_NAME) for _ in range(5)))
        assert values == [SECRET_VALUE] * 5
        assert len(_authorized(vault)) == 1

    _serve(tls, scenario)


def test_vault_error_is_retryable_and_not_cached(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        vault.set_secret(SECRET_NAME, SECRET_VALUE)
        vault.failure = (500, "InternalServerError")
        async with _secrets(vault, credential) as secrets:
            with pytest.raises(ProviderError) as caught:
                await secrets.get(SECRET_NAME)
            assert caught.value.retryable
            assert (
                str(caught.value) == "Key Vault get secret failed: HTTP 500 (InternalServerError)"
            )
            assert len(_authorized(vault)) == 1  # the SDK's own retries are off

            vault.failure = None
            assert await secrets.get(SECRET_NAME) == SECRET_VALUE

    _serve(tls, scenario)


def test_unreachable_vault_is_retryable(tls: TlsFiles) -> None:
    async def main() -> None:
        async with KeyVaultSecrets(
            vault_url=unreachable_vault_url(),
            credential=RecordingCredential(),
            client_options={"connection_verify": str(tls.cert_file)},
        ) as secrets:
            with pytest.raises(ProviderError) as caught:
                await secrets.get(SECRET_NAME)
        assert caught.value.retryable
        assert str(caught.value) == "Key Vault get secret failed: ServiceRequestError"

    asyncio.run(main())


def test_a_token_the_vault_refuses_is_not_retryable(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, _: RecordingCredential) -> None:
        vault.set_secret(SECRET_NAME, SECRET_VALUE)
        async with _secrets(vault, RecordingCredential()) as secrets:  # another identity
            with pytest.raises(ProviderError) as caught:
                await secrets.get(SECRET_NAME)
        assert not caught.value.retryable
        assert str(caught.value) == "Key Vault get secret failed: HTTP 401 (Unauthorized)"

    _serve(tls, scenario)


def test_invalid_secret_name_is_refused_before_sending(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        async with _secrets(vault, credential) as secrets:
            for name in ("", "a/../b", "under_score", "x" * 128):
                with pytest.raises(ValueError):
                    await secrets.get(name)
        assert vault.requests == []

    _serve(tls, scenario)


def test_secret_values_never_reach_logs_or_reprs(
    tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")  # install_redaction quiets it to WARNING
    reprs: list[str] = []

    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        vault.set_secret(SECRET_NAME, SECRET_VALUE)
        # logging_enable has azure-core log bodies at DEBUG; the adapter forces it off.
        async with _secrets(vault, credential, client_options={"logging_enable": True}) as secrets:
            assert await secrets.get(SECRET_NAME) == SECRET_VALUE
            reprs.append(repr(secrets))

    _serve(tls, scenario)
    assert "azure.core" in caplog.text  # the SDK did log (request and response headers)
    assert SECRET_VALUE not in caplog.text
    assert SECRET_VALUE not in reprs[0]


def test_negative_ttl_is_refused() -> None:
    with pytest.raises(ValueError):
        KeyVaultSecrets(
            vault_url="https://v.vault.azure.net", credential=RecordingCredential(), cache_ttl_s=-1
        )


# -- the key-encryption key ------------------------------------------------------------------


def test_wrap_is_local_rsa_oaep_256_and_unwrap_goes_to_the_versioned_key(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        key_id = vault.create_key(KEY_NAME)
        async with await _kek(vault, credential, key_id) as kek:
            assert kek.key_id == key_id
            wrapped = await kek.wrap(DATA_KEY)
            # Wrap is local: nothing was sent after the key was fetched (challenge, then GET).
            fetch = ("GET", f"/keys/{KEY_NAME}/{_version(key_id)}")
            assert [(r.method, r.path) for r in vault.requests] == [fetch, fetch]
            # Real RSA-OAEP-256 with the vault's public key: its private key opens the wrap.
            oaep = padding.OAEP(
                mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None
            )
            assert vault.private_key(key_id).decrypt(wrapped, oaep) == DATA_KEY

            assert await kek.unwrap(wrapped, key_id=kek.key_id) == DATA_KEY

        unwrap = vault.requests[-1]
        assert (unwrap.method, unwrap.path, unwrap.query) == (
            "POST",
            f"/keys/{KEY_NAME}/{_version(key_id)}/unwrapkey",
            {"api-version": KEYS_API_VERSION},
        )
        assert unwrap.headers["authorization"] == f"Bearer {credential.token}"
        assert unwrap.body == {"alg": "RSA-OAEP-256", "value": _b64url(wrapped)}
        assert {r.scopes for r in credential.requests} == {(KEY_VAULT_SCOPE,)}

    _serve(tls, scenario)


def test_unversioned_key_id_resolves_to_the_current_version(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        vault.create_key(KEY_NAME)
        current = vault.create_key(KEY_NAME)
        async with await _kek(vault, credential, f"{vault.url}/keys/{KEY_NAME}") as kek:
            assert kek.key_id == current
        assert _authorized(vault)[0].path == f"/keys/{KEY_NAME}/"

    _serve(tls, scenario)


def test_after_rotation_old_wraps_unwrap_with_their_key_id(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        vault.create_key(KEY_NAME)
        unversioned = f"{vault.url}/keys/{KEY_NAME}"
        async with await _kek(vault, credential, unversioned) as before:
            old_id, old_wrap = before.key_id, await before.wrap(DATA_KEY)

        new_id = vault.create_key(KEY_NAME)  # the rotation
        new_key = os.urandom(32)
        async with await _kek(vault, credential, unversioned) as after:
            assert after.key_id == new_id != old_id
            new_wrap = await after.wrap(new_key)
            assert await after.unwrap(old_wrap, key_id=old_id) == DATA_KEY
            assert vault.requests[-1].path == f"/keys/{KEY_NAME}/{_version(old_id)}/unwrapkey"
            assert await after.unwrap(new_wrap, key_id=after.key_id) == new_key
            assert vault.requests[-1].path == f"/keys/{KEY_NAME}/{_version(new_id)}/unwrapkey"

            with pytest.raises(ProviderError) as caught:  # an old wrap under the new version
                await after.unwrap(old_wrap, key_id=after.key_id)
            assert not caught.value.retryable

    _serve(tls, scenario)


def test_tampered_wrap_is_not_retryable(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        async with await _kek(vault, credential, vault.create_key(KEY_NAME)) as kek:
            wrapped = bytearray(await kek.wrap(DATA_KEY))
            wrapped[17] ^= 0x01
            with pytest.raises(ProviderError) as caught:
                await kek.unwrap(bytes(wrapped), key_id=kek.key_id)
        assert not caught.value.retryable
        assert str(caught.value) == "Key Vault unwrap failed: HTTP 400 (BadParameter)"

    _serve(tls, scenario)


def test_a_disabled_key_is_refused_and_an_expired_one_does_not_wrap(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        with pytest.raises(ValueError, match="disabled"):
            await _kek(vault, credential, vault.create_key("off", enabled=False))

        expired = vault.create_key(KEY_NAME, exp=int(time.time()) - 60)
        async with await _kek(vault, credential, expired) as kek:
            with pytest.raises(ProviderError) as caught:
                await kek.wrap(DATA_KEY)
        assert not caught.value.retryable
        assert "validity period" in str(caught.value)

    _serve(tls, scenario)


def test_key_ids_of_other_keys_or_vaults_are_refused_before_sending(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        key_id = vault.create_key(KEY_NAME)
        other_key = vault.create_key("other-key")
        async with await _kek(vault, credential, key_id) as kek:
            wrapped = await kek.wrap(DATA_KEY)
            sent = len(vault.requests)
            for foreign in (
                other_key,
                f"https://evil.example/keys/{KEY_NAME}/{_version(key_id)}",
                f"{vault.url}/keys/{KEY_NAME}",
                f"{vault.url}/secrets/{KEY_NAME}/{_version(key_id)}",
                key_id.replace("https://", "http://"),
                "not a key id",
            ):
                with pytest.raises(ProviderError) as caught:
                    await kek.unwrap(wrapped, key_id=foreign)
                assert not caught.value.retryable, foreign
            assert len(vault.requests) == sent

    _serve(tls, scenario)


def test_unwrap_while_the_vault_fails_is_retryable(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        async with await _kek(vault, credential, vault.create_key(KEY_NAME)) as kek:
            wrapped = await kek.wrap(DATA_KEY)
            vault.failure = (503, "ServiceUnavailable")
            with pytest.raises(ProviderError) as caught:
                await kek.unwrap(wrapped, key_id=kek.key_id)
            assert caught.value.retryable
            vault.failure = None
            assert await kek.unwrap(wrapped, key_id=kek.key_id) == DATA_KEY

    _serve(tls, scenario)


def test_open_maps_a_missing_key_an_unreachable_vault_and_a_bad_id(tls: TlsFiles) -> None:
    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        with pytest.raises(ProviderError) as missing:
            await _kek(vault, credential, f"{vault.url}/keys/{KEY_NAME}")
        assert not missing.value.retryable
        assert str(missing.value) == "Key Vault get key failed: HTTP 404 (KeyNotFound)"

        with pytest.raises(ProviderError) as down:
            await _kek(vault, credential, f"{unreachable_vault_url()}/keys/{KEY_NAME}")
        assert down.value.retryable

        with pytest.raises(ValueError):
            await _kek(vault, credential, f"{vault.url.replace('https', 'http')}/keys/{KEY_NAME}")

    _serve(tls, scenario)


def test_a_wrap_the_vault_made_unwraps(tls: TlsFiles) -> None:
    """The SDK's remote path: a client that may not read the key sends wrapkey to the vault."""

    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        key_id = vault.create_key(KEY_NAME)
        vault.is_key_read_denied = True
        options = {**vault.client_options, "retry_total": 0}
        async with CryptographyClient(key_id, credential, **options) as client:
            result = await client.wrap_key(KeyWrapAlgorithm.rsa_oaep_256, DATA_KEY)
        wrap = vault.requests[-1]
        assert (wrap.method, wrap.path, wrap.query) == (
            "POST",
            f"/keys/{KEY_NAME}/{_version(key_id)}/wrapkey",
            {"api-version": KEYS_API_VERSION},
        )
        assert wrap.body == {"alg": "RSA-OAEP-256", "value": _b64url(DATA_KEY)}
        assert result.key_id == key_id

        vault.is_key_read_denied = False
        async with await _kek(vault, credential, key_id) as kek:
            assert await kek.unwrap(result.encrypted_key, key_id=key_id) == DATA_KEY

    _serve(tls, scenario)


def test_data_keys_never_reach_logs_or_errors(
    tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="azure")  # install_redaction quiets it to WARNING
    said: list[str] = []

    async def scenario(vault: LoopbackKeyVault, credential: RecordingCredential) -> None:
        key_id = vault.create_key(KEY_NAME)
        async with await _kek(vault, credential, key_id, logging_enable=True) as kek:
            wrapped = await kek.wrap(DATA_KEY)
            assert await kek.unwrap(wrapped, key_id=key_id) == DATA_KEY
            vault.failure = (500, "InternalServerError")
            with pytest.raises(ProviderError) as caught:
                await kek.unwrap(wrapped, key_id=key_id)
            said.extend([str(caught.value), repr(kek), _b64url(wrapped)])

    _serve(tls, scenario)
    error_and_repr = " ".join(said[:2])
    assert "azure.core" in caplog.text
    for leak in (_b64url(DATA_KEY), DATA_KEY.hex(), said[2]):
        assert leak not in caplog.text
        assert leak not in error_and_repr
