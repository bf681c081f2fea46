"""ACS token verification through real PyJWT against a loopback OpenID configuration and JWKS."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import socket
import string
import threading
import time
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from reddytalk.errors import Unauthorized
from reddytalk.telephony.acs_auth import ACS_ISSUER, AcsClaims, AcsTokenVerifier

AUDIENCE = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"  # an immutableResourceId
REASONS = {
    "missing header",
    "not bearer",
    "malformed",
    "algorithm not allowed",
    "unknown key",
    "keys unavailable",
    "bad signature",
    "expired",
    "not yet valid",
    "wrong audience",
    "wrong issuer",
    "missing claim",
    "unusable key",
}


def _rsa_key() -> rsa.RSAPrivateKey:
    # 2048 bits: smaller keys make PyJWT warn, and warnings are errors here.
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY_1, KEY_2, ATTACKER_KEY = _rsa_key(), _rsa_key(), _rsa_key()


def _jwk(key: rsa.RSAPrivateKey, kid: str) -> dict[str, Any]:
    return {**RSAAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"}


@dataclass
class Acs:
    """What the loopback server serves, and how often each path was asked for."""

    port: int = 0
    jwks: list[dict[str, Any]] = field(default_factory=lambda: [_jwk(KEY_1, "k1")])
    status: dict[str, int] = field(default_factory=dict)
    counts: Counter[str] = field(default_factory=Counter)

    @property
    def config_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/calling/.well-known/acsopenidconfiguration"

    def body(self, path: str) -> dict[str, Any]:
        if path == "/calling/keys":
            return {"keys": self.jwks}
        return {"issuer": ACS_ISSUER, "jwks_uri": f"http://127.0.0.1:{self.port}/calling/keys"}


@pytest.fixture
def acs() -> Iterator[Acs]:
    state = Acs()
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            with lock:
                state.counts[self.path] += 1
            data = json.dumps(state.body(self.path)).encode()
            self.send_response(state.status.get(self.path, 200))
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = server.server_address[1]
    # A short poll interval: shutdown() waits for the loop's next poll (0.5 s by default).
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.01}, name="fake-acs", daemon=True
    )
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def verifier(acs: Acs) -> AcsTokenVerifier:
    return AcsTokenVerifier(audience=AUDIENCE, openid_config_url=acs.config_url)


def _claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ACS_ISSUER,
        "aud": AUDIENCE,
        "sub": "acs-callback",
        "iat": now,
        "nbf": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {name: value for name, value in claims.items() if value is not None}


def _token(key: rsa.RSAPrivateKey = KEY_1, kid: str = "k1", **overrides: Any) -> str:
    return jwt.encode(_claims(**overrides), key, algorithm="RS256", headers={"kid": kid})


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(value: dict[str, Any]) -> str:
    return _b64(json.dumps(value).encode())


def _refused(verifier: AcsTokenVerifier, authorization: str | None) -> str:
    """The reason given; the token appears nowhere in the error or its traceback."""
    with pytest.raises(Unauthorized) as caught:
        verifier.verify(authorization)
    shown = "".join(traceback.format_exception(caught.value))
    # Neither the token nor a recognisable piece of it (short strings match by chance).
    token = (authorization or "").removeprefix("Bearer ")
    pieces = [token, *token.split(".")]
    assert all(piece not in shown for piece in pieces if len(piece) >= 16)
    return str(caught.value)


def test_a_valid_token_passes_with_its_claims(verifier: AcsTokenVerifier) -> None:
    now = int(time.time())
    token = _token(iat=now, exp=now + 300, custom="visible-only-in-claims")
    claims = verifier.verify(f"Bearer {token}")
    assert isinstance(claims, AcsClaims)
    assert claims.subject == "acs-callback"
    assert claims.audience == AUDIENCE
    assert claims.issued_at == datetime.fromtimestamp(now, tz=UTC)
    assert claims.expires_at == datetime.fromtimestamp(now + 300, tz=UTC)
    assert claims.claims["custom"] == "visible-only-in-claims"
    assert "visible-only-in-claims" not in repr(claims)
    with pytest.raises(TypeError):
        claims.claims["custom"] = "changed"  # type: ignore[index]


def test_the_scheme_is_case_insensitive_and_sub_is_optional(verifier: AcsTokenVerifier) -> None:
    claims = verifier.verify(f"bearer {_token(sub=None, iat=None)}")
    assert claims.subject is None and claims.issued_at is None


def test_expired_beyond_the_leeway_is_refused(verifier: AcsTokenVerifier) -> None:
    now = int(time.time())
    assert _refused(verifier, f"Bearer {_token(iat=now - 600, exp=now - 120)}") == "expired"


def test_expired_within_the_leeway_passes(verifier: AcsTokenVerifier) -> None:
    now = int(time.time())
    assert verifier.verify(f"Bearer {_token(iat=now - 330, exp=now - 30)}").subject


def test_issued_in_the_future_beyond_the_leeway_is_refused(verifier: AcsTokenVerifier) -> None:
    now = int(time.time())
    future = _token(iat=now + 600, nbf=None, exp=now + 900)
    assert _refused(verifier, f"Bearer {future}") == "not yet valid"


def test_wrong_audience(verifier: AcsTokenVerifier) -> None:
    assert _refused(verifier, f"Bearer {_token(aud='another-resource')}") == "wrong audience"
    assert _refused(verifier, f"Bearer {_token(aud=None)}") == "missing claim"


def test_wrong_issuer(verifier: AcsTokenVerifier) -> None:
    assert _refused(verifier, f"Bearer {_token(iss='https://evil.example')}") == "wrong issuer"


def test_an_unsigned_alg_none_token_is_refused(verifier: AcsTokenVerifier, acs: Acs) -> None:
    token = f"{_segment({'alg': 'none', 'kid': 'k1', 'typ': 'JWT'})}.{_segment(_claims())}."
    assert _refused(verifier, f"Bearer {token}") == "algorithm not allowed"
    assert not acs.counts  # refused before any key is looked up


def test_hs256_signed_with_the_public_key_is_refused(verifier: AcsTokenVerifier) -> None:
    public_pem = KEY_1.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_segment({'alg': 'HS256', 'kid': 'k1'})}.{_segment(_claims())}"
    mac = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{_b64(mac)}"
    assert _refused(verifier, f"Bearer {token}") == "algorithm not allowed"


def test_a_tampered_payload_breaks_the_signature(verifier: AcsTokenVerifier) -> None:
    header, _, signature = _token().split(".")
    forged = _segment(_claims(sub="someone-else"))
    assert _refused(verifier, f"Bearer {header}.{forged}.{signature}") == "bad signature"


def test_another_key_under_the_same_kid_is_refused(verifier: AcsTokenVerifier) -> None:
    token = _token(key=ATTACKER_KEY, kid="k1")
    assert _refused(verifier, f"Bearer {token}") == "bad signature"


def test_an_unknown_kid_is_refused_without_refetching_in_the_cooldown(
    verifier: AcsTokenVerifier, acs: Acs
) -> None:
    assert _refused(verifier, f"Bearer {_token(key=ATTACKER_KEY, kid='k9')}") == "unknown key"
    assert _refused(verifier, f"Bearer {_token(key=ATTACKER_KEY, kid='k8')}") == "unknown key"
    assert acs.counts["/calling/keys"] == 1


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        (None, "missing header"),
        ("", "missing header"),
        ("   ", "missing header"),
        ("Basic dXNlcjpwYXNzd29yZA==", "not bearer"),
        ("Bearer", "malformed"),
        ("Bearer a b", "malformed"),
        ("Bearer garbage", "malformed"),
        ("Bearer a.b.c", "malformed"),
        ("Bearer !!.??.**", "malformed"),
        (f"Bearer {'x' * 20_000}.e30.", "malformed"),
        (f"Bearer {_segment({'alg': 'RS256'})}.{_segment(_claims())}.c2ln", "unknown key"),
    ],
)
def test_headers_that_are_not_an_acs_bearer_token(
    verifier: AcsTokenVerifier, authorization: str | None, reason: str
) -> None:
    assert _refused(verifier, authorization) == reason


def test_config_server_down_is_keys_unavailable() -> None:
    with socket.socket() as probe:  # a port nothing listens on any more
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = AcsTokenVerifier(audience=AUDIENCE, openid_config_url=f"http://127.0.0.1:{port}/")
    assert _refused(down, f"Bearer {_token()}") == "keys unavailable"


@pytest.mark.parametrize("path", ["/calling/.well-known/acsopenidconfiguration", "/calling/keys"])
def test_an_http_error_from_config_or_keys_is_keys_unavailable(
    verifier: AcsTokenVerifier, acs: Acs, path: str
) -> None:
    acs.status[path] = 503
    assert _refused(verifier, f"Bearer {_token()}") == "keys unavailable"
    acs.status.clear()  # fails closed, but is not stuck: the next request fetches again
    assert verifier.verify(f"Bearer {_token()}").audience == AUDIENCE


def test_keys_without_a_usable_rsa_key_are_keys_unavailable(
    verifier: AcsTokenVerifier, acs: Acs
) -> None:
    acs.jwks = [{"kty": "RSA", "kid": "k1", "n": "AQAB"}]  # no "e": unusable, skipped
    assert _refused(verifier, f"Bearer {_token()}") == "keys unavailable"


def test_config_and_keys_are_fetched_once_and_cached(verifier: AcsTokenVerifier, acs: Acs) -> None:
    for _ in range(3):
        verifier.verify(f"Bearer {_token()}")
    assert acs.counts == {"/calling/.well-known/acsopenidconfiguration": 1, "/calling/keys": 1}


def test_concurrent_cold_verifications_fetch_once(verifier: AcsTokenVerifier, acs: Acs) -> None:
    header = f"Bearer {_token()}"
    results: list[AcsClaims] = []
    threads = [
        threading.Thread(target=lambda: results.append(verifier.verify(header))) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 8
    assert acs.counts == {"/calling/.well-known/acsopenidconfiguration": 1, "/calling/keys": 1}


def test_key_rotation_is_picked_up_after_one_refetch(acs: Acs) -> None:
    verifier = AcsTokenVerifier(
        audience=AUDIENCE, openid_config_url=acs.config_url, min_refetch_interval_s=0.2
    )
    verifier.verify(f"Bearer {_token()}")
    acs.jwks = [_jwk(KEY_2, "k2")]  # ACS rotates: k1 withdrawn, k2 published
    rotated = f"Bearer {_token(key=KEY_2, kid='k2')}"
    assert _refused(verifier, rotated) == "unknown key"  # within the cooldown: no refetch
    assert acs.counts["/calling/keys"] == 1
    time.sleep(0.25)
    assert verifier.verify(rotated).audience == AUDIENCE
    assert acs.counts["/calling/keys"] == 2
    verifier.verify(rotated)
    assert acs.counts["/calling/keys"] == 2
    assert _refused(verifier, f"Bearer {_token()}") == "unknown key"  # k1 is not kept
    assert acs.counts["/calling/.well-known/acsopenidconfiguration"] == 1


def test_verify_async_runs_off_the_loop(verifier: AcsTokenVerifier) -> None:
    async def both() -> tuple[AcsClaims, str]:
        claims = await verifier.verify_async(f"Bearer {_token()}")
        try:
            await verifier.verify_async("Basic abc")
        except Unauthorized as error:
            return claims, str(error)
        raise AssertionError("not refused")

    claims, reason = asyncio.run(both())
    assert claims.audience == AUDIENCE and reason == "not bearer"


def test_constructor_refuses_an_empty_audience() -> None:
    with pytest.raises(ValueError):
        AcsTokenVerifier(audience="")


_SEGMENT = st.text(alphabet=string.ascii_letters + string.digits + "-_", max_size=30)
_JOSE = st.fixed_dictionaries(
    {
        "alg": st.sampled_from(["RS256", "none", "HS256", "", "ES256"]),
        "kid": st.one_of(st.sampled_from(["k1", "k9"]), st.integers(), st.none(), st.text()),
    }
)
_HEADERS = st.one_of(
    st.none(),
    st.text(max_size=80),
    st.text(max_size=80).map(lambda text: f"Bearer {text}"),
    st.tuples(_SEGMENT, _SEGMENT, _SEGMENT).map(lambda parts: "Bearer " + ".".join(parts)),
    st.tuples(_JOSE, st.dictionaries(st.text(max_size=5), st.integers()), _SEGMENT).map(
        lambda jws: f"Bearer {_segment(jws[0])}.{_segment(jws[1] or {'x': 1})}.{jws[2]}"
    ),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(authorization=_HEADERS)
def test_arbitrary_headers_only_ever_raise_unauthorized(
    verifier: AcsTokenVerifier, authorization: str | None
) -> None:
    assert _refused(verifier, authorization) in REASONS
