"""The documents :class:`~reddytalk.providers.store.cosmos.CosmosStore` keeps: domain
objects to JSON and back, one small pair of pure functions per kind.

PHI is text in these documents: the same text the SQLite store seals (a transcript or
tool calls as JSON, a message's text and caller name, a call's phone number, an outbox
message's number and text, as they are). :data:`CALL_PHI`, :data:`MESSAGE_PHI`,
:data:`CALL_NUMBER_PHI` and :data:`OUTBOX_PHI` name those keys; the store seals them
(:meth:`PhiFields.seal`) right after ``*_to_document`` and opens them right before
``*_from_document``, so those functions stay pure and never touch the cipher.
Times are fixed-width UTC ISO 8601 text (:func:`to_utc_iso`), so text order is time
order, as in SQLite. Clinics use the document format of the SQLite store
(:func:`~reddytalk.providers.store.clinics.clinic_to_document`).

Item ids: values made only of ``[A-Za-z0-9._:=-]`` (up to 200 characters) are used as
they are; anything else (the ``+`` of phone numbers, ``/``, spaces, long keys) becomes
``~`` and its SHA-256. Cosmos DB ids cannot hold ``/ \\ ? #`` (the SDK refuses them),
and ``+`` or ``%`` in the request path have broken reads in other SDKs. The value
itself is always kept in a field of its own too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from reddytalk.phi.cipher import PhiCipher
from reddytalk.ports import AuditEvent, CallListing, CallRecord, Message, OutboxMessage
from reddytalk.providers.store.clinics import clinic_from_document, clinic_to_document
from reddytalk.providers.store.sqlite import (
    CALL_NUMBER_FIELD,
    CALLER_NAME_FIELD,
    MESSAGE_TEXT_FIELD,
    OUTBOX_NUMBER_FIELD,
    OUTBOX_TEXT_FIELD,
    TOOL_CALLS_FIELD,
    TRANSCRIPT_FIELD,
)
from reddytalk.providers.store.sqlite_db import from_utc_iso, to_utc_iso
from reddytalk.scheduling.model import Clinic

__all__ = [
    "CALL_NUMBER_PHI",
    "CALL_PHI",
    "MESSAGE_PHI",
    "OUTBOX_PHI",
    "PhiFields",
    "audit_from_document",
    "audit_to_document",
    "call_from_document",
    "call_number_to_document",
    "call_to_document",
    "clinic_from_document",
    "clinic_to_cosmos",
    "item_id",
    "listing_from_document",
    "live_call_to_document",
    "message_from_document",
    "message_to_document",
    "number_to_document",
    "outbox_from_document",
    "outbox_to_document",
]

_PLAIN_ID = re.compile(r"[A-Za-z0-9._:=-]{1,200}")


@dataclass(frozen=True, slots=True)
class PhiFields:
    """Where one kind of document holds PHI, and how each value is sealed.

    Attributes:
        record_id_keys: The keys whose values, joined by ``/``, are the record id every
            value is bound to (one key, or the SQLite store's ``<call id>/<party>``).
        sealed: Each document key holding PHI (as text), and the cipher's field name
            its value is sealed as.
    """

    record_id_keys: tuple[str, ...]
    sealed: Mapping[str, str]

    def record_id(self, document: Mapping[str, Any]) -> str:
        """The record id the PHI of ``document`` is bound to."""
        return "/".join(str(document[key]) for key in self.record_id_keys)

    async def seal(self, cipher: PhiCipher, document: Mapping[str, Any]) -> dict[str, Any]:
        """``document`` with its PHI sealed, each value bound to its clinic, field and
        record (the one step between ``*_to_document`` and the SDK)."""
        clinic_id, record_id = document["clinic_id"], self.record_id(document)
        sealed = dict(document)
        for key, field in self.sealed.items():
            sealed[key] = await cipher.seal(clinic_id, field, document[key], record_id=record_id)
        return sealed

    async def open(self, cipher: PhiCipher, document: Mapping[str, Any]) -> dict[str, Any]:
        """A stored ``document`` with its PHI opened (:meth:`seal` undone).

        Raises:
            ProviderError: A value does not open: altered, or moved from another clinic,
                field or record (not retryable); or the cipher's keys failed.
        """
        clinic_id, record_id = document["clinic_id"], self.record_id(document)
        opened = dict(document)
        for key, field in self.sealed.items():
            opened[key] = await cipher.open(clinic_id, field, document[key], record_id=record_id)
        return opened


# The SQLite store's field names and record ids: a value seals to the same kind of token
# in either store.
CALL_PHI = PhiFields(("call_id",), {"transcript": TRANSCRIPT_FIELD, "tool_calls": TOOL_CALLS_FIELD})
"""A call's transcript and tool calls (arguments hold names, birth dates), by call id."""

MESSAGE_PHI = PhiFields(
    ("message_id",), {"text": MESSAGE_TEXT_FIELD, "caller_name": CALLER_NAME_FIELD}
)
"""A message's text and caller name, by message id."""

CALL_NUMBER_PHI = PhiFields(("call_id", "party"), {"number": CALL_NUMBER_FIELD})
"""A call's phone number, by ``<call id>/<party>``."""

OUTBOX_PHI = PhiFields(
    ("message_id",), {"to_number": OUTBOX_NUMBER_FIELD, "text": OUTBOX_TEXT_FIELD}
)
"""An outbox message's number and text, by message id."""


def item_id(value: str) -> str:
    """``value`` as an item id: itself when plain, else ``~`` and its SHA-256.

    ``~`` is not plain, so a hashed id never equals a plain one.
    """
    if _PLAIN_ID.fullmatch(value):
        return value
    return "~" + hashlib.sha256(value.encode()).hexdigest()


def clinic_to_cosmos(clinic: Clinic) -> dict[str, Any]:
    """A clinic's document (read back with :func:`clinic_from_document`, which ignores
    the extra fields). ``phone_numbers`` lists the numbers it rings on, for people
    reading the container; which numbers do is the ``numbers`` container's to say."""
    # No PHI: a clinic's public facts.
    return {
        "id": item_id(clinic.clinic_id),
        **clinic_to_document(clinic),
        "phone_numbers": sorted(clinic.phone_numbers),
    }


def number_to_document(phone_number: str, clinic_id: str) -> dict[str, Any]:
    """The document that maps a phone number (E.164) to its clinic; its partition key is
    the number."""
    return {"id": item_id(phone_number), "phone_number": phone_number, "clinic_id": clinic_id}


def live_call_to_document(
    call_id: str, clinic_id: str, *, started_at: dt.datetime
) -> dict[str, Any]:
    """A call in progress's document (ids and a time, no PHI); its partition key is the
    call id.

    Raises:
        ValueError: ``started_at`` is naive.
    """
    return {
        "id": item_id(call_id),
        "call_id": call_id,
        "clinic_id": clinic_id,
        "started_at": to_utc_iso(started_at),
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


def listing_from_document(document: Mapping[str, Any]) -> CallListing:
    """The listing of a call whose document :func:`call_to_document` wrote, from that
    document or from a query's projection without its PHI (nothing sealed is read)."""
    return CallListing(
        call_id=document["call_id"],
        clinic_id=document["clinic_id"],
        started_at=from_utc_iso(document["started_at"]),
        ended_at=from_utc_iso(document["ended_at"]),
        outcome=document["outcome"],
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


def call_number_to_document(
    call_id: str, clinic_id: str, *, party: str, number: str, saved_at: dt.datetime
) -> dict[str, Any]:
    """A call's phone number's document (one per call and party), the number
    (:data:`CALL_NUMBER_PHI`) as text to seal; read back with the store's point read.

    Raises:
        ValueError: ``saved_at`` is naive.
    """
    return {
        "id": item_id(party),  # unique within the call's partition
        "call_id": call_id,
        "clinic_id": clinic_id,
        "party": party,
        "number": number,  # PHI
        "saved_at": to_utc_iso(saved_at),
    }


def outbox_to_document(message: OutboxMessage) -> dict[str, Any]:
    """An outbox message's document, its PHI (:data:`OUTBOX_PHI`) as text to seal.

    Raises:
        ValueError: ``message.created_at`` is naive.
    """
    return {
        "id": item_id(message.message_id),
        "message_id": message.message_id,
        "clinic_id": message.clinic_id,
        "call_id": message.call_id,
        "created_at": to_utc_iso(message.created_at),
        "to_number": message.to_number,  # PHI
        "text": message.text,  # PHI
        "status": message.status,
    }


def outbox_from_document(document: Mapping[str, Any]) -> OutboxMessage:
    """The outbox message a document written by :func:`outbox_to_document` describes
    (PHI opened), its time in UTC."""
    return OutboxMessage(
        message_id=document["message_id"],
        clinic_id=document["clinic_id"],
        call_id=document["call_id"],
        created_at=from_utc_iso(document["created_at"]),
        to_number=document["to_number"],
        text=document["text"],
        status=document["status"],
    )
