"""What both stores share about clinics: the document, the numbers' checks, live calls.

A clinic is kept as one JSON document (:func:`clinic_to_document`), the same in SQLite
and in Cosmos DB. Keys added since the first format are read with the domain's defaults
when absent, so a document written before them still reads: ``stream_sample_rate_hz``,
``staff_phone_number``, ``languages``, ``voice_id``, ``other_phone_numbers``,
``holidays``, ``greeting``, ``after_hours``, ``ehr``, ``admins``. A clinic is not PHI: its
documents are not sealed.

A call counts as in progress from ``call_started`` to ``call_ended``, and for at most
:data:`LIVE_CALL_MAX_AGE`: a worker that crashed mid-call never ends its call, and such
a call must not keep its clinic busy forever.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from reddytalk.providers.store.sqlite_db import to_utc_iso
from reddytalk.scheduling.model import (
    AfterHours,
    AppointmentType,
    Clinic,
    EhrConnection,
    Holiday,
    OpeningHours,
    Provider,
)

__all__ = [
    "LIVE_CALL_MAX_AGE",
    "LIVE_CALL_MAX_AGE_S",
    "check_clinic_numbers",
    "clinic_from_document",
    "clinic_to_document",
    "is_e164",
    "live_since",
]

LIVE_CALL_MAX_AGE_S = 4 * 3600
"""A call that started longer ago than this (seconds) and never ended is not in progress
(far past any real call; the ``live_calls`` container's ``default_ttl``)."""

LIVE_CALL_MAX_AGE = dt.timedelta(seconds=LIVE_CALL_MAX_AGE_S)
""":data:`LIVE_CALL_MAX_AGE_S` as a duration."""

# ITU-T E.164: a plus, then up to 15 digits, the first not zero.
_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def is_e164(number: str) -> bool:
    """Whether ``number`` is an E.164 phone number, like ``+15550100200``."""
    return _E164.fullmatch(number) is not None


def check_clinic_numbers(clinic: Clinic) -> tuple[str, ...]:
    """The numbers that ring ``clinic`` (:attr:`Clinic.phone_numbers`, main first), checked.

    Raises:
        ValueError: A number is not E.164, or is listed twice (the clinic's own
            numbers, not PHI, are named).
    """
    numbers = clinic.phone_numbers
    for number in numbers:
        if not is_e164(number):
            raise ValueError(
                f"the clinic's phone number {number!r} must be E.164, like +15550100200"
            )
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        raise ValueError(f"the clinic lists the phone number {repeated[0]} more than once")
    return numbers


def live_since(now: dt.datetime) -> str:
    """The earliest start (stored UTC text) of a call still in progress at ``now``.

    Raises:
        ValueError: ``now`` is naive.
    """
    return to_utc_iso(now - LIVE_CALL_MAX_AGE)


def clinic_to_document(clinic: Clinic) -> dict[str, Any]:
    """A clinic as a JSON-ready document (the shape stored per clinic)."""
    return {
        "clinic_id": clinic.clinic_id,
        "name": clinic.name,
        "phone_number": clinic.phone_number,
        "other_phone_numbers": list(clinic.other_phone_numbers),
        "address": clinic.address,
        "time_zone": clinic.time_zone,
        "slot_minutes": clinic.slot_minutes,
        "stream_sample_rate_hz": clinic.stream_sample_rate_hz,
        "staff_phone_number": clinic.staff_phone_number,
        "languages": list(clinic.languages),
        "voice_id": clinic.voice_id,
        "greeting": clinic.greeting,
        "hours": [
            {"weekday": h.weekday, "opens": h.opens.isoformat(), "closes": h.closes.isoformat()}
            for h in clinic.hours
        ],
        "holidays": [{"day": h.day.isoformat(), "name": h.name} for h in clinic.holidays],
        "after_hours": {
            "action": clinic.after_hours.action,
            "on_call_number": clinic.after_hours.on_call_number,
        },
        "ehr": {
            "kind": clinic.ehr.kind,
            "fhir_base_url": clinic.ehr.fhir_base_url,
            "credentials_secret": clinic.ehr.credentials_secret,
        },
        "providers": [
            {
                "provider_id": p.provider_id,
                "display_name": p.display_name,
                "family_name": p.family_name,
            }
            for p in clinic.providers
        ],
        "appointment_types": [
            {
                "code": t.code,
                "display_name": t.display_name,
                "duration_min": t.duration_min,
                "spoken_names": list(t.spoken_names),
            }
            for t in clinic.appointment_types
        ],
        "admins": list(clinic.admins),
    }


def clinic_from_document(document: Mapping[str, Any]) -> Clinic:
    """The clinic a document written by :func:`clinic_to_document` describes (any
    version of it: a key it lacks takes the domain's default; keys it does not know,
    like Cosmos DB's own, are ignored)."""
    after_hours = document.get("after_hours") or {}
    ehr = document.get("ehr") or {}
    return Clinic(
        clinic_id=document["clinic_id"],
        name=document["name"],
        phone_number=document["phone_number"],
        other_phone_numbers=tuple(document.get("other_phone_numbers") or ()),
        address=document["address"],
        time_zone=document["time_zone"],
        slot_minutes=int(document["slot_minutes"]),
        stream_sample_rate_hz=int(document.get("stream_sample_rate_hz", 16_000)),
        staff_phone_number=document.get("staff_phone_number"),
        languages=tuple(document.get("languages") or ("en-US",)),
        voice_id=document.get("voice_id"),
        greeting=document.get("greeting"),
        hours=tuple(
            OpeningHours(
                weekday=int(h["weekday"]),
                opens=dt.time.fromisoformat(h["opens"]),
                closes=dt.time.fromisoformat(h["closes"]),
            )
            for h in document["hours"]
        ),
        holidays=tuple(
            Holiday(day=dt.date.fromisoformat(h["day"]), name=h.get("name", ""))
            for h in document.get("holidays") or ()
        ),
        after_hours=AfterHours(
            action=after_hours.get("action", AfterHours().action),
            on_call_number=after_hours.get("on_call_number"),
        ),
        ehr=EhrConnection(
            kind=ehr.get("kind", EhrConnection().kind),
            fhir_base_url=ehr.get("fhir_base_url"),
            credentials_secret=ehr.get("credentials_secret"),
        ),
        providers=tuple(
            Provider(
                provider_id=p["provider_id"],
                display_name=p["display_name"],
                family_name=p["family_name"],
            )
            for p in document["providers"]
        ),
        appointment_types=tuple(
            AppointmentType(
                code=t["code"],
                display_name=t["display_name"],
                duration_min=int(t["duration_min"]),
                spoken_names=tuple(t["spoken_names"]),
            )
            for t in document["appointment_types"]
        ),
        admins=tuple(document.get("admins") or ()),
    )
