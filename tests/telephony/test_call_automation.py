"""AcsCallControl through the real azure-communication-callautomation SDK.

The SDK talks to a loopback HTTPS server standing in for the ACS Call Automation REST API: it
records every request (method, path, query, headers, JSON body), checks the HMAC signature the
way ACS does, and answers with the documented status codes and bodies. HTTPS, not HTTP: the SDK
drops the scheme of a connection string's endpoint and always prefixes ``https://``, so the
server uses a self-signed certificate made here, trusted through ``connection_verify``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import socket
import ssl
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from azure.core.credentials import AccessToken
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from reddytalk.errors import ProviderError
from reddytalk.telephony.call_automation import AcsCallControl

API_VERSION = "2026-03-12"
CALLER = "+15551234567"
STAFF_LINE = "+15557654321"
CLINIC_NUMBER = "+18005550100"
CONTEXT = "eyJhbGciOiJub25lIn0.incoming-call-context-of-the-caller"
CONNECTION_ID = "421f0b00-7e9a-4c3e-8c58-9d1e2f3a4b5c"
COGNITIVE = "https://clinic-ai.cognitiveservices.azure.com/"
CALLBACK = "https://reddytalk.example/api/calls/events?clinic=c1"
MEDIA = "wss://media.reddytalk.example/ws/c1"
PHI = (CALLER, STAFF_LINE, CONTEXT)


@dataclass(frozen=True, slots=True)
class Tls:
    cert_file: Path
    key_file: Path


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Tls:
    """A self-signed certificate for 127.0.0.1, its own trust anchor."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Tls(cert_file=cert_file, key_file=key_file)


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    headers: Mapping[str, str]
    body: Any
    is_signed: bool


def _hmac_authorization(key: bytes, method: str, path_qs: str, date: str, host: str, body: bytes):
    """The Authorization header ACS expects (HMAC-SHA256 over verb, path, date, host, hash)."""
    content_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
    to_sign = f"{method}\n{path_qs}\n{date};{host};{content_hash}"
    signature = base64.b64encode(hmac.new(key, to_sign.encode(), hashlib.sha256).digest())
    return (
        "HMAC-SHA256 SignedHeaders=x-ms-date;host;x-ms-content-sha256"
        f"&Signature={signature.decode()}"
    ), content_hash


class FakeAcs:
    """Loopback HTTPS stand-in for ACS Call Automation that records every request.

    Answers as the REST API documents (answer 200 + CallConnectionProperties, reject and
    terminate 204, play 202, transfer 202 + TransferCallResponse) unless ``script`` holds
    ``(status, json_body)`` answers, which are used first, in order.
    """

    def __init__(self, tls: Tls) -> None:
        self.access_key = secrets.token_bytes(32)
        self.requests: list[Recorded] = []
        self.script: list[tuple[int, Any]] = []
        self._tls = tls
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def connection_string(self) -> str:
        key = base64.b64encode(self.access_key).decode()
        return f"endpoint=https://127.0.0.1:{self.port}/;accesskey={key}"

    async def __aenter__(self) -> FakeAcs:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        await web.SockSite(self._runner, sock, ssl_context=context).start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        expected, content_hash = _hmac_authorization(
            self.access_key,
            request.method,
            request.raw_path,
            request.headers.get("x-ms-date", ""),
            f"127.0.0.1:{self.port}",
            raw,
        )
        self.requests.append(
            Recorded(
                method=request.method,
                path=request.path,
                query=dict(request.query),
                headers=request.headers.copy(),
                body=json.loads(raw) if raw else None,
                is_signed=request.headers.get("Authorization") == expected
                and request.headers.get("x-ms-content-sha256") == content_hash,
            )
        )
        status, body = self.script.pop(0) if self.script else self._documented(request.path)
        if body is None:
            return web.Response(status=status)
        return web.json_response(body, status=status)

    def _documented(self, path: str) -> tuple[int, Any]:
        if path == "/calling/callConnections:answer":
            return 200, {
                "callConnectionId": CONNECTION_ID,
                "serverCallId": "aHR0cHM6Ly9zZXJ2ZXItY2FsbC1pZA",
                "callConnectionState": "connecting",
                "callbackUri": CALLBACK,
                "correlationId": "7d3c1e5a-0f4b-4a8e-9c2d-1b6e8f0a2c4d",
                "mediaStreamingSubscription": {
                    "id": "89e8cb59-b991-48b0-b154-1db84f16a077",
                    "state": "inactive",
                    "subscribedContentTypes": ["audio"],
                },
            }
        if path.endswith(":transferToParticipant"):
            return 202, {"operationContext": "transfer-1"}
        if path.endswith(":play"):
            return 202, None
        return 204, None  # :reject, :terminate


