"""ACS call events as ReddyTalk reads them: IncomingCall (Event Grid) and callbacks.

Both parsers are pure functions from the JSON ACS sends to small frozen objects,
and raise ``MalformedMessage`` (naming the field, never quoting a value) for
anything else.

Sources:
* IncomingCall: the Event Grid system event ``Microsoft.Communication.IncomingCall``,
  data schema ``AcsIncomingCallEventData`` (learn.microsoft.com, "Azure
  Communication Services as an Event Grid source"): ``to`` and ``from`` are
  communication identifiers (``rawId``, ``kind``, ``phoneNumber.value``),
  ``incomingCallContext`` (signed, opaque), ``correlationId``, ``serverCallId``.
* Callbacks: Call Automation posts a JSON array of CloudEvents to the callback
  URI; ``type`` is ``Microsoft.Communication.<Name>`` and ``data`` carries
  ``callConnectionId``, ``serverCallId``, ``correlationId``, ``operationContext``
  and ``resultInformation`` (azure-docs, ``concepts/call-automation``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from reddytalk.errors import MalformedMessage

__all__ = [
    "CallEvent",
    "IncomingCall",
    "is_e164",
    "parse_call_events",
    "parse_incoming_call",
]

_E164 = re.compile(r"\+[1-9]\d{1,14}")
_EVENT_PREFIX = "Microsoft.Communication."
_MAX_CALLBACK_EVENTS = 100


def is_e164(number: str) -> bool:
    """Whether ``number`` is an E.164 phone number ("+" and 2-15 digits, no leading 0)."""
    return bool(_E164.fullmatch(number))


@dataclass(frozen=True, slots=True)
class IncomingCall:
    """A call ringing on one of ACS's numbers. Phone numbers are PHI: kept out of repr.

    Attributes:
        correlation_id: The call's id across ACS; ReddyTalk's call id.
        to_number: The dialled number (E.164), which picks the clinic.
        from_number: The caller's number (E.164), or None for a non-phone caller.
        incoming_call_context: Opaque, signed by ACS; needed to answer or reject.
        server_call_id: ACS's server-side id of the call.
    """

    correlation_id: str
    to_number: str = field(repr=False)
    from_number: str | None = field(repr=False)
    incoming_call_context: str = field(repr=False)
    server_call_id: str = ""


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One Call Automation callback event.

    Attributes:
        event_id: The CloudEvent id (unique per event; duplicates are redeliveries).
        name: The event type without its prefix: "CallConnected", "CallDisconnected"...
        correlation_id: The call's id (the orchestration instance id).
        call_connection_id: The call connection the event is about.
        operation_context: What we passed with the request that caused it, if any.
        result_code: ``resultInformation.code`` if present (e.g. 200, 500).
        result_subcode: ``resultInformation.subCode`` if present.
    """

    event_id: str
    name: str
    correlation_id: str
    call_connection_id: str
    operation_context: str | None = None
    result_code: int | None = None
    result_subcode: int | None = None


def _text(data: dict[str, Any], key: str, where: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value.strip():
        raise MalformedMessage(f"{where}: {key} is missing or not a string")
    return value


def _phone_number(identifier: Any, where: str) -> str | None:
    """The E.164 number of a communication identifier, None if it is not a phone."""
    if not isinstance(identifier, dict):
        raise MalformedMessage(f"{where} is not a communication identifier")
    phone = identifier.get("phoneNumber")
    raw_id = identifier.get("rawId")
    number = phone.get("value") if isinstance(phone, dict) else None
    if number is None and isinstance(raw_id, str) and raw_id.startswith("4:"):
        number = raw_id[2:]  # rawId of a phone identifier is "4:" + E.164
    if number is None:
        return None
    if not isinstance(number, str) or not is_e164(number):
        raise MalformedMessage(f"{where} is not an E.164 phone number")
    return number


def parse_incoming_call(data: Any) -> IncomingCall:
    """The ``data`` of an IncomingCall Event Grid event, checked."""
    if not isinstance(data, dict):
        raise MalformedMessage("IncomingCall: data is not an object")
    to_number = _phone_number(data.get("to"), "IncomingCall: to")
    if to_number is None:
        raise MalformedMessage("IncomingCall: to is not a phone number")
    return IncomingCall(
        correlation_id=_text(data, "correlationId", "IncomingCall"),
        to_number=to_number,
        from_number=_phone_number(data.get("from"), "IncomingCall: from"),
        incoming_call_context=_text(data, "incomingCallContext", "IncomingCall"),
        server_call_id=str(data.get("serverCallId") or ""),
    )


def _optional_int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _call_event(raw: Any, index: int) -> CallEvent:
    where = f"callback event {index}"
    if not isinstance(raw, dict):
        raise MalformedMessage(f"{where} is not an object")
    event_type = _text(raw, "type", where)
    if not event_type.startswith(_EVENT_PREFIX):
        raise MalformedMessage(f"{where}: type is not a Microsoft.Communication event")
    data = raw.get("data")
    if not isinstance(data, dict):
        raise MalformedMessage(f"{where}: data is not an object")
    result = data.get("resultInformation")
    result = result if isinstance(result, dict) else {}
    context = data.get("operationContext")
    return CallEvent(
        event_id=_text(raw, "id", where),
        name=event_type.removeprefix(_EVENT_PREFIX),
        correlation_id=_text(data, "correlationId", where),
        call_connection_id=_text(data, "callConnectionId", where),
        operation_context=context if isinstance(context, str) and context else None,
        result_code=_optional_int(result.get("code")),
        result_subcode=_optional_int(result.get("subCode")),
    )


def parse_call_events(body: bytes | str) -> list[CallEvent]:
    """A callback request body (a JSON array of CloudEvents), every event checked.

    The whole body is refused if any event is malformed, so a bad request changes
    nothing.
    """
    try:
        raw = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedMessage("callback body is not JSON") from None
    if isinstance(raw, dict):
        raw = [raw]  # a single CloudEvent (structured mode) is accepted too
    if not isinstance(raw, list) or not raw:
        raise MalformedMessage("callback body is not a non-empty array of events")
    if len(raw) > _MAX_CALLBACK_EVENTS:
        raise MalformedMessage("callback body has too many events")
    return [_call_event(item, i) for i, item in enumerate(raw)]
