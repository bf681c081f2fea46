"""Verify RS256 bearer tokens against an OpenID Connect provider's published keys.

Shared by the verifiers of ACS's tokens (:mod:`reddytalk.telephony.acs_auth`) and of
Entra ID's tokens for the admin API (:mod:`reddytalk.admin.auth`): both publish an
OpenID configuration whose ``jwks_uri`` holds the signing keys and whose ``issuer``
the tokens' ``iss`` must equal (OpenID Connect Discovery 1.0 §3). Every failure is
:class:`Unauthorized` with a short reason and never the token; failing to fetch the
configuration or keys fails closed as ``"keys unavailable"``.
"""

from __future__ import annotations

import json
import re
import threading
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from types import MappingProxyType
from typing import Any
from urllib.error import HTTPError
from urllib.parse import urlparse

import jwt

from reddytalk.errors import Unauthorized

__all__ = ["REASONS", "OidcTokenVerifier", "bearer_token", "utc_claim"]

# RS256 only: accepting "none" or an HS* alg would let a token choose how it is checked
# (RFC 8725 §2.1, algorithm confusion).
_ALGORITHMS = ["RS256"]
_COMPACT_JWS = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_MAX_TOKEN_CHARS = 16_384
_MAX_CONFIG_BYTES = 1 << 20
# Short reasons for PyJWT's errors, most specific first; PyJWT's messages are not reused.
_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "missing claim"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidKeyError, "unusable key"),
)
REASONS = frozenset(
    {"missing header", "not bearer", "malformed", "unknown key", "keys unavailable"}
    | {reason for _, reason in _REASONS}
)
"""Every reason :meth:`OidcTokenVerifier.verify` may give."""


@dataclass(frozen=True, slots=True)
class _Config:
    issuer: str
    keys: jwt.PyJWKClient
    fetched_at_s: float


class OidcTokenVerifier:
    """Checks ``Authorization`` header values against a provider's signing keys.

    Thread-safe: one lock guards the configuration and key lookup, so concurrent cold
    starts make one request, not one each; signatures are checked outside it.

    Args:
        audience: What ``aud`` must be.
        openid_config_url: Where the OpenID configuration (``jwks_uri``, ``issuer``) is.
        required_claims: Claims a token must carry besides ``exp``, ``aud`` and ``iss``.
        leeway_s: Clock skew allowed on ``exp``, ``nbf`` and ``iat``.
        cache_ttl_s: How long the configuration and the key set are reused.
        timeout_s: Timeout of each HTTP request.
        min_refetch_interval_s: An unknown ``kid`` (key rotation) refetches the key set
            at most once per this interval after any successful fetch.

    Raises:
        ValueError: An empty audience or a negative interval.
    """

    def __init__(
        self,
        *,
        audience: str,
        openid_config_url: str,
        required_claims: Sequence[str] = (),
        leeway_s: int = 60,
        cache_ttl_s: int = 3600,
        timeout_s: float = 5.0,
        min_refetch_interval_s: float = 10.0,
    ) -> None:
        if not audience:
            raise ValueError("audience is required")
        if leeway_s < 0 or cache_ttl_s <= 0 or timeout_s <= 0 or min_refetch_interval_s < 0:
            raise ValueError("leeway_s, min_refetch_interval_s >= 0; cache_ttl_s, timeout_s > 0")
        self._audience = audience
        self._config_url = openid_config_url
        self._required = ["exp", "aud", "iss", *required_claims]
        self._leeway_s = leeway_s
        self._cache_ttl_s = cache_ttl_s
        self._timeout_s = timeout_s
        self._min_refetch_interval_s = min_refetch_interval_s
        self._lock = threading.Lock()
        self._config: _Config | None = None

    @property
    def audience(self) -> str:
        """What ``aud`` must be."""
        return self._audience

    def verify(self, authorization: str | None) -> Mapping[str, Any]:
        """Check a raw ``Authorization`` header value (``"Bearer <jwt>"``).

        May block on a network fetch (at most ``timeout_s`` per request).

        Args:
            authorization: The header's value, or ``None`` if the request had none.

        Returns:
            The token's checked claims, read-only.

        Raises:
            Unauthorized: With a short reason (one of :data:`REASONS`), never the token.
        """
        token = bearer_token(authorization)
        if not _COMPACT_JWS.fullmatch(token):
            raise Unauthorized("malformed")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed") from None
        if header.get("alg") not in _ALGORITHMS:
            raise Unauthorized("algorithm not allowed")
        kid = header.get("kid")
        if not isinstance(kid, str):
            raise Unauthorized("unknown key")
        issuer, key = self._signing_key(kid)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=_ALGORITHMS,
                audience=self._audience,
                issuer=issuer,
                leeway=self._leeway_s,
                options={"require": self._required, "enforce_minimum_key_length": True},
            )
        except jwt.PyJWTError as error:
            reason = next((r for kind, r in _REASONS if isinstance(error, kind)), "malformed")
            raise Unauthorized(reason) from None
        return MappingProxyType(payload)

    def _signing_key(self, kid: str) -> tuple[str, jwt.PyJWK]:
        with self._lock:
            config = self._current_config()
            try:
                # Fills or reuses the cached key set, so a failure here is the keys' fault.
                config.keys.get_signing_keys()
            except jwt.PyJWTError as error:
                raise Unauthorized("keys unavailable") from error
            try:
                # Unknown kid: PyJWKClient refetches once, unless within the cooldown.
                return config.issuer, config.keys.get_signing_key(kid)
            except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError) as error:
                raise Unauthorized("keys unavailable") from error
            except jwt.PyJWKClientError:
                raise Unauthorized("unknown key") from None

    def _current_config(self) -> _Config:
        now_s = time.monotonic()
        config = self._config
        if config is not None and now_s - config.fetched_at_s < self._cache_ttl_s:
            return config
        jwks_uri, issuer = _fetch_openid_config(self._config_url, self._timeout_s)
        if config is None or config.keys.uri != jwks_uri:
            try:
                keys = jwt.PyJWKClient(
                    jwks_uri,
                    # The set cache expires; PyJWKClient's cache_keys LRU never does, so
                    # it would keep trusting a key the provider has withdrawn: left off.
                    lifespan=self._cache_ttl_s,
                    timeout=self._timeout_s,
                    cooldown_duration=self._min_refetch_interval_s,
                )
            except jwt.PyJWTError as error:
                raise Unauthorized("keys unavailable") from error
        else:
            keys = config.keys
        self._config = _Config(issuer=issuer, keys=keys, fetched_at_s=now_s)
        return self._config