Scenario = Callable[[FakeAcs, AcsCallControl], Awaitable[None]]


def _run(tls: Tls, scenario: Scenario, **options: Any) -> FakeAcs:
    """Serve, build the adapter from the fake's connection string, run ``scenario``, close."""

    async def main() -> FakeAcs:
        async with FakeAcs(tls) as fake:
            async with AcsCallControl(
                connection_string=fake.connection_string,
                cognitive_services_endpoint=options.pop("cognitive_services_endpoint", COGNITIVE),
                source_caller_id=options.pop("source_caller_id", None),
                client_options={"connection_verify": str(tls.cert_file), **options},
            ) as control:
                await scenario(fake, control)
        return fake

    return asyncio.run(main())


async def _answer(control: AcsCallControl, sample_rate_hz: int = 16_000) -> str:
    return await control.answer(
        incoming_call_context=CONTEXT,
        callback_url=CALLBACK,
        media_url=MEDIA,
        sample_rate_hz=sample_rate_hz,
        operation_context="answer-1",
    )


async def _reject(control: AcsCallControl) -> None:
    await control.reject(incoming_call_context=CONTEXT)


async def _play(control: AcsCallControl) -> None:
    await control.play_text(
        call_connection_id=CONNECTION_ID,
        text="Sorry, I am having trouble. Please call back in a few minutes.",
        voice_name="en-US-AvaMultilingualNeural",
        operation_context="apology-1",
    )


async def _transfer(control: AcsCallControl) -> None:
    await control.transfer(
        call_connection_id=CONNECTION_ID, to_phone_number=STAFF_LINE, operation_context="xfer-1"
    )


async def _hang_up(control: AcsCallControl) -> None:
    await control.hang_up(call_connection_id=CONNECTION_ID)


ACTIONS: dict[str, Callable[[AcsCallControl], Awaitable[object]]] = {
    "answer": _answer,
    "reject": _reject,
    "play": _play,
    "transfer": _transfer,
    "hang up": _hang_up,
}


def _only_request(fake: FakeAcs, method: str, path: str) -> Recorded:
    assert len(fake.requests) == 1
    request = fake.requests[0]
    assert (request.method, request.path, request.query) == (
        method,
        path,
        {"api-version": API_VERSION},
    )
    assert request.is_signed
    return request


@pytest.mark.parametrize(
    ("sample_rate_hz", "audio_format"), [(16_000, "pcm16KMono"), (24_000, "pcm24KMono")]
)
def test_answer_posts_bidirectional_media_streaming(
    tls: Tls, sample_rate_hz: int, audio_format: str
) -> None:
    connection_ids: list[str] = []

    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        connection_ids.append(await _answer(control, sample_rate_hz))

    fake = _run(tls, scenario)
    request = _only_request(fake, "POST", "/calling/callConnections:answer")
    assert connection_ids == [CONNECTION_ID]
    assert request.body == {
        "incomingCallContext": CONTEXT,
        "callbackUri": CALLBACK,
        "operationContext": "answer-1",
        "callIntelligenceOptions": {"cognitiveServicesEndpoint": COGNITIVE},
        "mediaStreamingOptions": {
            "transportType": "websocket",
            "audioChannelType": "mixed",
            "transportUrl": MEDIA,
            "contentType": "audio",
            "startMediaStreaming": True,
            "enableBidirectional": True,
            "audioFormat": audio_format,
            "enableDtmfTones": True,
        },
    }
    assert request.headers["Content-Type"] == "application/json"
    assert uuid.UUID(request.headers["Repeatability-Request-ID"])
    assert request.headers["Repeatability-First-Sent"].endswith(" GMT")


