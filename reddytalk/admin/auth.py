"""Who is calling the admin API: Entra ID bearer tokens, or the embedded profile's
local admin token.

Tokens are checked here, in code, whether or not App Service Authentication also
runs in front of the app: RS256 only, signed by a key of the tenant's OpenID
configuration (``jwks_uri``), ``iss`` equal to that configuration's issuer, ``aud``
equal to the API's app registration, ``exp`` and ``oid`` required. Entra ID issues
v2.0 tokens (whose issuer the v2.0 configuration names) only when the API's app
registration sets ``accessTokenAcceptedVersion: 2`` in its manifest.

App roles (the token's ``roles`` claim, assigned in the API's enterprise application):

- ``ReddyTalk.Operator``: every clinic; adds, updates and removes clinics.
- ``ReddyTalk.ClinicAdmin``: reads the calls and messages, and marks messages done, of
  the clinics whose ``admins`` list the user's ``oid`` or one of the token's
  ``groups``.

The local admin token (``REDDYTALK_ADMIN_TOKEN``, which the local stack creates and
prints) has Operator rights; it is accepted only when configured. With neither Entra
ID settings nor a local token every request is refused (fail closed).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from reddytalk.errors import Forbidden, Unauthorized
from reddytalk.oidc import OidcTokenVerifier, bearer_token

if TYPE_CHECKING:
    from reddytalk.scheduling.model import Clinic
    from reddytalk.settings import Settings

__all__ = [
    "CLINIC_ADMIN_ROLE",
    "ENTRA_OPENID_CONFIG_URL",
    "LOCAL_ADMIN",
    "OPERATOR_ROLE",
    "AdminAuthenticator",
    "Principal",
    "build_admin_authenticator",
]

log = logging.getLogger(__name__)

OPERATOR_ROLE = "ReddyTalk.Operator"
"""The app role that administers every clinic."""
CLINIC_ADMIN_ROLE = "ReddyTalk.ClinicAdmin"
"""The app role that reads the calls and messages of the clinics that list the user."""
ENTRA_OPENID_CONFIG_URL = (
    "https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration"
)
"""Entra ID's v2.0 OpenID configuration of a tenant (``{tenant}``: its id)."""
LOCAL_ADMIN = "local-admin"
"""The actor the audit trail names for the local admin token."""

# A tenant id (GUID) or a verified domain; nothing that could change the URL's path.
_TENANT = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made an admin request, and what their token grants.

    Attributes:
        actor: Who the audit trail names: the user's Entra ``oid``, or
            :data:`LOCAL_ADMIN`.
        is_operator: Holds ``ReddyTalk.Operator`` (or is the local admin).
        is_clinic_admin: Holds ``ReddyTalk.ClinicAdmin``.
        identities: The user's ``oid`` and ``groups``, lowercase: matched against a
            clinic's ``admins``.
    """

    actor: str
    is_operator: bool
    is_clinic_admin: bool
    identities: frozenset[str] = frozenset()

    def check_has_role(self) -> None:
        """Raises:
        Forbidden: The token holds neither admin role.
        """
        if not (self.is_operator or self.is_clinic_admin):
            raise Forbidden("the token holds no ReddyTalk admin role")

    def check_operator(self) -> None:
        """Raises:
        Forbidden: Not an Operator (adding, changing, removing clinics).
        """
        if not self.is_operator:
            raise Forbidden(f"only the {OPERATOR_ROLE} role may change clinics")

    def may_see(self, clinic: Clinic) -> bool:
        """Whether the principal may read the clinic's calls and messages."""
        if self.is_operator:
            return True
        return self.is_clinic_admin and any(a.lower() in self.identities for a in clinic.admins)


class AdminAuthenticator:
    """Turns an ``Authorization`` header into a :class:`Principal`.

    Args:
        verifier: Entra ID's tokens, or None when no tenant is configured.
        local_token: The local admin token, or empty when there is none (Azure).
    """

    def __init__(self, *, verifier: OidcTokenVerifier | None, local_token: str = "") -> None:
        self._verifier = verifier
        self._local_token = local_token.encode()
        self._warned = False

    @property
    def is_configured(self) -> bool:
        """Whether any credential can be accepted at all."""
        return self._verifier is not None or bool(self._local_token)

    def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a raw ``Authorization`` header value.

        May block on fetching Entra ID's keys (see :class:`OidcTokenVerifier`).

        Raises:
            Unauthorized: With a short reason, never the token.
        """
        if not self.is_configured:
            if not self._warned:  # once: every request would say the same
                self._warned = True
                log.warning(
                    "the admin API is not configured (no REDDYTALK_ADMIN_TENANT_ID and "
                    "REDDYTALK_ADMIN_AUDIENCE, no REDDYTALK_ADMIN_TOKEN): refusing every request"
                )
            raise Unauthorized("admin API not configured")
        token = bearer_token(authorization)
        # Constant time: a byte-by-byte comparison would leak the token's prefix.
        if self._local_token and hmac.compare_digest(token.encode(), self._local_token):
            return Principal(actor=LOCAL_ADMIN, is_operator=True, is_clinic_admin=False)
        if self._verifier is None:
            raise Unauthorized("not the local admin token")
        return _principal(self._verifier.verify(authorization))

    async def authenticate_async(self, authorization: str | None) -> Principal:
        """:meth:`authenticate` off the event loop (a key fetch blocks)."""
        return await asyncio.to_thread(self.authenticate, authorization)


def _principal(claims: Mapping[str, Any]) -> Principal:
    oid = claims.get("oid")
    if not isinstance(oid, str) or not oid:
        raise Unauthorized("missing claim")
    roles = _strings(claims.get("roles"))
    groups = _strings(claims.get("groups"))
    return Principal(
        actor=oid,
        is_operator=OPERATOR_ROLE in roles,
        is_clinic_admin=CLINIC_ADMIN_ROLE in roles,
        identities=frozenset(i.lower() for i in (oid, *groups)),
    )


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def build_admin_authenticator(settings: Settings) -> AdminAuthenticator:
    """The admin API's authenticator, from ``settings``.

    Entra ID tokens are accepted when both ``admin_tenant_id`` and ``admin_audience``
    are set; the local token when ``admin_token`` is. A half or malformed Entra ID
    configuration is logged and accepts no token (fail closed) rather than raising:
    the Functions app builds this with call control, and calls must still be answered.
    """
    tenant, audience = settings.admin_tenant_id, settings.admin_audience
    verifier = None
    if bool(tenant) != bool(audience):
        log.error("the admin API needs REDDYTALK_ADMIN_TENANT_ID and _AUDIENCE together")
    elif tenant and not _TENANT.fullmatch(tenant):
        log.error("REDDYTALK_ADMIN_TENANT_ID is not a tenant id: Entra ID tokens refused")
    elif tenant:
        verifier = OidcTokenVerifier(
            audience=audience,
            openid_config_url=settings.admin_openid_config_url
            or ENTRA_OPENID_CONFIG_URL.format(tenant=tenant),
            required_claims=("oid",),
        )
    return AdminAuthenticator(verifier=verifier, local_token=settings.admin_token)
