"""Azure Key Vault behind :class:`reddytalk.ports.Secrets`, through managed identity.

Drives azure-keyvault-secrets 4.12's async ``SecretClient``, which sends (api-version
``2026-04-01``, the package's default):

* ``GET {vault}/secrets/{name}/?api-version=2026-04-01`` (the version segment is empty for
  "the current version", so the path ends in ``/``) → 200 ``SecretBundle``
  ``{"value", "id", "attributes", …}``; 404 ``{"error": {"code": "SecretNotFound", …}}``.

Authentication is Key Vault's challenge protocol (``_shared/async_challenge_auth_policy.py``):
the client's first request goes without a token, the vault answers 401 with
``WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/{tenant}",
resource="https://vault.azure.net"``, and the policy asks the credential for
``https://vault.azure.net/.default`` in that tenant and sends the request again with
``Authorization: Bearer …``. The challenge is cached per vault host for the process, so later
clients of the same vault skip the 401.

Values are cached for ``cache_ttl_s`` so that a call does not pay a Key Vault round trip
(tens of milliseconds) per secret; not-found is cached too. Values never reach a log, a repr
or an error message; the SDK's body logging (``logging_enable``) is forced off.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Self

from azure.core.credentials_async import AsyncTokenCredential
from azure.core.exceptions import (
    ResourceNotFoundError,
)
from azure.keyvault.secrets.aio import SecretClient

from reddytalk.providers.azure_errors import provider_errors
from reddytalk.providers.secrets.env import check_secret_name

__all__ = ["KeyVaultSecrets"]


@dataclass(frozen=True, slots=True)
class _Cached:
    value: str | None
    expires_at_s: float


class KeyVaultSecrets:
    """Named secrets from one Key Vault, cached for a few minutes.

    Args:
        vault_url: ``https://<vault>.vault.azure.net``.
        credential: An azure-core ``AsyncTokenCredential``: ``DefaultAzureCredential`` (managed
            identity in Azure), built and closed by the composition root.
        cache_ttl_s: How long a value (or its absence) is served from memory. A rotated secret
            is picked up within this time.
        clock: Monotonic seconds (tests pass a settable clock).
        client_options: azure-core options for ``SecretClient`` (``connection_verify``,
            timeouts, ``verify_challenge_resource``, ``api_version``). The SDK's own retries
            are off unless set here: retries live once, in the wrapper around every provider.

    Raises:
        ValueError: ``cache_ttl_s`` is negative.
    """

    def __init__(
        self,
        *,
        vault_url: str,
        credential: AsyncTokenCredential,
        cache_ttl_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
        client_options: Mapping[str, Any] | None = None,
    ) -> None:
        if cache_ttl_s < 0:
            raise ValueError(f"cache_ttl_s must not be negative, not {cache_ttl_s}")
        # azure-core would otherwise retry up to 10 times; logging_enable would log bodies
        # (secret values) at DEBUG, so it is off whatever the options say.
        options: dict[str, Any] = {"retry_total": 0, **(client_options or {})}
        options["logging_enable"] = False
        self._client = SecretClient(vault_url, credential, **options)
        self._ttl_s = cache_ttl_s
        self._clock = clock
        self._cache: dict[str, _Cached] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"KeyVaultSecrets(vault_url={self._client.vault_url!r})"

    async def get(self, name: str) -> str | None:
        """The secret's current value, or None if the vault has no secret ``name`` (404) or
        its value is empty.

        Concurrent gets of one name share one request.

        Raises:
            ValueError: ``name`` is not a valid secret name (nothing is sent).
            ProviderError: The vault refused or could not be reached; ``retryable`` says if
                asking again may help.
        """
        key = check_secret_name(name).lower()  # Key Vault names are case-insensitive
        cached = self._fresh(key)
        if cached is not None:
            return cached.value
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            cached = self._fresh(key)
            if cached is not None:
                return cached.value
            value = await self._fetch(name)
            self._cache[key] = _Cached(value, self._clock() + self._ttl_s)
            return value

    def _fresh(self, key: str) -> _Cached | None:
        cached = self._cache.get(key)
        if cached is None or self._clock() >= cached.expires_at_s:
            return None
        return cached

    async def _fetch(self, name: str) -> str | None:
        with provider_errors("Key Vault", "get secret"):
            try:
                secret = await self._client.get_secret(name)
            except ResourceNotFoundError:
                return None
        # As on the embedded profile, an empty value counts as no secret: none is validly empty.
        return secret.value or None

    async def close(self) -> None:
        """Drop cached values and close the client's HTTP session (not the credential)."""
        self._cache.clear()
        await self._client.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
