"""The local ACS as ReddyTalk's own code sees it: verifier, event parsers, the ACS SDK."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from local_acs import LocalAcs, TlsFiles, make_tls

from reddytalk.errors import Unauthorized
from reddytalk.telephony.acs_auth import ACS_ISSUER, AcsTokenVerifier
from reddytalk.telephony.acs_events import parse_call_events, parse_incoming_call
from reddytalk.telephony.call_automation import AcsCallControl

CALLER = "+15551234567"
CLINIC_NUMBER = "+18005550100"
CALLBACK = "https://reddytalk.example/api/calls/events?clinic=c1"
MEDIA = "wss://media.reddytalk.example/ws/c1"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


def _serve(tls: TlsFiles, scenario: Callable[[LocalAcs], Awaitable[Any]]) -> Any:
    async def main() -> Any:
        async with LocalAcs(tls, resource_id=str(uuid.uuid4())) as acs:
            return await scenario(acs)

    return asyncio.run(main())


def test_signed_tokens_pass_the_real_verifier(tls: TlsFiles) -> None:
    async def scenario(acs: LocalAcs) -> None:
        assert acs.issuer == ACS_ISSUER
        verifier = AcsTokenVerifier(
            audience=acs.resource_id, openid_config_url=acs.openid_config_url
        )
        # verify_async runs the verifier's blocking fetches in a thread, off this loop.
        claims = await verifier.verify_async(f"Bearer {acs.sign(sub='acs-callback')}")
        assert claims.audience == acs.resource_id and claims.subject == "acs-callback"
        assert claims.issued_at is not None
        assert claims.expires_at - claims.issued_at == timedelta(seconds=300)
        day = await verifier.verify_async(f"Bearer {acs.sign(lifetime_s=24 * 3600)}")
        assert day.expires_at - claims.expires_at >= timedelta(hours=23)

    _serve(tls, scenario)


def test_another_audience_or_another_acs_is_refused(tls: TlsFiles) -> None:
    async def scenario(acs: LocalAcs) -> list[str]:
        verifier = AcsTokenVerifier(
            audience=acs.resource_id, openid_config_url=acs.openid_config_url
        )
        other = LocalAcs(tls, resource_id=acs.resource_id)  # its own key; signing needs no server
        tokens = [acs.sign(audience="another-resource"), other.sign()]
        reasons = []
        for token in tokens:
            with pytest.raises(Unauthorized) as caught:
                await verifier.verify_async(f"Bearer {token}")
            reasons.append(str(caught.value))
        return reasons

    assert _serve(tls, scenario) == ["wrong audience", "unknown key"]


def test_incoming_call_event_parses_to_the_given_numbers(tls: TlsFiles) -> None:
    acs = LocalAcs(tls)  # building events needs no server
    event = acs.incoming_call_event(
        to_number=CLINIC_NUMBER, from_number=CALLER, correlation_id="c-1"
    )
    assert event["eventType"] == "Microsoft.Communication.IncomingCall"
    assert {"id", "topic", "subject", "eventTime", "dataVersion"} <= event.keys()
    assert event["data"]["from"]["rawId"] == f"4:{CALLER}"
    call = parse_incoming_call(json.loads(json.dumps(event))["data"])
    assert (call.to_number, call.from_number, call.correlation_id) == (CLINIC_NUMBER, CALLER, "c-1")
    assert call.incoming_call_context == event["data"]["incomingCallContext"]
    assert call.server_call_id
    other = acs.incoming_call_event(to_number=CLINIC_NUMBER, from_number=CALLER)
    assert other["data"]["correlationId"] != "c-1"
    assert other["data"]["incomingCallContext"] != call.incoming_call_context


def test_callback_events_parse_as_call_events(tls: TlsFiles) -> None:
    acs = LocalAcs(tls)
    connected = acs.callback_event("CallConnected", correlation_id="c-1", call_connection_id="cc-1")
    failed = acs.callback_event(
        "PlayFailed",
        correlation_id="c-1",
        call_connection_id="cc-1",
        operationContext="apology-1",
        resultInformation={"code": 500, "subCode": 8536, "message": "failed"},
    )
    assert (
        connected["specversion"] == "1.0" and connected["source"] == "calling/callConnections/cc-1"
    )
    events = parse_call_events(json.dumps([connected, failed]))
    assert [(e.name, e.correlation_id, e.call_connection_id) for e in events] == [
        ("CallConnected", "c-1", "cc-1"),
        ("PlayFailed", "c-1", "cc-1"),
    ]
    assert (events[1].operation_context, events[1].result_code, events[1].result_subcode) == (
        "apology-1",
        500,
        8536,
    )
    assert events[0].event_id != events[1].event_id


def test_the_sdk_answers_a_call_through_it(tls: TlsFiles) -> None:
    async def scenario(acs: LocalAcs) -> tuple[LocalAcs, dict[str, Any], list[str]]:
        incoming = acs.incoming_call_event(to_number=CLINIC_NUMBER, from_number=CALLER)
        options = {"connection_verify": str(acs.ca_file)}
        async with AcsCallControl(
            connection_string=acs.connection_string, client_options=options
        ) as control:
            ids = [
                await control.answer(
                    incoming_call_context=incoming["data"]["incomingCallContext"],
                    callback_url=CALLBACK,
                    media_url=MEDIA,
                    sample_rate_hz=16_000,
                    operation_context="answer-1",
                )
                for _ in range(2)
            ]
        return acs, incoming["data"], ids

    acs, incoming, ids = _serve(tls, scenario)
    assert [(r.method, r.path, r.is_signed) for r in acs.requests] == [
        ("POST", "/calling/callConnections:answer", True)
    ] * 2
    assert ids == [call.call_connection_id for call in acs.answered]
    assert len(set(ids)) == 2 and all(uuid.UUID(i) for i in ids)
    first = acs.answered[0]
    assert (first.incoming_call_context, first.correlation_id, first.server_call_id) == (
        incoming["incomingCallContext"],
        incoming["correlationId"],
        incoming["serverCallId"],
    )
    assert first.callback_uri == CALLBACK and first.operation_context == "answer-1"
    assert first.media_streaming is not None and first.media_streaming["transportUrl"] == MEDIA
    event = acs.callback_event("CallConnected", correlation_id="c", call_connection_id=ids[0])
    assert event["data"]["serverCallId"] == incoming["serverCallId"]
