"""Verify the JWTs that ACS Call Automation signs on callbacks and media WebSocket connects.

As documented in "How to secure webhook endpoints and websocket connections"
(https://learn.microsoft.com/azure/communication-services/how-tos/call-automation/secure-webhook-endpoint):
every callback request and every WebSocket connect request carries
``Authorization: Bearer <jwt>``, signed RS256 with a key from the ``jwks_uri`` of
the OpenID configuration below; ``iss`` is that configuration's issuer and ``aud``
is the ACS resource's ``immutableResourceId``. Callback tokens live 5 minutes,
WebSocket tokens 24 hours. Every failure is :class:`Unauthorized` with a short
reason and never the token; failing to fetch the configuration or keys fails closed
as ``"keys unavailable"``. The OpenID machinery is :mod:`reddytalk.oidc`, shared
with the admin API's Entra ID tokens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reddytalk.oidc import OidcTokenVerifier, utc_claim

__all__ = ["ACS_ISSUER", "ACS_OPENID_CONFIG_URL", "AcsClaims", "AcsTokenVerifier"]

ACS_OPENID_CONFIG_URL = (
    "https://acscallautomation.communication.azure.com/calling/.well-known/acsopenidconfiguration"
)
# The documented issuer; the verifier checks ``iss`` against the configuration's.
ACS_ISSUER = "https://acscallautomation.communication.azure.com"


@dataclass(frozen=True, slots=True)
class AcsClaims:
    """The checked claims of an ACS token.

    Attributes:
        subject: ``sub``, if the token has one.
        audience: The audience that matched (the ACS resource's immutableResourceId).
        issued_at: ``iat`` in UTC, if the token has one.
        expires_at: ``exp`` in UTC.
        claims: Every claim, read-only; kept out of ``repr`` so it never reaches a log.
    """

    subject: str | None
    audience: str
    issued_at: datetime | None
    expires_at: datetime
    claims: Mapping[str, Any] = field(repr=False, hash=False)


class AcsTokenVerifier:
    """Checks ``Authorization`` header values against the ACS signing keys.

    Thread-safe (see :class:`~reddytalk.oidc.OidcTokenVerifier`).

    Args:
        audience: The ACS resource's immutableResourceId.
        openid_config_url: Where the OpenID configuration (``jwks_uri``, ``issuer``) is.
        leeway_s: Clock skew allowed on ``exp``, ``nbf`` and ``iat``.
        cache_ttl_s: How long the configuration and the key set are reused.
        timeout_s: Timeout of each HTTP request.
        min_refetch_interval_s: An unknown ``kid`` (key rotation) refetches the key set
            at most once per this interval after any successful fetch.
    """

    def __init__(
        self,
        *,
        audience: str,
        openid_config_url: str = ACS_OPENID_CONFIG_URL,
        leeway_s: int = 60,
        cache_ttl_s: int = 3600,
        timeout_s: float = 5.0,
        min_refetch_interval_s: float = 10.0,
    ) -> None:
        if not audience:
            raise ValueError("audience must be the ACS resource's immutableResourceId")
        self._tokens = OidcTokenVerifier(
            audience=audience,
            openid_config_url=openid_config_url,
            leeway_s=leeway_s,
            cache_ttl_s=cache_ttl_s,
            timeout_s=timeout_s,
            min_refetch_interval_s=min_refetch_interval_s,
        )

    def verify(self, authorization: str | None) -> AcsClaims:
        """Check a raw ``Authorization`` header value (``"Bearer <jwt>"``).

        May block on a network fetch (at most ``timeout_s`` per request).

        Args:
            authorization: The header's value, or ``None`` if the request had none.

        Returns:
            The token's checked claims.

        Raises:
            Unauthorized: With a short reason, never the token.
        """
        payload = self._tokens.verify(authorization)
        return AcsClaims(
            subject=payload.get("sub"),
            audience=self._tokens.audience,
            issued_at=utc_claim(payload["iat"]) if "iat" in payload else None,
            expires_at=utc_claim(payload["exp"]),
            claims=payload,
        )

    async def verify_async(self, authorization: str | None) -> AcsClaims:
        """:meth:`verify` off the event loop.

        Always in a thread: even with warm caches a call can wait on the lock while
        another thread fetches keys (up to ``timeout_s``), and telling in advance
        would mean reading PyJWKClient's private cache state. The hop costs well
        under a millisecond, paid once per callback or connection.
        """
        return await asyncio.to_thread(self.verify, authorization)
