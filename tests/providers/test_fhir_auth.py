"""OAuth client credentials for the FHIR EHR, against a loopback token endpoint (aiohttp)
that records what it is sent, and, end to end, against the Medplum FHIR test server."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote_plus

import jwt
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from reddytalk.errors import ProviderError
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_auth import JWT_BEARER_ASSERTION, ClientCredentialsToken
from tests.servers.fhir.launch import FhirServer, running_fhir_server

SECRET = "s3cr3t:/+& ü"  # characters Basic auth must form-urlencode first (RFC 6749 §2.3.1)
CLIENT_ID = "reddytalk-client"


@dataclass
class Reply:
    status: int = 200
    body: Any = field(
        default_factory=lambda: {
            "access_token": "tok-1",
            "token_type": "Bearer",
            "expires_in": 3600,
        }
    )
    raw: str | None = None  # sent instead of ``body`` (not JSON)
    delay_s: float = 0.0


@dataclass
class TokenEndpoint:
    """A loopback token endpoint: answers with ``replies`` in turn (the last one repeats)
    and records each request's form and headers."""

    replies: list[Reply]
    url: str = ""
    requests: list[tuple[dict[str, str], dict[str, str]]] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        form = {k: str(v) for k, v in (await request.post()).items()}
        self.requests.append((form, dict(request.headers)))
        reply = self.replies[min(len(self.requests), len(self.replies)) - 1]
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.raw is not None:
            return web.Response(status=reply.status, text=reply.raw)
        return web.json_response(reply.body, status=reply.status)


@asynccontextmanager
async def token_endpoint(*replies: Reply) -> AsyncIterator[TokenEndpoint]:
    endpoint = TokenEndpoint(list(replies) or [Reply()])
    app = web.Application()
    app.router.add_post("/oauth2/token", endpoint.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    endpoint.url = f"http://{host}:{port}/oauth2/token"
    try:
        yield endpoint
    finally:
        await runner.cleanup()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _token(endpoint: TokenEndpoint, **kwargs: Any) -> ClientCredentialsToken:
    options: dict[str, Any] = {"client_secret": SECRET, **kwargs}
    return ClientCredentialsToken(token_url=endpoint.url, client_id=CLIENT_ID, **options)


# -- the grant ---------------------------------------------------------------------------------


def test_client_secret_basic_sends_the_grant_with_form_urlencoded_basic_auth() -> None:
    async def scenario() -> None:
        async with token_endpoint() as endpoint:
            token = _token(endpoint, scope="system/Slot.rs system/Appointment.cruds")
            assert await token.access_token() == "tok-1"
        ((form, headers),) = endpoint.requests
        assert form == {
            "grant_type": "client_credentials",
            "scope": "system/Slot.rs system/Appointment.cruds",
        }
        expected = base64.b64encode(f"{CLIENT_ID}:{quote_plus(SECRET)}".encode()).decode()
        assert headers["Authorization"] == f"Basic {expected}"
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"

    asyncio.run(scenario())


def test_client_secret_post_sends_id_and_secret_in_the_form() -> None:
    async def scenario() -> None:
        async with token_endpoint() as endpoint:
            await _token(endpoint, secret_in_body=True).access_token()
        ((form, headers),) = endpoint.requests
        assert form == {
            "grant_type": "client_credentials",
            "client_id": CLIENT_ID,
            "client_secret": SECRET,
        }
        assert "Authorization" not in headers

    asyncio.run(scenario())


@pytest.mark.parametrize("algorithm", ["RS384", "ES384"])
def test_private_key_jwt_sends_a_smart_backend_services_assertion(algorithm: str) -> None:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS384"
        else ec.generate_private_key(ec.SECP384R1())
    )
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()

    async def scenario() -> None:
        async with token_endpoint(
            Reply(body={"access_token": "a", "expires_in": 1}), Reply()
        ) as ep:
            token = ClientCredentialsToken(
                token_url=ep.url, client_id=CLIENT_ID, private_key=pem, key_id="key-2026",
                algorithm=algorithm, clock=Clock(),
            )  # fmt: skip
            await token.access_token()
            token.expire("a")
            await token.access_token()
        (first, _), (second, _) = ep.requests
        assert first["grant_type"] == "client_credentials"
        assert first["client_assertion_type"] == JWT_BEARER_ASSERTION
        header = jwt.get_unverified_header(first["client_assertion"])
        assert (header["alg"], header["kid"], header["typ"]) == (algorithm, "key-2026", "JWT")
        claims = jwt.decode(
            first["client_assertion"], key.public_key(), algorithms=[algorithm], audience=ep.url
        )
        assert claims["iss"] == claims["sub"] == CLIENT_ID
        assert 0 < claims["exp"] - time.time() <= 300
        assert claims["jti"] != jwt.decode(second["client_assertion"], options={
            "verify_signature": False})["jti"]  # fmt: skip
        assert "client_secret" not in first

    asyncio.run(scenario())


def test_exactly_one_way_to_authenticate_is_given() -> None:
    with pytest.raises(ValueError):
        ClientCredentialsToken(token_url="http://x", client_id="c")
    with pytest.raises(ValueError):
        ClientCredentialsToken(
            token_url="http://x", client_id="c", client_secret="s", private_key="k"
        )


