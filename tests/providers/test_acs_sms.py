"""AcsSmsSender through the real azure-communication-sms SDK, against the local ACS.

The local ACS (``scripts/local_acs.py``) is a loopback HTTPS stand-in for ACS: it records every
request (method, path, query, headers, JSON body) and checks its HMAC signature as ACS does.
Its answers to ``POST /sms`` are scripted here as the ACS SMS REST API documents them
(learn.microsoft.com ``rest/api/communication/sms/send``): 202 with one result per recipient,
``successful`` false for a recipient ACS refused, 4xx/5xx for the whole request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import logging
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from local_acs import LocalAcs, Recorded, TlsFiles, make_tls

from reddytalk.errors import ProviderError
from reddytalk.providers.sms.acs_sms import AcsSmsSender

API_VERSION = "2021-03-07"
CLINIC_NUMBER = "+18005550100"
PATIENT = "+15551234567"
TEXT = "Reddy Family Clinic: your appointment with Doctor Patel on Tue, Dec 1 at 9:30 AM CST"
MESSAGE_ID = "Outgoing_20261125233000a1b2c3d4-0000-4000-8000-000000000001_noam"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A self-signed certificate for 127.0.0.1, its own trust anchor."""
    return make_tls(tmp_path_factory.mktemp("tls"))


def _accepted(to: str = PATIENT, message_id: str = MESSAGE_ID) -> dict[str, Any]:
    """ACS's 202 body for one recipient it accepted."""
    item = {"to": to, "messageId": message_id, "httpStatusCode": 202,
            "repeatabilityResult": "accepted", "successful": True}  # fmt: skip
    return {"value": [item]}


def _refused(status: int, error: str) -> dict[str, Any]:
    """ACS's 202 body for one recipient it refused (the request itself was fine)."""
    item = {"to": PATIENT, "httpStatusCode": status, "repeatabilityResult": "accepted",
            "successful": False, "errorMessage": error}  # fmt: skip
    return {"value": [item]}


Scenario = Callable[[LocalAcs, AcsSmsSender], Awaitable[None]]


def _run(tls: TlsFiles, scenario: Scenario, **options: Any) -> LocalAcs:
    """Serve, build the adapter from the local ACS's connection string, run ``scenario``."""

    async def main() -> LocalAcs:
        async with LocalAcs(tls) as fake:
            client_options = {"connection_verify": str(tls.cert_file), **options}
            async with AcsSmsSender(
                connection_string=fake.connection_string, client_options=client_options
            ) as sender:
                await scenario(fake, sender)
        return fake

    return asyncio.run(main())


async def _send(sender: AcsSmsSender, to_number: str = PATIENT) -> str:
    return await sender.send(
        to_number, TEXT, from_number=CLINIC_NUMBER, clinic_id="clinic-1", call_id="call-1",
        idempotency_key="sms-confirmation:call-1:book_appointment:appt-1",
    )  # fmt: skip


def _sms_requests(fake: LocalAcs) -> list[Recorded]:
    return [r for r in fake.requests if r.path == "/sms"]


def test_a_text_is_one_signed_post_with_delivery_reports_on(tls: TlsFiles) -> None:
    sent: list[str] = []

    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script.append((202, _accepted()))
        sent.append(await _send(sender))

    [request] = _run(tls, scenario).requests
    assert sent == [MESSAGE_ID]
    assert (request.method, request.path, request.query) == (
        "POST", "/sms", {"api-version": API_VERSION}
    )  # fmt: skip
    assert request.is_signed  # HMAC-SHA256 of the connection string's key, as ACS checks it
    assert request.headers["Authorization"].startswith("HMAC-SHA256 SignedHeaders=")
    [recipient] = request.body.pop("smsRecipients")
    assert request.body == {
        "from": CLINIC_NUMBER,
        "message": TEXT,
        "smsSendOptions": {"enableDeliveryReport": True},
    }
    # The SDK's idempotency: a fresh id per recipient per send, stamped with the time.
    assert set(recipient) == {"to", "repeatabilityRequestId", "repeatabilityFirstSent"}
    assert recipient["to"] == PATIENT
    assert uuid.UUID(recipient["repeatabilityRequestId"]).version == 4
    first_sent = email.utils.parsedate_to_datetime(recipient["repeatabilityFirstSent"])
    assert recipient["repeatabilityFirstSent"].endswith(" GMT")  # IMF-fixdate
    assert abs(first_sent - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=1)
    assert "Repeatability-Request-ID" not in request.headers  # in the body, unlike callautomation


