"""AcsCallControl through the real azure-communication-callautomation SDK.

The SDK talks to the local ACS (``scripts/local_acs.py``), a loopback HTTPS stand-in for the ACS
Call Automation REST API: it records every request (method, path, query, headers, JSON body),
checks the HMAC signature the way ACS does, and answers with the documented status codes and
bodies. HTTPS, not HTTP: the SDK drops the scheme of a connection string's endpoint and always
prefixes ``https://``, so it serves a self-signed certificate, trusted through
``connection_verify``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import secrets
import socket
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from local_acs import LocalAcs, Recorded, TlsFiles, make_tls

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


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, its own trust anchor."""
    return make_tls(tmp_path_factory.mktemp("tls"))


Scenario = Callable[[LocalAcs, AcsCallControl], Awaitable[None]]


def _run(tls: TlsFiles, scenario: Scenario, **options: Any) -> LocalAcs:
    """Serve, build the adapter from the local ACS's connection string, run ``scenario``, close."""

    async def main() -> LocalAcs:
        async with LocalAcs(tls) as fake:
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


def _only_request(fake: LocalAcs, method: str, path: str) -> Recorded:
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
    tls: TlsFiles, sample_rate_hz: int, audio_format: str
) -> None:
    connection_ids: list[str] = []

    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        connection_ids.append(await _answer(control, sample_rate_hz))

    fake = _run(tls, scenario)
    request = _only_request(fake, "POST", "/calling/callConnections:answer")
    assert connection_ids == [fake.answered[0].call_connection_id]
    assert uuid.UUID(connection_ids[0])
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


def test_answer_without_cognitive_services_sends_no_call_intelligence(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        await _answer(control)

    fake = _run(tls, scenario, cognitive_services_endpoint=None)
    assert "callIntelligenceOptions" not in fake.requests[0].body


def test_answer_refuses_other_sample_rates_before_any_request(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        with pytest.raises(ValueError, match="8000"):
            await _answer(control, 8_000)

    assert _run(tls, scenario).requests == []


def test_answer_without_a_connection_id_is_a_provider_error(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        fake.script.append((200, {"callConnectionState": "connecting"}))
        with pytest.raises(ProviderError) as caught:
            await _answer(control)
        assert caught.value.retryable is False

    _run(tls, scenario)


def test_reject_posts_the_context_and_reason_none(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        await _reject(control)

    request = _only_request(_run(tls, scenario), "POST", "/calling/callConnections:reject")
    assert request.body == {"incomingCallContext": CONTEXT, "callRejectReason": "none"}


def test_play_text_posts_a_text_source_to_everyone(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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
def test_transfer_posts_the_phone_number_target(
    tls: TlsFiles, source_caller_id: str | None
) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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


def test_hang_up_posts_terminate_for_everyone(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        await _hang_up(control)

    fake = _run(tls, scenario)
    request = _only_request(fake, "POST", f"/calling/callConnections/{CONNECTION_ID}:terminate")
    assert request.body is None
    assert uuid.UUID(request.headers["Repeatability-Request-ID"])


def test_every_request_is_hmac_signed_and_carries_no_secret(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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
    tls: TlsFiles, action: str, status: int, retryable: bool
) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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
def test_connection_refused_is_retryable(tls: TlsFiles, action: str) -> None:
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


def test_sdk_retries_when_enabled_reuse_the_repeatability_id(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
        fake.script += [(503, None), (500, None)]
        assert await _answer(control) == fake.answered[-1].call_connection_id
        # azure-core retries a POST only on 500/503/504 or with Retry-After: not this 429.
        fake.script.append((429, None))
        with pytest.raises(ProviderError) as caught:
            await _answer(control)
        assert caught.value.retryable is True

    fake = _run(tls, scenario, retry_total=3, retry_backoff_factor=0)
    assert len(fake.requests) == 4
    assert len({r.headers["Repeatability-Request-ID"] for r in fake.requests[:3]}) == 1
    assert all(r.is_signed for r in fake.requests)


def test_http_scheme_in_a_connection_string_still_uses_https(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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


def test_endpoint_and_token_credential_send_a_bearer_token(tls: TlsFiles) -> None:
    credential = _StaticTokenCredential()

    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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
    tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(fake: LocalAcs, control: AcsCallControl) -> None:
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
