"""Bearer tokens for the EHR's FHIR API: the OAuth 2.0 client credentials grant.

RFC 6749 §4.4: ``POST token_url`` with ``grant_type=client_credentials``, the client
authenticated one of three ways:

    client_secret_basic   (default) HTTP Basic, id and secret form-urlencoded first (§2.3.1)
    client_secret_post    ``client_id`` and ``client_secret`` in the form (``secret_in_body``)
    private_key_jwt       SMART Backend Services: a JWT signed with the client's private key
                          (RS384 or ES384; ``iss`` = ``sub`` = client id, ``aud`` = token URL,
                          ``exp`` five minutes out, a fresh ``jti``; header ``kid``)

The token is cached until ``refresh_margin_s`` before its ``expires_in`` (300 s when the
server gives none); concurrent callers share one token request. A FHIR server answering
401 to a token it just got is reported with :meth:`ClientCredentialsToken.expire`; the
FHIR client then asks for a token once more, and a second 401 is an error (the FHIR
client's rule, :mod:`reddytalk.providers.ehr.fhir_client`).

Errors are :class:`~reddytalk.errors.ProviderError`: a refused grant (400/401, the OAuth
``error`` code named) is not retryable; 429, 5xx, timeouts and connection failures are.
Neither the secret, the key nor a token ever reaches a log, a ``repr`` or an error.
"""

from __future__ import annotations

import asyncio
import base64
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote_plus

import aiohttp
import jwt

from reddytalk.errors import ProviderError

__all__ = ["JWT_BEARER_ASSERTION", "ClientCredentialsToken", "TokenProvider"]

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
_DEFAULT_EXPIRES_IN_S = 300.0
_ASSERTION_LIFETIME_S = 300  # SMART Backend Services: exp no more than five minutes out
_OAUTH_ERROR = re.compile(r"[a-z_]{1,64}")  # RFC 6749 §5.2 error codes; anything else is dropped


class TokenProvider(Protocol):
    """Where the FHIR client gets its bearer token."""

    async def access_token(self) -> str:
        """A token to send now (cached while valid)."""
        ...

    def expire(self, token: str) -> None:
        """The server refused ``token``: the next :meth:`access_token` gets a new one."""
        ...


@dataclass(frozen=True, slots=True)
class _Cached:
    token: str
    refresh_at: float  # on the monotonic clock


