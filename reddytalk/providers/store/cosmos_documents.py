"""The documents :class:`~reddytalk.providers.store.cosmos.CosmosStore` keeps: domain
objects to JSON and back, one small pair of pure functions per kind.

PHI is text in these documents: the same text the SQLite store seals (a transcript or
tool calls as JSON, a message's text and caller name as they are). :data:`CALL_PHI`
and :data:`MESSAGE_PHI` name those keys; the store seals them right after
``*_to_document`` and opens them right before ``*_from_document``, so these functions
stay pure and never touch the cipher.
Times are fixed-width UTC ISO 8601 text (:func:`to_utc_iso`), so text order is time
order, as in SQLite. Clinics use the document format of the SQLite store
(:func:`clinic_to_document`).

Item ids: values made only of ``[A-Za-z0-9._:=-]`` (up to 200 characters) are used as
they are; anything else (the ``+`` of phone numbers, ``/``, spaces, long keys) becomes
``~`` and its SHA-256. Cosmos DB ids cannot hold ``/ \\ ? #`` (the SDK refuses them),
and ``+`` or ``%`` in the request path have broken reads in other SDKs. The value
itself is always kept in a field of its own too.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from reddytalk.ports import AuditEvent, CallRecord, Message
from reddytalk.providers.store.sqlite import (
    CALLER_NAME_FIELD,
    MESSAGE_TEXT_FIELD,
    TOOL_CALLS_FIELD,
    TRANSCRIPT_FIELD,
    clinic_from_document,
    clinic_to_document,
)
from reddytalk.providers.store.sqlite_db import from_utc_iso, to_utc_iso
from reddytalk.scheduling.model import Clinic

__all__ = [
    "CALL_PHI",
    "MESSAGE_PHI",
    "PhiFields",
    "audit_from_document",
    "audit_to_document",
    "call_from_document",
    "call_to_document",
    "clinic_from_document",
    "clinic_to_cosmos",
    "item_id",
    "message_from_document",
    "message_to_document",
]

_PLAIN_ID = re.compile(r"[A-Za-z0-9._:=-]{1,200}")


@dataclass(frozen=True, slots=True)
class PhiFields:
    """Where one kind of document holds PHI, and how each value is sealed.

    Attributes:
        record_id_key: The key of the record id every value is bound to.
        sealed: Each document key holding PHI (as text), and the cipher's field name
            its value is sealed as.
    """

    record_id_key: str
    sealed: Mapping[str, str]


# The SQLite store's field names and record ids: a value seals to the same kind of token
# in either store.
CALL_PHI = PhiFields("call_id", {"transcript": TRANSCRIPT_FIELD, "tool_calls": TOOL_CALLS_FIELD})
"""A call's transcript and tool calls (arguments hold names, birth dates), by call id."""

MESSAGE_PHI = PhiFields(
    "message_id", {"text": MESSAGE_TEXT_FIELD, "caller_name": CALLER_NAME_FIELD}
)
"""A message's text and caller name, by message id."""


def item_id(value: str) -> str:
    """``value`` as an item id: itself when plain, else ``~`` and its SHA-256.

    ``~`` is not plain, so a hashed id never equals a plain one.
    """
    if _PLAIN_ID.fullmatch(value):
        return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()


def clinic_to_cosmos(clinic: Clinic, phone_numbers: Iterable[str]) -> dict[str, Any]:
    """A clinic's document and the numbers mapped to it (read back with
    :func:`clinic_from_document`, which ignores the extra fields)."""
    # No PHI: a clinic's public facts.
    return {
        "id": item_id(clinic.clinic_id),
        **clinic_to_document(clinic),
        "phone_numbers": sorted(phone_numbers),
    }


def call_to_document(record: CallRecord) -> dict[str, Any]:
    """A finished call's document, its PHI (:data:`CALL_PHI`) as text to seal.

    Raises:
        ValueError: A time is naive.
    """
    return {
        "id": item_id(record.call_id),
        "call_id": record.call_id,
        "clinic_id": record.clinic_id,
        "started_at": to_utc_iso(record.started_at),
        "ended_at": to_utc_iso(record.ended_at),
        "outcome": record.outcome,
        "transcript": json.dumps([list(turn) for turn in record.transcript]),  # PHI
        "tool_calls": json.dumps(list(record.tool_calls)),  # PHI
        "turn_timings": list(record.turn_timings),
    }


def call_from_document(document: Mapping[str, Any]) -> CallRecord:
    """The call a document written by :func:`call_to_document` describes (PHI opened),
    times in UTC."""
    return CallRecord(
        call_id=document["call_id"],
        clinic_id=document["clinic_id"],
        started_at=from_utc_iso(document["started_at"]),
        ended_at=from_utc_iso(document["ended_at"]),
        outcome=document["outcome"],
        transcript=tuple((str(who), str(text)) for who, text in json.loads(document["transcript"])),
        tool_calls=tuple(json.loads(document["tool_calls"])),
        turn_timings=tuple(document["turn_timings"]),
    )


def audit_to_document(event: AuditEvent, audit_id: str) -> dict[str, Any]:
    """An audit record's document under ``audit_id``.

    Raises:
        ValueError: ``event.at`` is naive.
    """
    # No PHI by contract: an audit event holds ids, never PHI.
    return {
        "id": audit_id,
        "call_id": event.call_id,
        "clinic_id": event.clinic_id,
        "action": event.action,
        "resource": event.resource,
        "at": to_utc_iso(event.at),
        "details": dict(event.details),
    }


def audit_from_document(document: Mapping[str, Any]) -> AuditEvent:
    """The audit event a document written by :func:`audit_to_document` describes."""
    return AuditEvent(
        call_id=document["call_id"],
        clinic_id=document["clinic_id"],
        action=document["action"],
        resource=document["resource"],
        at=from_utc_iso(document["at"]),
        details={str(k): str(v) for k, v in document["details"].items()},
    )


def message_to_document(message: Message) -> dict[str, Any]:
    """A message's document, its PHI (:data:`MESSAGE_PHI`) as text to seal.

    Raises:
        ValueError: ``message.taken_at`` is naive.
    """
    return {
        "id": item_id(message.message_id),
        "message_id": message.message_id,
        "call_id": message.call_id,
        "clinic_id": message.clinic_id,
        "taken_at": to_utc_iso(message.taken_at),
        "text": message.text,  # PHI
        "caller_name": message.caller_name,  # PHI
        "patient_id": message.patient_id,  # an identifier: ties the message to a patient
        "status": message.status,
    }


def message_from_document(document: Mapping[str, Any]) -> Message:
    """The message a document written by :func:`message_to_document` describes (PHI
    opened)."""
    return Message(
        message_id=document["message_id"],
        call_id=document["call_id"],
        clinic_id=document["clinic_id"],
        taken_at=from_utc_iso(document["taken_at"]),
        text=document["text"],
        caller_name=document["caller_name"],
        patient_id=document["patient_id"],
        status=document["status"],
    )
