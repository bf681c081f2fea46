"""Parsing ACS's IncomingCall events and Call Automation callbacks."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reddytalk.errors import MalformedMessage
from reddytalk.telephony.acs_events import (
    CallEvent,
    is_e164,
    parse_call_events,
    parse_incoming_call,
)


def incoming(**overrides: Any) -> dict[str, Any]:
    """An IncomingCall event's data as ACS documents it."""
    data: dict[str, Any] = {
        "to": {"kind": "phoneNumber", "rawId": "4:+15550100200",
               "phoneNumber": {"value": "+15550100200"}},
        "from": {"kind": "phoneNumber", "rawId": "4:+15555550123",
                 "phoneNumber": {"value": "+15555550123"}},
        "serverCallId": "server-call-1",
        "callerDisplayName": "",
        "incomingCallContext": "eyJhbGciOi.signed.context",
        "correlationId": "b3f6c1d2-0000-4000-8000-000000000001",
    }  # fmt: skip
    data.update(overrides)
    return data


def callback(name: str = "CallConnected", **data: Any) -> dict[str, Any]:
    """One CloudEvent of a Call Automation callback."""
    body = {
        "callConnectionId": "conn-1",
        "serverCallId": "server-call-1",
        "correlationId": "b3f6c1d2-0000-4000-8000-000000000001",
        **data,
    }
    return {
        "id": f"evt-{name}",
        "source": "calling/callConnections/conn-1",
        "type": f"Microsoft.Communication.{name}",
        "data": body,
        "time": "2026-11-25T21:00:00Z",
        "specversion": "1.0",
        "datacontenttype": "application/json",
        "subject": "calling/callConnections/conn-1",
    }


def test_incoming_call_is_read_with_its_numbers_kept_out_of_repr() -> None:
    call = parse_incoming_call(incoming())
    assert call.to_number == "+15550100200"
    assert call.from_number == "+15555550123"
    assert call.correlation_id == "b3f6c1d2-0000-4000-8000-000000000001"
    assert call.incoming_call_context == "eyJhbGciOi.signed.context"
    assert "5550100200" not in repr(call) and "5555550123" not in repr(call)
    assert "signed.context" not in repr(call)


def test_a_number_only_in_raw_id_is_read() -> None:
    call = parse_incoming_call(incoming(to={"kind": "phoneNumber", "rawId": "4:+15550100200"}))
    assert call.to_number == "+15550100200"


def test_a_caller_that_is_not_a_phone_has_no_number() -> None:
    caller = {"kind": "communicationUser", "rawId": "8:acs:resource_user",
              "communicationUser": {"id": "8:acs:resource_user"}}  # fmt: skip
    assert parse_incoming_call(incoming(**{"from": caller})).from_number is None


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"correlationId": None}, "correlationId"),
        ({"correlationId": "  "}, "correlationId"),
        ({"incomingCallContext": 7}, "incomingCallContext"),
        ({"to": "+15550100200"}, "to"),
        ({"to": {"rawId": "8:acs:user"}}, "to"),
        ({"to": {"phoneNumber": {"value": "5550100200"}}}, "to"),
        ({"to": {"phoneNumber": {"value": "+0550100200"}}}, "to"),
        ({"from": {"phoneNumber": {"value": "call me"}}}, "from"),
    ],
)
def test_malformed_incoming_calls_are_refused_naming_the_field(
    change: dict[str, Any], field: str
) -> None:
    with pytest.raises(MalformedMessage, match=field):
        parse_incoming_call(incoming(**change))


def test_refusals_never_quote_the_value() -> None:
    with pytest.raises(MalformedMessage) as error:
        parse_incoming_call(incoming(to={"phoneNumber": {"value": "+1555 secret"}}))
    assert "secret" not in str(error.value)


def test_callback_events_are_read_in_order() -> None:
    body = json.dumps([
        callback("CallConnected"),
        callback("PlayFailed", operationContext="apology",
                 resultInformation={"code": 500, "subCode": 8535, "message": "x"}),
    ])  # fmt: skip
    connected, failed = parse_call_events(body.encode())
    assert connected == CallEvent(
        event_id="evt-CallConnected",
        name="CallConnected",
        correlation_id="b3f6c1d2-0000-4000-8000-000000000001",
        call_connection_id="conn-1",
    )
    assert (failed.name, failed.operation_context) == ("PlayFailed", "apology")
    assert (failed.result_code, failed.result_subcode) == (500, 8535)


def test_a_single_cloud_event_object_is_accepted() -> None:
    assert [e.name for e in parse_call_events(json.dumps(callback()))] == ["CallConnected"]


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"\xff\xfe",
        b"[]",
        b"42",
        json.dumps([{**callback(), "type": "Microsoft.Storage.BlobCreated"}]).encode(),
        json.dumps([{**callback(), "data": "x"}]).encode(),
        json.dumps([callback(), {**callback(), "id": None}]).encode(),
        json.dumps([callback(correlationId=3)]).encode(),
        json.dumps([callback()] * 101).encode(),
    ],
)
def test_malformed_callback_bodies_are_refused_whole(body: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_call_events(body)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_any_json_is_either_parsed_or_refused_cleanly(value: Any) -> None:
    for parse in (parse_incoming_call, lambda v: parse_call_events(json.dumps(v))):
        try:
            parse(value)
        except MalformedMessage:
            pass


@pytest.mark.parametrize(
    ("number", "ok"),
    [("+15550100200", True), ("+442071838750", True), ("15550100200", False),
     ("+0123", False), ("+1", False), ("+1234567890123456", False), ("+1555 0100", False)],
)  # fmt: skip
def test_e164(number: str, ok: bool) -> None:
    assert is_e164(number) is ok
