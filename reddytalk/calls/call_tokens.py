"""Per-call tokens: how the media worker proves to the tools API which call it speaks for.

``incoming_call`` issues one when it answers and hands it to the media worker in
the stream URL (only ACS sees that URL); the media worker sends it back as a
Bearer token on every tools request. It names one call and one clinic and
expires with the longest call, so a leaked token can touch one call's tools for
a short while and nothing else. HS256 with a secret only the Functions app
holds (Key Vault in Azure), through PyJWT: the media worker carries tokens, it
never makes them.

A second kind, the patient token, is what the tools API hands back when it
identified (or registered) the caller: it names the patient as well, and every
tool that touches a patient's appointments asks for it. So a token for one call
reaches the appointments of the patient that call proved to be, and nobody else's.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import jwt

from reddytalk.errors import Unauthorized

__all__ = ["CallGrant", "CallTokens"]

_AUDIENCE = "reddytalk-tools"
_PATIENT_AUDIENCE = "reddytalk-patient"
_ALGORITHM = "HS256"
_MIN_SECRET_BYTES = 32


@dataclass(frozen=True, slots=True)
class CallGrant:
    """What a valid token allows: the tools of one call at one clinic."""

    call_id: str
    clinic_id: str


class CallTokens:
    """Issues and verifies per-call tokens.

    Args:
        secret: The shared secret (at least 32 bytes).
        lifetime: How long a token stays valid (longer than any call).
        leeway_s: Clock skew allowed between the two apps.
    """

    def __init__(
        self, *, secret: bytes, lifetime: dt.timedelta = dt.timedelta(hours=2), leeway_s: int = 30
    ) -> None:
        if len(secret) < _MIN_SECRET_BYTES:
            raise ValueError(f"the call token secret needs at least {_MIN_SECRET_BYTES} bytes")
        self._secret = secret
        self._lifetime = lifetime
        self._leeway_s = leeway_s

    def issue(self, *, call_id: str, clinic_id: str, now: dt.datetime) -> str:
        """A token for the tools of ``call_id`` at ``clinic_id``."""
        claims = {
            "aud": _AUDIENCE,
            "sub": call_id,
            "clinic": clinic_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self._lifetime).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def issue_for_patient(self, *, grant: CallGrant, patient_id: str, now: dt.datetime) -> str:
        """A token that the caller of ``grant``'s call proved to be ``patient_id``."""
        claims = {
            "aud": _PATIENT_AUDIENCE,
            "sub": patient_id,
            "call": grant.call_id,
            "clinic": grant.clinic_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self._lifetime).timestamp()),
        }
        return jwt.encode(claims, self._secret, algorithm=_ALGORITHM)

    def verify_patient(self, token: object, *, grant: CallGrant) -> str:
        """The patient id of a patient token issued to ``grant``'s call.

        Raises:
            Unauthorized: Not a string, expired, not signed with the secret, or
                issued to another call.
        """
        if not isinstance(token, str) or not token:
            raise Unauthorized("missing patient token")
        try:
            claims = jwt.decode(
                token,
                self._secret,
                algorithms=[_ALGORITHM],
                audience=_PATIENT_AUDIENCE,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("expired patient token") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid patient token") from None
        if (claims.get("call"), claims.get("clinic")) != (grant.call_id, grant.clinic_id):
            raise Unauthorized("the patient token is for another call")
        patient_id = claims["sub"]
        if not isinstance(patient_id, str):
            raise Unauthorized("invalid patient token")
        return patient_id

    def verify(self, authorization: str | None) -> CallGrant:
        """The grant of an ``Authorization: Bearer <token>`` header value.

        Raises:
            Unauthorized: Missing, malformed, expired, or not signed with the secret.
        """
        if not authorization:
            raise Unauthorized("missing header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("not bearer")
        try:
            claims = jwt.decode(
                token.strip(),
                self._secret,
                algorithms=[_ALGORITHM],
                audience=_AUDIENCE,
                leeway=self._leeway_s,
                options={"require": ["exp", "sub", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise Unauthorized("expired") from None
        except jwt.PyJWTError:
            raise Unauthorized("invalid call token") from None
        clinic = claims.get("clinic")
        if not isinstance(clinic, str) or not isinstance(claims["sub"], str):
            raise Unauthorized("invalid call token")
        return CallGrant(call_id=claims["sub"], clinic_id=clinic)
