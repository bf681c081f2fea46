"""The admin API's authentication: Entra ID tokens through real PyJWT against a loopback
tenant, the local admin token, and what each principal may see."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from reddytalk.admin.auth import (
    CLINIC_ADMIN_ROLE,
    ENTRA_OPENID_CONFIG_URL,
    LOCAL_ADMIN,
    OPERATOR_ROLE,
    AdminAuthenticator,
    Principal,
    build_admin_authenticator,
)
from reddytalk.errors import Forbidden, Unauthorized
from reddytalk.providers.seed import demo_clinic
from reddytalk.settings import Settings
from tests.admin.entra import AUDIENCE, KEY, OTHER_KEY, TENANT, Entra, loopback_entra, token

LOCAL = "l" * 43
ALICE = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
STAFF = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"


@pytest.fixture
def entra() -> Iterator[Entra]:
    with loopback_entra() as tenant:
        yield tenant


def _authenticator(entra: Entra, *, local: str = "") -> AdminAuthenticator:
    return build_admin_authenticator(
        Settings(
            admin_tenant_id=TENANT,
            admin_audience=AUDIENCE,
            admin_openid_config_url=entra.config_url,
            admin_token=local,
        )
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _hs256_with_public_key() -> str:
    public = KEY.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = _b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    claims = {"iss": f"https://login.microsoftonline.com/{TENANT}/v2.0", "aud": AUDIENCE,
              "oid": ALICE, "exp": int(time.time()) + 600, "roles": [OPERATOR_ROLE]}  # fmt: skip
    payload = _b64(json.dumps(claims).encode())
    signature = hmac.new(public, f"{header}.{payload}".encode(), hashlib.sha256).digest()
    return f"{header}.{payload}.{_b64(signature)}"


def _unsigned() -> str:
    header = _b64(json.dumps({"alg": "none", "kid": "k1"}).encode())
    payload = _b64(json.dumps({"aud": AUDIENCE, "oid": ALICE, "roles": [OPERATOR_ROLE]}).encode())
    return f"{header}.{payload}."


def test_an_operator_token_gives_an_operator(entra: Entra) -> None:
    who = _authenticator(entra).authenticate(f"Bearer {token(roles=(OPERATOR_ROLE,), oid=ALICE)}")
    assert who == Principal(ALICE, True, False, frozenset({ALICE}))
    assert who.may_see(demo_clinic())


def test_a_clinic_admin_sees_the_clinics_that_list_them_or_their_group(entra: Entra) -> None:
    clinic = demo_clinic()
    listed = dataclasses.replace(clinic, admins=(STAFF,))
    raw = token(roles=(CLINIC_ADMIN_ROLE,), oid=ALICE, groups=(STAFF.upper(),))
    who = _authenticator(entra).authenticate(f"Bearer {raw}")
    assert (who.is_operator, who.is_clinic_admin) == (False, True)
    assert who.may_see(listed) and not who.may_see(clinic)
    with pytest.raises(Forbidden):
        who.check_operator()


def test_a_token_without_a_role_is_authenticated_but_forbidden(entra: Entra) -> None:
    who = _authenticator(entra).authenticate(f"Bearer {token(roles=('Other.Role',))}")
    assert not who.may_see(demo_clinic())
    with pytest.raises(Forbidden, match="no ReddyTalk admin role"):
        who.check_has_role()


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing header"),
        ("Basic dXNlcjpwdw==", "not bearer"),
        ("Bearer not-a-jwt", "malformed"),
        (f"Bearer {token(exp=int(time.time()) - 600)}", "expired"),
        (f"Bearer {token(aud='api://another-api')}", "wrong audience"),
        (f"Bearer {token(iss='https://sts.windows.net/' + TENANT + '/')}", "wrong issuer"),
        ("Bearer ", "malformed"),
        (f"Bearer {_unsigned()}", "algorithm not allowed"),
        (f"Bearer {_hs256_with_public_key()}", "algorithm not allowed"),
        (f"Bearer {token(kid='k9')}", "unknown key"),
        (f"Bearer {token(key=OTHER_KEY)}", "bad signature"),
        (f"Bearer {token(exp=None)}", "missing claim"),
    ],
    ids=[
        "none",
        "basic",
        "malformed",
        "expired",
        "audience",
        "issuer",
        "empty",
        "alg-none",
        "hs256",
        "kid",
        "signature",
        "no-exp",
    ],  # fmt: skip
)
def test_bad_credentials_are_unauthorized(
    entra: Entra, authorization: str | None, reason: str
) -> None:
    with pytest.raises(Unauthorized) as caught:
        _authenticator(entra, local=LOCAL).authenticate(authorization)
    assert str(caught.value) == reason


def test_a_token_without_oid_is_unauthorized(entra: Entra) -> None:
    raw = jwt.encode(
        {"iss": f"https://login.microsoftonline.com/{TENANT}/v2.0", "aud": AUDIENCE,
         "exp": int(time.time()) + 600, "roles": [OPERATOR_ROLE]},
        KEY, algorithm="RS256", headers={"kid": "k1"},
    )  # fmt: skip
    with pytest.raises(Unauthorized, match="missing claim"):
        _authenticator(entra).authenticate(f"Bearer {raw}")


def test_the_local_token_is_an_operator_only_when_configured(entra: Entra) -> None:
    who = _authenticator(entra, local=LOCAL).authenticate(f"Bearer {LOCAL}")
    assert (who.actor, who.is_operator) == (LOCAL_ADMIN, True)
    with pytest.raises(Unauthorized):
        _authenticator(entra).authenticate(f"Bearer {LOCAL}")
    local_only = build_admin_authenticator(Settings(admin_token=LOCAL))
    assert local_only.authenticate(f"bearer {LOCAL}").actor == LOCAL_ADMIN
    with pytest.raises(Unauthorized, match="not the local admin token"):
        local_only.authenticate(f"Bearer {LOCAL[:-1]}x")
    with pytest.raises(Unauthorized):  # an Entra token is no use without a tenant
        local_only.authenticate(f"Bearer {token(roles=(OPERATOR_ROLE,))}")


def test_with_nothing_configured_everything_is_refused_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    nothing = build_admin_authenticator(Settings())
    assert not nothing.is_configured
    with caplog.at_level(logging.WARNING, logger="reddytalk.admin.auth"):
        for authorization in (None, f"Bearer {LOCAL}", f"Bearer {token()}"):
            with pytest.raises(Unauthorized, match="not configured"):
                nothing.authenticate(authorization)
    assert len(caplog.records) == 1 and "not configured" in caplog.records[0].getMessage()


@pytest.mark.parametrize(
    "settings",
    [
        Settings(admin_tenant_id=TENANT),
        Settings(admin_audience=AUDIENCE),
        Settings(admin_tenant_id="evil.example/x?", admin_audience=AUDIENCE),
    ],
    ids=["no-audience", "no-tenant", "bad-tenant"],
)
def test_a_half_configuration_accepts_no_token(settings: Settings) -> None:
    assert not build_admin_authenticator(settings).is_configured


def test_the_tenant_names_entra_s_v2_configuration() -> None:
    assert ENTRA_OPENID_CONFIG_URL.format(tenant=TENANT) == (
        f"https://login.microsoftonline.com/{TENANT}/v2.0/.well-known/openid-configuration"
    )


def test_authenticate_async_runs_off_the_loop(entra: Entra) -> None:
    who = asyncio.run(
        _authenticator(entra).authenticate_async(f"Bearer {token(roles=(OPERATOR_ROLE,))}")
    )
    assert who.is_operator


def test_the_local_stack_keeps_one_admin_token_for_its_owner_only(tmp_path: Path) -> None:
    from local_stack import local_admin_token

    first = local_admin_token(tmp_path)
    assert len(first) >= 43
    assert (tmp_path / "admin-token").stat().st_mode & 0o777 == 0o600
    assert local_admin_token(tmp_path) == first  # reused across starts
    (tmp_path / "admin-token").chmod(0o644)
    assert local_admin_token(tmp_path) == first
    assert (tmp_path / "admin-token").stat().st_mode & 0o777 == 0o600
