"""Domain objects ↔ FHIR R4 resources, for :mod:`reddytalk.providers.ehr.fhir`: no I/O.

The mapping itself is described in ``fhir.py``'s docstring; this module holds its
vocabulary (systems and extension URLs) and the pure functions.

fhir.resources notes (8.3.0):

- It has no R4 package: the top level is R5 (whose ``Appointment`` differs a lot) and
  ``fhir.resources.R4B`` is 4.3. Patient, Slot, Schedule, Appointment, Organization,
  Practitioner and PractitionerRole are the same in R4 and R4B, so R4B models build
  what we send.
- Models are ``extra="forbid"``: a server's resource with an element the model does not
  know (a vendor's, or a newer version's) fails to parse. Resources read from the
  server are therefore kept as JSON dicts and changed in place (read-modify-write keeps
  what we do not understand); models only build new resources.
- Code bindings are not checked (``Slot(status="nonsense")`` passes), and a
  ``ValidationError``'s message quotes the input values (PHI): it never leaves here.
- ``model_dump(mode="json")`` keeps a datetime's own offset; times are converted to UTC
  first so that every instant we write reads ``...Z``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

import pydantic
from fhir.resources.R4B.appointment import Appointment as FhirAppointment
from fhir.resources.R4B.patient import Patient as FhirPatient

from reddytalk.errors import ProviderError
from reddytalk.scheduling.model import Appointment, Patient, Slot

__all__ = [
    "APPOINTMENT_TYPE_SYSTEM",
    "BOOKING_SYSTEM",
    "CLINIC_SYSTEM",
    "NAMESPACE",
    "PATIENT_IDENTITY_SYSTEM",
    "PRACTITIONER_SYSTEM",
    "PROVIDER_SYSTEM",
    "SLOT_CLAIM_URL",
    "TIMEZONE_URL",
    "Claim",
    "appointment_of",
    "appointment_resource",
    "claim_of",
    "identifier_value",
    "identity_digest",
    "instant",
    "is_logical_id",
    "is_managed_by",
    "is_offerable",
    "key_digest",
    "matching_name",
    "model_json",
    "parse_instant",
    "participant_id",
    "patient_of",
    "patient_resource",
    "ref_id",
    "slot_of",
    "version_id",
    "with_claim",
]

NAMESPACE = "https://reddytalk.example/fhir"
"""Root of ReddyTalk's identifier systems and extension URLs (replace with a domain we own)."""
CLINIC_SYSTEM = f"{NAMESPACE}/sid/clinic"
"""Organization.identifier: the clinic id."""
PROVIDER_SYSTEM = f"{NAMESPACE}/sid/provider"
"""PractitionerRole.identifier: the provider id (unique within the role's organization)."""
PRACTITIONER_SYSTEM = f"{NAMESPACE}/sid/practitioner"
"""Practitioner.identifier: ``<clinic id>/<provider id>`` (the seeder's idempotency)."""
PATIENT_IDENTITY_SYSTEM = f"{NAMESPACE}/sid/patient-identity"
"""Patient.identifier: digest of the normalized identity (conditional create's key)."""
BOOKING_SYSTEM = f"{NAMESPACE}/sid/booking"
"""Appointment.identifier: SHA-256 of the booking's idempotency key."""
APPOINTMENT_TYPE_SYSTEM = f"{NAMESPACE}/CodeSystem/appointment-type"
"""Appointment.serviceType coding: the clinic's appointment type code."""
SLOT_CLAIM_URL = f"{NAMESPACE}/StructureDefinition/slot-claim"
"""Slot extension: who holds or booked the slot (``key``) and until when (``expires``)."""
TIMEZONE_URL = "http://hl7.org/fhir/StructureDefinition/timezone"
"""FHIR extensions pack's IANA time zone code, on the clinic's Organization."""

Json = dict[str, Any]
_LOGICAL_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


def _name_key(name: str) -> str:
    # As the embedded EHR: case-insensitive in every script (casefold), blind to spacing
    # and to Unicode composition; accents still count ("García" is not "Garcia").
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def identity_digest(
    clinic_id: str, given_name: str, family_name: str, birth_date: dt.date, *, secret: bytes
) -> str:
    """The Patient identifier value that makes registration atomic (hex).

    HMAC-SHA256 with ``secret`` when given (then the value reveals nothing without it),
    else SHA-256, over the clinic and the normalized identity.
    """
    message = json.dumps(
        [clinic_id, _name_key(given_name), _name_key(family_name), birth_date.isoformat()]
    ).encode()
    if secret:
        return hmac.new(secret, message, hashlib.sha256).hexdigest()
    return hashlib.sha256(message).hexdigest()


def key_digest(key: str) -> str:
    """A hold or booking key as stored in FHIR: SHA-256 hex.

    Medplum does not honour FHIR's search escaping (``\\,`` ``\\|``): a key holding ``,``
    or ``|`` could not be searched for. A digest can, and has a fixed length.
    """
    return hashlib.sha256(key.encode()).hexdigest()