class ClientCredentialsToken:
    """An OAuth 2.0 client credentials token, fetched when needed and cached.

    Give ``client_secret`` or ``private_key`` (a PEM private key, for SMART's
    ``private_key_jwt``), not both. Use it from one event loop.

    Args:
        token_url: The authorization server's token endpoint.
        client_id: The client's id.
        client_secret: Its secret (from the secrets port).
        private_key: A PEM RSA or EC private key instead of a secret.
        key_id: The ``kid`` of that key in the JWKS the server knows.
        algorithm: The assertion's signing algorithm (``RS384`` or ``ES384``).
        scope: The scopes to ask for (space-separated), if the server wants them.
        secret_in_body: Send the secret in the form, not as HTTP Basic.
        refresh_margin_s: Get a new token this long before the old one expires (at
            most half its lifetime).
        timeout_s: Limit on one token request.
        clock: Monotonic seconds, for the cache (tests pass their own).
    """

    def __init__(
        self,
        *,
        token_url: str,
        client_id: str,
        client_secret: str = "",
        private_key: str = "",
        key_id: str = "",
        algorithm: str = "RS384",
        scope: str = "",
        secret_in_body: bool = False,
        refresh_margin_s: float = 60.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if bool(client_secret) == bool(private_key):
            raise ValueError("give exactly one of client_secret and private_key")
        if algorithm not in ("RS384", "ES384"):
            raise ValueError(f"algorithm must be RS384 or ES384, not {algorithm!r}")
        self._token_url = token_url
        self._client_id = client_id
        self._secret = client_secret
        self._private_key = private_key
        self._key_id = key_id
        self._algorithm = algorithm
        self._scope = scope
        self._secret_in_body = secret_in_body
        self._margin_s = refresh_margin_s
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._clock = clock
        self._cached: _Cached | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return (
            f"ClientCredentialsToken(token_url={self._token_url!r}, client_id={self._client_id!r})"
        )

    async def access_token(self) -> str:
        """The cached token, or a new one when it is (nearly) expired or was refused.

        Raises:
            ProviderError: The token endpoint refused or failed.
        """
        cached = self._cached
        if cached is not None and self._clock() < cached.refresh_at:
            return cached.token
        async with self._lock:  # one request for all the callers who found no token
            cached = self._cached
            if cached is not None and self._clock() < cached.refresh_at:
                return cached.token
            self._cached = await self._fetch()
            return self._cached.token

    def expire(self, token: str) -> None:
        """Forget ``token`` if it is still the cached one (a 401 reported twice costs one
        new token, not two)."""
        if self._cached is not None and self._cached.token == token:
            self._cached = None

    async def _fetch(self) -> _Cached:
        form = {"grant_type": "client_credentials"}
        if self._scope:
            form["scope"] = self._scope
        headers = {"Accept": "application/json"}
        if self._private_key:
            form["client_assertion_type"] = JWT_BEARER_ASSERTION
            form["client_assertion"] = self._assertion()
        elif self._secret_in_body:
            form["client_id"] = self._client_id
            form["client_secret"] = self._secret
        else:
            pair = f"{quote_plus(self._client_id)}:{quote_plus(self._secret)}"
            headers["Authorization"] = f"Basic {base64.b64encode(pair.encode()).decode()}"
        started = self._clock()
        try:
            async with aiohttp.ClientSession(timeout=self._timeout) as session:
                async with session.post(self._token_url, data=form, headers=headers) as response:
                    status = response.status
                    body: Any = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise ProviderError(
                f"token request failed: {type(error).__name__}", retryable=True
            ) from None
        except ValueError:  # not JSON
            raise ProviderError(
                "token endpoint answered something not JSON", retryable=True
            ) from None
        return self._accept(status, body, started)

    def _accept(self, status: int, body: Any, started: float) -> _Cached:
        if status != 200:
            code = body.get("error") if isinstance(body, dict) else None
            reason = code if isinstance(code, str) and _OAUTH_ERROR.fullmatch(code) else "error"
            raise ProviderError(
                f"token request refused: HTTP {status} ({reason})",
                retryable=status == 429 or status >= 500,
            )
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise ProviderError("token response has no access_token", retryable=False)
        token_type = body.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ProviderError("token response is not a bearer token", retryable=False)
        expires_in = _seconds(body.get("expires_in"))
        margin = min(self._margin_s, expires_in / 2)
        return _Cached(token, started + expires_in - margin)

    def _assertion(self) -> str:
        now = int(time.time())
        claims = {
            "iss": self._client_id,
            "sub": self._client_id,
            "aud": self._token_url,
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME_S,
            "jti": uuid.uuid4().hex,
        }
        headers = {"typ": "JWT", **({"kid": self._key_id} if self._key_id else {})}
        try:
            return jwt.encode(claims, self._private_key, algorithm=self._algorithm, headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError):
            raise ProviderError("the client's private key cannot sign", retryable=False) from None


def _seconds(value: object) -> float:
    """``expires_in`` as seconds (RFC 6749 says a number; some servers send a string)."""
    if isinstance(value, bool):
        return _DEFAULT_EXPIRES_IN_S
    if isinstance(value, int | float):
        return float(value) if value > 0 else _DEFAULT_EXPIRES_IN_S
    if isinstance(value, str) and value.isdigit() and int(value) > 0:
        return float(value)
    return _DEFAULT_EXPIRES_IN_S