def bearer_token(authorization: str | None) -> str:
    """The credentials of a ``Bearer`` ``Authorization`` header value.

    Raises:
        Unauthorized: No header, another scheme, or not one bounded token.
    """
    parts = (authorization or "").split()
    if not parts:
        raise Unauthorized("missing header")
    if parts[0].lower() != "bearer":  # the scheme is case-insensitive (RFC 7235 §2.1)
        raise Unauthorized("not bearer")
    if len(parts) != 2 or len(parts[1]) > _MAX_TOKEN_CHARS:
        raise Unauthorized("malformed")
    return parts[1]


def _fetch_openid_config(url: str, timeout_s: float) -> tuple[str, str]:
    """Return ``(jwks_uri, issuer)``; any failure is "keys unavailable"."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            document = json.loads(response.read(_MAX_CONFIG_BYTES))
    except HTTPError as error:
        error.close()  # else its socket is left to the GC (a ResourceWarning)
        raise Unauthorized("keys unavailable") from error
    except (OSError, ValueError, HTTPException) as error:
        raise Unauthorized("keys unavailable") from error
    jwks_uri = document.get("jwks_uri") if isinstance(document, dict) else None
    issuer = document.get("issuer") if isinstance(document, dict) else None
    if not (isinstance(jwks_uri, str) and jwks_uri and isinstance(issuer, str) and issuer):
        raise Unauthorized("keys unavailable")
    # No downgrade: keys named by an HTTPS configuration come over HTTPS too.
    if urlparse(url).scheme == "https" and urlparse(jwks_uri).scheme != "https":
        raise Unauthorized("keys unavailable")
    return jwks_uri, issuer


def utc_claim(timestamp: Any) -> datetime:
    """A checked NumericDate claim (``exp``, ``iat``) as an aware UTC datetime.

    Raises:
        Unauthorized: ``"malformed"``: it cannot be a datetime (PyJWT accepted it as
            ``int(timestamp)``, but a huge one still overflows).
    """
    try:
        return datetime.fromtimestamp(int(timestamp), tz=UTC)
    except (OverflowError, OSError, ValueError, TypeError):
        raise Unauthorized("malformed") from None
