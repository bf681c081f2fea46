"""An Azure Key Vault RSA key behind :class:`reddytalk.ports.KeyEncryptionKey`.

Data keys are wrapped with ``RSA-OAEP-256`` (OAEP, SHA-256 and MGF1-SHA-256). The key is named
by its Key Vault key id, ``https://<vault>.vault.azure.net/keys/<name>/<version>``; the
versioned id of the key that wrapped a data key is stored next to it, and :meth:`unwrap` sends
the wrap back to that version, so data keys wrapped before a rotation still unwrap after it.

What azure-keyvault-keys 4.11.3 sends (api-version ``2025-07-01``, the package's default):

* :meth:`KeyVaultKek.open`: ``GET {vault}/keys/{name}/{version}`` (``/keys/{name}/`` for an
  unversioned id: the current version) → 200 ``KeyBundle`` ``{"key": <JWK>, "attributes"}``.
* :meth:`KeyVaultKek.wrap`: nothing. ``CryptographyClient`` (``crypto/aio/_client.py``) does an
  operation locally whenever its local provider ``supports`` it: here the RSA public key of
  the JWK above, which supports wrap (``crypto/_providers/rsa.py``). The wrap is real RSA-OAEP
  with ``cryptography``; the vault neither sees nor logs it. Local wrap checks the key's
  ``nbf``/``exp`` and its ``key_ops`` but cannot see a version disabled since :meth:`open`.
* :meth:`KeyVaultKek.unwrap`: ``POST {vault}/keys/{name}/{version}/unwrapkey`` with
  ``{"alg": "RSA-OAEP-256", "value": <base64url>}`` → ``{"kid", "value"}``. Unwrap needs the
  private key, which never leaves the vault, so the local provider never supports it. For a
  version other than the current one the client first fetches that version
  (``GET /keys/{name}/{version}``, once per version and process) to build its local provider,
  finds it cannot unwrap, and sends the unwrap to the vault.
* ``POST …/wrapkey`` only if local wrap fails (the SDK logs a warning and falls back) or if the
  client could not read the key (403 on GET); the checks in :class:`KeyVaultKek` rule out both.

Authentication is Key Vault's challenge protocol, as for secrets (see
:mod:`reddytalk.providers.secrets.keyvault`). Neither data keys nor wraps reach a log or an
error message; the SDK's body logging (``logging_enable``) is forced off because unwrap
answers carry the data key.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self
from urllib.parse import urlsplit

from azure.core.credentials_async import AsyncTokenCredential
from azure.keyvault.keys import KeyOperation, KeyType, KeyVaultKey, KeyVaultKeyIdentifier
from azure.keyvault.keys.aio import KeyClient
from azure.keyvault.keys.crypto import KeyWrapAlgorithm
from azure.keyvault.keys.crypto.aio import CryptographyClient

from reddytalk.errors import ProviderError
from reddytalk.providers.azure_errors import provider_errors

__all__ = ["KeyVaultKek"]

_ALGORITHM = KeyWrapAlgorithm.rsa_oaep_256
_RSA_TYPES = frozenset({KeyType.rsa, KeyType.rsa_hsm})
_NEEDED_OPERATIONS = frozenset({KeyOperation.wrap_key, KeyOperation.unwrap_key})


def _client_options(client_options: Mapping[str, Any] | None) -> dict[str, Any]:
    # azure-core would otherwise retry up to 10 times (retries live once, in the wrapper around
    # every provider); logging_enable would log request and response bodies at DEBUG.
    options: dict[str, Any] = {"retry_total": 0, **(client_options or {})}
    options["logging_enable"] = False
    return options


def _parse_key_id(key_id: str) -> KeyVaultKeyIdentifier:
    """``key_id`` parsed, if it is an ``https`` id in a vault's ``keys`` collection.

    Raises:
        ValueError: It is not.
    """
    parts = urlsplit(key_id)
    if parts.scheme != "https" or not parts.path.startswith("/keys/"):
        raise ValueError(f"not an https Key Vault key id: {key_id!r}")
    return KeyVaultKeyIdentifier(key_id)


def _version_of(key_id: str) -> tuple[str, str, str]:
    """``(vault_url, name, version)`` of a versioned key id; names compare case-insensitively.

    Raises:
        ValueError: Not a Key Vault key id, or one without a version.
    """
    identifier = _parse_key_id(key_id)
    if not identifier.version:
        raise ValueError(f"not a versioned key id: {key_id!r}")
    return identifier.vault_url.lower(), identifier.name.lower(), identifier.version


class KeyVaultKek:
    """Wraps data keys with one version of a Key Vault RSA key; unwraps with any version of it.

    Build it with :meth:`open`, which resolves the key's current version.

    Args:
        key: The current key version, as ``KeyClient.get_key`` returns it (with its JWK).
        credential: An azure-core ``AsyncTokenCredential`` (``DefaultAzureCredential``: managed
            identity in Azure), built and closed by the composition root.
        client_options: azure-core options for the Key Vault clients (``connection_verify``,
            timeouts, ``verify_challenge_resource``, ``api_version``). The SDK's own retries
            are off unless set here.

    Raises:
        ValueError: The key is not an enabled RSA key version that allows wrap and unwrap.
    """

    def __init__(
        self,
        *,
        key: KeyVaultKey,
        credential: AsyncTokenCredential,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._vault_url, self._name, _ = _version_of(key.id)
        if key.key_type not in _RSA_TYPES:
            raise ValueError(f"the key-encryption key must be RSA, not {key.key_type}")
        if key.properties.enabled is False:
            raise ValueError(f"key version {key.id} is disabled")
        if key.key_operations is not None and not _NEEDED_OPERATIONS <= set(key.key_operations):
            raise ValueError(f"key version {key.id} must allow wrapKey and unwrapKey")
        self._key_id = key.id
        self._credential = credential
        self._options = _client_options(client_options)
        # Built from the KeyVaultKey: the client holds the public JWK and the key's nbf/exp,
        # so wrap is local from the first call, without another GET.
        self._current = CryptographyClient(key, credential, **self._options)
        self._clients: dict[tuple[str, str, str], CryptographyClient] = {
            _version_of(key.id): self._current
        }

    @classmethod
    async def open(
        cls,
        *,
        key_id: str,
        credential: AsyncTokenCredential,
        client_options: Mapping[str, Any] | None = None,
    ) -> KeyVaultKek:
        """Fetch the key named by ``key_id`` (its current version if the id has none).

        Args:
            key_id: ``https://<vault>.vault.azure.net/keys/<name>[/<version>]``. Without a
                version, the version current now is used until the next :meth:`open`.
            credential: As for the constructor.
            client_options: As for the constructor.

        Raises:
            ValueError: ``key_id`` is not a Key Vault key id, or the key does not fit.
            ProviderError: The vault refused (missing key, no ``keys/get`` permission) or
                could not be reached (retryable).
        """
        identifier = _parse_key_id(key_id)
        async with KeyClient(
            identifier.vault_url, credential, **_client_options(client_options)
        ) as keys:
            with provider_errors("Key Vault", "get key"):
                key = await keys.get_key(identifier.name, identifier.version)
        return cls(key=key, credential=credential, client_options=client_options)

    @property
    def key_id(self) -> str:
        """The versioned id of the key version that :meth:`wrap` uses."""
        return self._key_id

    def __repr__(self) -> str:
        return f"KeyVaultKek(key_id={self._key_id!r})"

    async def wrap(self, data_key: bytes) -> bytes:
        """``data_key`` wrapped with RSA-OAEP-256 under the current key version (locally).

        Raises:
            ProviderError: The key version is outside its validity period (not retryable), or
                the SDK fell back to the vault and that failed.
        """
        with provider_errors("Key Vault", "wrap"):
            try:
                result = await self._current.wrap_key(_ALGORITHM, data_key)
            except ValueError:
                # crypto/_key_validity.py: raised before a local operation outside nbf/exp.
                raise ProviderError(
                    "Key Vault wrap failed: the key version is outside its validity period",
                    retryable=False,
                ) from None
        return result.encrypted_key

    async def unwrap(self, wrapped: bytes, *, key_id: str) -> bytes:
        """The data key that key version ``key_id`` wrapped; the vault does the unwrap.

        Raises:
            ProviderError: ``key_id`` is not a version of this key, or the vault could not
                unwrap ``wrapped`` (not retryable); the vault is unreachable (retryable).
        """
        with provider_errors("Key Vault", "unwrap"):
            result = await self._client_for(key_id).unwrap_key(_ALGORITHM, wrapped)
        return result.key

    def _client_for(self, key_id: str) -> CryptographyClient:
        # The key id comes from storage. Only versions of our own key are trusted: another id
        # would send the wrap, and a token, to whichever host it names.
        try:
            version = _version_of(key_id)
        except ValueError:
            raise ProviderError("the wrap's key id is not a key version", retryable=False) from None
        if version[:2] != (self._vault_url, self._name):
            raise ProviderError("the wrap's key id names another key", retryable=False)
        client = self._clients.get(version)
        if client is None:
            client = CryptographyClient(key_id, self._credential, **self._options)
            self._clients[version] = client
        return client

    async def close(self) -> None:
        """Close every client's HTTP session (not the credential)."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