def test_each_send_is_a_new_request_to_acs(tls: TlsFiles) -> None:
    """What the SDK's repeatability ids do not cover: a second ``send`` is a second text.
    One text per change is the store's claim (tests/calls/test_back_office.py)."""

    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script += [(202, _accepted()), (202, _accepted(message_id="Outgoing_2"))]
        assert [await _send(sender), await _send(sender)] == [MESSAGE_ID, "Outgoing_2"]

    first, second = (r.body["smsRecipients"][0] for r in _run(tls, scenario).requests)
    assert first["repeatabilityRequestId"] != second["repeatabilityRequestId"]


def test_the_sdks_own_resend_repeats_the_same_ids(tls: TlsFiles) -> None:
    """What they do cover: with SDK retries on, a resend after a 503 carries the same id and
    first-sent time, so ACS can tell it from a new text (tracked for 5 minutes)."""

    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script += [(503, {"error": {"code": "ServiceUnavailable", "message": "busy"}}),
                        (202, _accepted())]  # fmt: skip
        assert await _send(sender) == MESSAGE_ID

    first, again = (r.body["smsRecipients"][0] for r in _run(tls, scenario, retry_total=1).requests)
    assert first == again


def test_a_recipient_acs_refuses_is_not_retryable_and_names_no_number(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script.append((202, _refused(400, f"Invalid To phone number format: {PATIENT}")))
        with pytest.raises(ProviderError) as caught:
            await _send(sender)
        assert caught.value.retryable is False
        assert str(caught.value) == "ACS SMS refused the recipient: HTTP 400"
        assert caught.value.__cause__ is None and caught.value.__context__ is None

    assert len(_run(tls, scenario).requests) == 1


def test_a_recipient_acs_could_not_take_now_is_retryable(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script.append((202, _refused(503, "Service unavailable")))
        with pytest.raises(ProviderError) as caught:
            await _send(sender)
        assert caught.value.retryable is True

    _run(tls, scenario)


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(429, True), (500, True), (503, True), (400, False), (401, False), (403, False)],
)
def test_a_failed_request_maps_to_a_provider_error(
    tls: TlsFiles, status: int, retryable: bool
) -> None:
    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        body = {"error": {"code": "Denied", "message": f"cannot send to {PATIENT}"}}
        fake.script.append((status, body))
        with pytest.raises(ProviderError) as caught:
            await _send(sender)
        assert caught.value.retryable is retryable
        assert str(caught.value) == f"ACS SMS send failed: HTTP {status} (Denied)"

    fake = _run(tls, scenario)
    assert len(fake.requests) == 1  # the SDK's retries are off: one request, one answer


def test_an_answer_without_a_message_id_is_not_a_success(tls: TlsFiles) -> None:
    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script.append((202, {"value": []}))
        with pytest.raises(ProviderError, match="0 results"):
            await _send(sender)
        fake.script.append((202, {"value": [{"to": PATIENT, "httpStatusCode": 202,
                                             "successful": True}]}))  # fmt: skip
        with pytest.raises(ProviderError, match="no message id"):
            await _send(sender)

    _run(tls, scenario)


def test_an_unreachable_acs_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> None:
        key = "a2V5LWtleS1rZXkta2V5LWtleS1rZXkta2V5LWtleQ=="
        async with AcsSmsSender(
            connection_string=f"endpoint=https://127.0.0.1:{port}/;accesskey={key}"
        ) as sender:
            with pytest.raises(ProviderError) as caught:
                await _send(sender)
            assert caught.value.retryable is True

    asyncio.run(main())


def test_nothing_logs_the_number_or_the_text(
    tls: TlsFiles, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(fake: LocalAcs, sender: AcsSmsSender) -> None:
        fake.script += [(202, _accepted()), (400, {"error": {"code": "BadRequest",
                                                             "message": PATIENT}})]  # fmt: skip
        await _send(sender)
        with pytest.raises(ProviderError):
            await _send(sender)

    with caplog.at_level(logging.DEBUG):
        _run(tls, scenario)
    assert PATIENT not in caplog.text and PATIENT[2:] not in caplog.text
    assert "Doctor Patel" not in caplog.text


@pytest.mark.parametrize(
    "arguments",
    [{}, {"connection_string": "endpoint=https://x/;accesskey=eA==", "endpoint": "https://x"}],
)
def test_the_sender_needs_one_way_to_authenticate(arguments: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="either connection_string"):
        AcsSmsSender(**arguments)