# -- the cache ---------------------------------------------------------------------------------


def test_the_token_is_cached_until_shortly_before_it_expires() -> None:
    clock = Clock()

    async def scenario() -> None:
        replies = (
            Reply(body={"access_token": "tok-1", "token_type": "bearer", "expires_in": 600}),
            Reply(body={"access_token": "tok-2", "token_type": "bearer", "expires_in": "40"}),
        )
        async with token_endpoint(*replies) as endpoint:
            token = _token(endpoint, clock=clock, refresh_margin_s=60)
            assert await token.access_token() == "tok-1"
            clock.now += 539  # 600 s less the 60 s margin, less one
            assert await token.access_token() == "tok-1"
            assert len(endpoint.requests) == 1
            clock.now += 1
            assert await token.access_token() == "tok-2"
            clock.now += 19  # a 40 s token: the margin is at most half its life
            assert await token.access_token() == "tok-2"
            assert len(endpoint.requests) == 2
            clock.now += 1
            await token.access_token()
            assert len(endpoint.requests) == 3

    asyncio.run(scenario())


def test_concurrent_callers_share_one_token_request() -> None:
    async def scenario() -> None:
        async with token_endpoint(Reply(delay_s=0.05)) as endpoint:
            token = _token(endpoint)
            tokens = await asyncio.gather(*(token.access_token() for _ in range(8)))
        assert tokens == ["tok-1"] * 8
        assert len(endpoint.requests) == 1

    asyncio.run(scenario())


def test_expire_drops_only_the_token_it_names() -> None:
    async def scenario() -> None:
        replies = (Reply(body={"access_token": "tok-1"}), Reply(body={"access_token": "tok-2"}))
        async with token_endpoint(*replies) as endpoint:
            token = _token(endpoint)
            assert await token.access_token() == "tok-1"
            token.expire("tok-1")
            assert await token.access_token() == "tok-2"
            token.expire("tok-1")  # a late report of the old token changes nothing
            assert await token.access_token() == "tok-2"
        assert len(endpoint.requests) == 2

    asyncio.run(scenario())


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "retryable", "named"),
    [
        (
            Reply(400, {"error": "invalid_client", "error_description": SECRET}),
            False,
            "invalid_client",
        ),
        (Reply(401, {"error": "<b>html</b>"}), False, "HTTP 401"),
        (Reply(429, {"error": "slow_down"}), True, "HTTP 429"),
        (Reply(503, raw="Service Unavailable"), True, "not JSON"),
        (Reply(200, {"token_type": "bearer"}), False, "no access_token"),
        (Reply(200, {"access_token": "t", "token_type": "mac"}), False, "not a bearer"),
    ],
)
def test_token_endpoint_failures_are_provider_errors_without_secrets(
    reply: Reply, retryable: bool, named: str
) -> None:
    async def scenario() -> None:
        async with token_endpoint(reply) as endpoint:
            token = _token(endpoint)
            with pytest.raises(ProviderError) as failed:
                await token.access_token()
        assert failed.value.retryable is retryable
        assert named in str(failed.value)
        assert SECRET not in str(failed.value) and SECRET not in repr(token)
        assert "<b>" not in str(failed.value)

    asyncio.run(scenario())


def test_an_unreachable_token_endpoint_is_retryable() -> None:
    async def scenario() -> None:
        token = ClientCredentialsToken(
            token_url="http://127.0.0.1:9/token", client_id=CLIENT_ID, client_secret=SECRET
        )
        with pytest.raises(ProviderError) as failed:
            await token.access_token()
        assert failed.value.retryable is True

    asyncio.run(scenario())


# -- with the FHIR server ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def fhir_server() -> Iterator[FhirServer]:
    with running_fhir_server(token="fresh") as server:
        yield server


def test_fhir_ehr_sends_the_token_and_refreshes_it_once_on_401(fhir_server: FhirServer) -> None:
    async def scenario() -> None:
        replies = (Reply(body={"access_token": "stale", "expires_in": 3600}),
                   Reply(body={"access_token": "fresh", "expires_in": 3600}))  # fmt: skip
        async with token_endpoint(*replies) as endpoint:
            token = _token(endpoint)
            async with FhirEhr(base_url=fhir_server.base_url, token_provider=token) as ehr:
                for _ in range(3):
                    assert await ehr.client.search("Slot", {}) is not None
            assert [form["grant_type"] for form, _ in endpoint.requests] == [
                "client_credentials"
            ] * 2  # "stale" was refused once, "fresh" then served every request

    asyncio.run(scenario())


def test_fhir_ehr_gives_up_after_one_refresh(fhir_server: FhirServer) -> None:
    async def scenario() -> None:
        async with token_endpoint(Reply(body={"access_token": "wrong"})) as endpoint:
            token = _token(endpoint)
            async with FhirEhr(base_url=fhir_server.base_url, token_provider=token) as ehr:
                with pytest.raises(ProviderError, match="401") as refused:
                    await ehr.client.search("Slot", {})
            assert refused.value.retryable is False
            assert len(endpoint.requests) == 2

    asyncio.run(scenario())