def instant(value: dt.datetime) -> str:
    """An aware datetime as a FHIR instant in UTC (``2026-03-05T15:00:00Z``).

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("a naive datetime has no instant")
    utc = value.astimezone(dt.UTC)
    return utc.isoformat(timespec="milliseconds" if utc.microsecond else "seconds").replace(
        "+00:00", "Z"
    )


def parse_instant(value: object) -> dt.datetime:
    """A FHIR instant (or dateTime with time and zone) as an aware datetime."""
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise ProviderError("EHR sent a time that is not an instant", retryable=False) from None
    if parsed.tzinfo is None:
        raise ProviderError("EHR sent a time without a zone", retryable=False)
    return parsed


def version_id(resource: Mapping[str, Any]) -> str:
    """``meta.versionId``, which ``If-Match`` needs (Medplum: the ETag's value too)."""
    version = (resource.get("meta") or {}).get("versionId")
    if not isinstance(version, str) or not version:
        raise ProviderError("EHR resource has no version; cannot update safely", retryable=False)
    return version


def ref_id(reference: object, resource_type: str) -> str | None:
    """The id in ``{"reference": "<type>/<id>"}`` (relative, absolute or versioned)."""
    text = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(text, str):
        return None
    parts = text.split("/_history/", 1)[0].split("/")
    if len(parts) >= 2 and parts[-2] == resource_type and parts[-1]:
        return parts[-1]
    return None


def is_logical_id(value: str) -> bool:
    """Whether ``value`` can be a FHIR logical id (R4 ``id``: ``[A-Za-z0-9-.]{1,64}``), so
    it names one resource in a ``[type]/[id]`` path and nothing else."""
    return _LOGICAL_ID.fullmatch(value) is not None


def is_managed_by(patient: Mapping[str, Any], organization_id: str) -> bool:
    """Whether the Patient's ``managingOrganization`` is this Organization (its clinic)."""
    return ref_id(patient.get("managingOrganization"), "Organization") == organization_id


def identifier_value(resource: Mapping[str, Any], system: str) -> str | None:
    """The value of the resource's first identifier in ``system``."""
    for identifier in resource.get("identifier") or []:
        if identifier.get("system") == system and isinstance(identifier.get("value"), str):
            return str(identifier["value"])
    return None


def model_json(model: type[pydantic.BaseModel], data: Mapping[str, Any]) -> Json:
    """``data`` checked by a fhir.resources model, as JSON (no PHI in the error)."""
    try:
        built = model.model_validate(dict(data))
    except pydantic.ValidationError:
        raise ProviderError(
            f"a {model.__name__} would not be valid FHIR", retryable=False
        ) from None
    dumped: Json = built.model_dump(mode="json")
    return dumped


# -- slots -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """Our mark on a Slot: the digest of the key that holds (or booked) it, and until when
    a hold lasts (None for a booking)."""

    key: str
    expires: dt.datetime | None = None

    def is_live(self, now: dt.datetime) -> bool:
        """Whether the claim still counts: a booking always, a hold until it expires."""
        return self.expires is None or self.expires > now


def claim_of(slot: Mapping[str, Any]) -> Claim | None:
    """Our claim on ``slot``, if it carries one."""
    for extension in slot.get("extension") or []:
        if extension.get("url") != SLOT_CLAIM_URL:
            continue
        parts = {e.get("url"): e for e in extension.get("extension") or []}
        key = (parts.get("key") or {}).get("valueString")
        expires = (parts.get("expires") or {}).get("valueInstant")
        if isinstance(key, str):
            return Claim(key, None if expires is None else parse_instant(expires))
    return None


def with_claim(slot: Mapping[str, Any], status: str, claim: Claim | None) -> Json:
    """A copy of ``slot`` with ``status`` and our claim replaced (None: removed); every
    other element is kept as the server sent it."""
    updated = {k: v for k, v in slot.items() if k != "meta"}
    others = [e for e in slot.get("extension") or [] if e.get("url") != SLOT_CLAIM_URL]
    if claim is not None:
        parts: list[Json] = [{"url": "key", "valueString": claim.key}]
        if claim.expires is not None:
            parts.append({"url": "expires", "valueInstant": instant(claim.expires)})
        others.append({"url": SLOT_CLAIM_URL, "extension": parts})
    if others:
        updated["extension"] = others
    else:
        updated.pop("extension", None)
    updated["status"] = status
    return updated


def is_offerable(slot: Mapping[str, Any], now: dt.datetime) -> bool:
    """Free, or tentatively held by a hold of ours that expired."""
    if slot.get("status") == "free":
        return True
    claim = claim_of(slot)
    return slot.get("status") == "busy-tentative" and claim is not None and not claim.is_live(now)


def slot_of(slot: Mapping[str, Any], *, provider_id: str, tz: ZoneInfo) -> Slot:
    """The domain's slot: FHIR id, provider, times in the clinic's zone."""
    return Slot(
        slot_id=str(slot["id"]),
        provider_id=provider_id,
        start=parse_instant(slot.get("start")).astimezone(tz),
        end=parse_instant(slot.get("end")).astimezone(tz),
    )


# -- patients ----------------------------------------------------------------------------------


def patient_resource(
    *, organization_id: str, given_name: str, family_name: str, birth_date: dt.date,
    phone: str, identity: str,
) -> Json:  # fmt: skip
    """A new Patient of the clinic's Organization, with its identity identifier."""
    data: Json = {
        "identifier": [{"system": PATIENT_IDENTITY_SYSTEM, "value": identity}],
        "active": True,
        "name": [{"use": "official", "family": family_name.strip(), "given": [given_name.strip()]}],
        "birthDate": birth_date.isoformat(),
        "managingOrganization": {"reference": f"Organization/{organization_id}"},
    }
    if phone:
        data["telecom"] = [{"system": "phone", "value": phone}]
    return model_json(FhirPatient, data)


def matching_name(patient: Mapping[str, Any], given_name: str, family_name: str) -> Json | None:
    """The patient's HumanName equal to these names as the embedded EHR compares them
    (given names joined by spaces), or None."""
    wanted = (_name_key(given_name), _name_key(family_name))
    for name in patient.get("name") or []:
        given = " ".join(str(g) for g in name.get("given") or [])
        if (_name_key(given), _name_key(str(name.get("family") or ""))) == wanted:
            return dict(name)
    return None


def patient_of(patient: Mapping[str, Any], name: Mapping[str, Any] | None = None) -> Patient:
    """The domain's patient, named by ``name`` (default: the first HumanName)."""
    chosen = name if name is not None else ((patient.get("name") or [{}])[0])
    phone = next((t.get("value", "") for t in patient.get("telecom") or []
                  if t.get("system") == "phone"), "")  # fmt: skip
    try:
        born = dt.date.fromisoformat(str(patient.get("birthDate")))
    except ValueError:
        raise ProviderError("EHR patient has no full birth date", retryable=False) from None
    return Patient(
        patient_id=str(patient["id"]),
        given_name=" ".join(str(g) for g in chosen.get("given") or []).strip(),
        family_name=str(chosen.get("family") or "").strip(),
        birth_date=born,
        phone=str(phone),
    )


# -- appointments ------------------------------------------------------------------------------


def appointment_resource(
    *, slot: Mapping[str, Any], patient_id: str, practitioner: str, role: str,
    appointment_type: str, booking: str,
) -> Json:  # fmt: skip
    """A booked Appointment for ``slot``: its times, the patient, the practitioner and
    their role at the clinic, the type, and the booking's identifier."""
    data: Json = {
        "identifier": [{"system": BOOKING_SYSTEM, "value": booking}],
        "status": "booked",
        "serviceType": [
            {"coding": [{"system": APPOINTMENT_TYPE_SYSTEM, "code": appointment_type}]}
        ],
        "start": instant(parse_instant(slot.get("start"))),
        "end": instant(parse_instant(slot.get("end"))),
        "slot": [{"reference": f"Slot/{slot['id']}"}],
        "participant": [
            {"actor": {"reference": f"Patient/{patient_id}"}, "status": "accepted"},
            {"actor": {"reference": practitioner}, "status": "accepted"},
            {"actor": {"reference": role}, "status": "accepted"},
        ],
    }
    return model_json(FhirAppointment, data)


def participant_id(appointment: Mapping[str, Any], resource_type: str) -> str | None:
    """The id of the first participant of this type (``Patient``, ``PractitionerRole``)."""
    for participant in appointment.get("participant") or []:
        found = ref_id(participant.get("actor"), resource_type)
        if found is not None:
            return found
    return None


def appointment_of(
    appointment: Mapping[str, Any], *, provider_id: str, tz: ZoneInfo
) -> Appointment:
    """The domain's appointment; the type is our ``serviceType`` code (else the first code)."""
    codes = [c for concept in appointment.get("serviceType") or [] for c in _codings(concept)]
    ours = [c for c in codes if c.get("system") == APPOINTMENT_TYPE_SYSTEM] or codes
    slots: Sequence[Any] = appointment.get("slot") or []
    return Appointment(
        appointment_id=str(appointment["id"]),
        patient_id=participant_id(appointment, "Patient") or "",
        provider_id=provider_id,
        appointment_type=str(ours[0].get("code", "")) if ours else "",
        slot_id=(ref_id(slots[0], "Slot") or "") if slots else "",
        start=parse_instant(appointment.get("start")).astimezone(tz),
        status=str(appointment.get("status", "")),
    )


def _codings(concept: object) -> list[Json]:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return [dict(c) for c in codings or [] if isinstance(c, Mapping)]