def test_answer_without_cognitive_services_sends_no_call_intelligence(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        await _answer(control)

    fake = _run(tls, scenario, cognitive_services_endpoint=None)
    assert "callIntelligenceOptions" not in fake.requests[0].body


def test_answer_refuses_other_sample_rates_before_any_request(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        with pytest.raises(ValueError, match="8000"):
            await _answer(control, 8_000)

    assert _run(tls, scenario).requests == []


def test_answer_without_a_connection_id_is_a_provider_error(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        fake.script.append((200, {"callConnectionState": "connecting"}))
        with pytest.raises(ProviderError) as caught:
            await _answer(control)
        assert caught.value.retryable is False

    _run(tls, scenario)


def test_reject_posts_the_context_and_reason_none(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        await _reject(control)

    request = _only_request(_run(tls, scenario), "POST", "/calling/callConnections:reject")
    assert request.body == {"incomingCallContext": CONTEXT, "callRejectReason": "none"}


def test_play_text_posts_a_text_source_to_everyone(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        await _play(control)

    fake = _run(tls, scenario)
    request = _only_request(fake, "POST", f"/calling/callConnections/{CONNECTION_ID}:play")
    assert request.body == {
        "playSources": [
            {
                "kind": "text",
                "text": {
                    "text": "Sorry, I am having trouble. Please call back in a few minutes.",
                    "voiceName": "en-US-AvaMultilingualNeural",
                },
            }
        ],
        "playTo": [],
        "playOptions": {"loop": False},
        "operationContext": "apology-1",
    }
    # Unlike the other actions, the SDK sends play without repeatability headers.
    assert "Repeatability-Request-ID" not in request.headers


@pytest.mark.parametrize("source_caller_id", [None, CLINIC_NUMBER])
def test_transfer_posts_the_phone_number_target(tls: Tls, source_caller_id: str | None) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        await _transfer(control)

    fake = _run(tls, scenario, source_caller_id=source_caller_id)
    path = f"/calling/callConnections/{CONNECTION_ID}:transferToParticipant"
    request = _only_request(fake, "POST", path)
    expected: dict[str, Any] = {
        "targetParticipant": {"rawId": f"4:{STAFF_LINE}", "phoneNumber": {"value": STAFF_LINE}},
        "operationContext": "xfer-1",
    }
    if source_caller_id:
        expected["sourceCallerIdNumber"] = {"value": source_caller_id}
    assert request.body == expected
    assert uuid.UUID(request.headers["Repeatability-Request-ID"])


def test_hang_up_posts_terminate_for_everyone(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        await _hang_up(control)

    fake = _run(tls, scenario)
    request = _only_request(fake, "POST", f"/calling/callConnections/{CONNECTION_ID}:terminate")
    assert request.body is None
    assert uuid.UUID(request.headers["Repeatability-Request-ID"])


def test_every_request_is_hmac_signed_and_carries_no_secret(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        for action in ACTIONS.values():
            await action(control)

    fake = _run(tls, scenario)
    secret = base64.b64encode(fake.access_key).decode()
    assert len(fake.requests) == len(ACTIONS)
    for request in fake.requests:
        assert request.is_signed
        assert request.headers["Authorization"].startswith("HMAC-SHA256 SignedHeaders=")
        assert not any(secret in value for value in request.headers.values())


@pytest.mark.parametrize("action", ACTIONS)
@pytest.mark.parametrize(
    ("status", "retryable"),
    [(400, False), (401, False), (404, False), (408, True), (429, True), (500, True), (503, True)],
)
def test_service_errors_map_to_provider_errors_without_phi(
    tls: Tls, action: str, status: int, retryable: bool
) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        # ACS error texts can quote the request; they must not reach our message.
        echo = f"Request for {CALLER} to {STAFF_LINE} with {CONTEXT} failed"
        fake.script.append((status, {"error": {"code": "8523", "message": echo}}))
        with pytest.raises(ProviderError) as caught:
            await ACTIONS[action](control)
        error = caught.value
        assert error.retryable is retryable
        assert str(error) == f"ACS {action} failed: HTTP {status} (8523)"
        shown = "".join(traceback.format_exception(error))
        assert not any(value in shown for value in PHI)

    # One request: the adapter turns the SDK's retries off; the retry wrapper owns them.
    assert len(_run(tls, scenario).requests) == 1


@pytest.mark.parametrize("action", ACTIONS)
def test_connection_refused_is_retryable(tls: Tls, action: str) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    key = base64.b64encode(secrets.token_bytes(32)).decode()

    async def main() -> None:
        async with AcsCallControl(
            connection_string=f"endpoint=https://127.0.0.1:{port}/;accesskey={key}",
            client_options={"connection_verify": str(tls.cert_file)},
        ) as control:
            with pytest.raises(ProviderError) as caught:
                await ACTIONS[action](control)
        assert caught.value.retryable is True
        assert str(caught.value) == f"ACS {action} failed: ServiceRequestError"
        assert not any(value in str(caught.value) for value in PHI)

    asyncio.run(main())


def test_sdk_retries_when_enabled_reuse_the_repeatability_id(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        fake.script += [(503, None), (500, None)]
        assert await _answer(control) == CONNECTION_ID
        # azure-core retries a POST only on 500/503/504 or with Retry-After: not this 429.
        fake.script.append((429, None))
        with pytest.raises(ProviderError) as caught:
            await _answer(control)
        assert caught.value.retryable is True

    fake = _run(tls, scenario, retry_total=3, retry_backoff_factor=0)
    assert len(fake.requests) == 4
    assert len({r.headers["Repeatability-Request-ID"] for r in fake.requests[:3]}) == 1
    assert all(r.is_signed for r in fake.requests)


def test_http_scheme_in_a_connection_string_still_uses_https(tls: Tls) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        key = base64.b64encode(fake.access_key).decode()
        plain = f"endpoint=http://127.0.0.1:{fake.port}/;accesskey={key}"
        options = {"connection_verify": str(tls.cert_file)}
        async with AcsCallControl(connection_string=plain, client_options=options) as other:
            await _hang_up(other)

    assert [r.path for r in _run(tls, scenario).requests] == [
        f"/calling/callConnections/{CONNECTION_ID}:terminate"
    ]


class _StaticTokenCredential:
    """An azure-core AsyncTokenCredential double: one fixed token, requested scopes kept."""

    def __init__(self) -> None:
        self.scopes: list[str] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes += scopes
        return AccessToken("managed-identity-token", int(time.time()) + 3600)

    async def close(self) -> None:
        pass

    async def __aenter__(self) -> _StaticTokenCredential:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        pass


def test_endpoint_and_token_credential_send_a_bearer_token(tls: Tls) -> None:
    credential = _StaticTokenCredential()

    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        async with AcsCallControl(
            endpoint=f"https://127.0.0.1:{fake.port}",
            credential=credential,
            client_options={"connection_verify": str(tls.cert_file)},
        ) as other:
            await _hang_up(other)

    fake = _run(tls, scenario)
    request = fake.requests[0]
    assert request.path == f"/calling/callConnections/{CONNECTION_ID}:terminate"
    assert request.headers["Authorization"] == "Bearer managed-identity-token"
    assert credential.scopes == ["https://communication.azure.com//.default"]


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"endpoint": "https://acs.example"},
        {"connection_string": "endpoint=https://acs.example/;accesskey=a2V5", "endpoint": "x"},
    ],
)
def test_construction_needs_exactly_one_way_to_authenticate(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="connection_string"):
        AcsCallControl(**arguments)


def test_nothing_logged_carries_phone_numbers_or_the_call_context(
    tls: Tls, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(fake: FakeAcs, control: AcsCallControl) -> None:
        for action in ACTIONS.values():
            await action(control)
        fake.script.append((400, {"error": {"code": "8523", "message": f"bad {CALLER}"}}))
        with pytest.raises(ProviderError):
            await _transfer(control)

    with caplog.at_level(logging.DEBUG):
        _run(tls, scenario)
    assert caplog.records
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert not any(value in logged for value in PHI)
