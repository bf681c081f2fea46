"""The demo clinic of :mod:`reddytalk.providers.seed`, put into a FHIR server.

The same clinic, providers, slots (``clinic_slots``), busy slots, three patients and
Linda's visit as ``seed_demo`` puts in the embedded EHR, written through a
:class:`~reddytalk.providers.ehr.fhir.FhirEhr`'s client:

- Organization, Practitioners, PractitionerRoles and Schedules by conditional create
  (``If-None-Exist`` on their identifiers, a Schedule on its role), so a second run
  finds them.
- Slots: the seeded days' slots of the clinic's schedules are read once, and the
  missing ones (by schedule and start, as the embedded EHR skips a provider's existing
  start) are created in one ``batch`` Bundle. Slots already there keep their state.
  Slot ids are the server's, not the embedded seed's ``slot_<hex>``.
- Patients through ``FhirEhr.add_patient`` (find, else conditional create), and the
  visit through ``FhirEhr.book`` with the same idempotency key as ``seed_demo``.

Idempotent run after run; two seeders running at the same moment may both create a
missing slot (the batch is not conditional: a conditional create per slot costs a
search of all slots on Medplum's in-memory repository, per slot).
"""

from __future__ import annotations

import datetime as dt

from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.practitionerrole import PractitionerRole
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot as FhirSlot

from reddytalk.errors import SlotUnavailable
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_client import FhirClient, Json
from reddytalk.providers.ehr.fhir_directory import matches
from reddytalk.providers.ehr.fhir_mapping import (
    CLINIC_SYSTEM,
    PRACTITIONER_SYSTEM,
    PROVIDER_SYSTEM,
    TIMEZONE_URL,
    instant,
    model_json,
    parse_instant,
    ref_id,
)
from reddytalk.providers.seed import (
    _PATIENTS,
    _is_taken,
    _linda_visit_start,
    clinic_slots,
    demo_clinic,
)
from reddytalk.scheduling.model import Clinic, Patient, Provider, Slot

__all__ = ["seed_fhir_clinic", "seed_fhir_demo"]


async def seed_fhir_demo(ehr: FhirEhr, *, today: dt.date) -> None:
    """Seed the demo clinic into the FHIR server ``ehr`` talks to (see the module doc).

    Args:
        ehr: The FHIR EHR; its clock decides what is "upcoming" for Linda's visit check.
        today: The first seeded day, in the clinic's time zone.
    """
    clinic = demo_clinic()
    schedule_of = await seed_fhir_clinic(ehr, clinic)
    slots = clinic_slots(clinic, today=today)
    linda_start = _linda_visit_start(clinic, today)
    ids = await _add_slots(ehr.client, slots, schedule_of, linda_start)

    patients: dict[str, Patient] = {}
    for given, family, born in _PATIENTS:
        patients[given] = await ehr.add_patient(
            clinic_id=clinic.clinic_id, given_name=given, family_name=family, birth_date=born
        )
    linda = patients["Linda"]
    start_of_today = dt.datetime.combine(today, dt.time(0, 0), tzinfo=clinic.tz)
    if await ehr.upcoming_appointments(
        clinic_id=clinic.clinic_id, patient_id=linda.patient_id, after=start_of_today
    ):
        return  # seeded before: she already has her visit
    try:
        await ehr.book(
            clinic_id=clinic.clinic_id,
            slot_id=ids[(schedule_of["dr-chen"], instant(linda_start))],
            patient_id=linda.patient_id,
            appointment_type="checkup",
            idempotency_key=f"seed:{clinic.clinic_id}:{linda.patient_id}:{linda_start.date()}",
        )
    except SlotUnavailable:
        pass  # a demo call took that time since the last seeding; leave the schedule as is


async def seed_fhir_clinic(ehr: FhirEhr, clinic: Clinic) -> dict[str, str]:
    """Put a clinic's Organization and its providers' Practitioners, PractitionerRoles and
    Schedules into the FHIR server, each found if already there; the Schedule id of each
    provider id."""
    organization_id = await _ensure(
        ehr.client, model_json(Organization, _organization(clinic)),
        f"identifier={CLINIC_SYSTEM}|{clinic.clinic_id}",
    )  # fmt: skip
    schedule_of = {
        provider.provider_id: await _provider(ehr.client, clinic, provider, organization_id)
        for provider in clinic.providers
    }
    ehr.directory.forget(clinic.clinic_id)
    return schedule_of


async def _provider(client: FhirClient, clinic: Clinic, provider: Provider, org_id: str) -> str:
    """The provider's Practitioner, PractitionerRole and Schedule; the Schedule's id."""
    practitioner_id = await _ensure(
        client,
        model_json(Practitioner, {
            "identifier": [{"system": PRACTITIONER_SYSTEM,
                            "value": f"{clinic.clinic_id}/{provider.provider_id}"}],
            "active": True,
            "name": [{"family": provider.family_name, "prefix": ["Dr."],
                      "text": provider.display_name}],
        }),
        f"identifier={PRACTITIONER_SYSTEM}|{clinic.clinic_id}/{provider.provider_id}",
    )  # fmt: skip
    role_id = await _ensure(
        client,
        model_json(PractitionerRole, {
            "identifier": [{"system": PROVIDER_SYSTEM, "value": provider.provider_id}],
            "active": True,
            "practitioner": {"reference": f"Practitioner/{practitioner_id}"},
            "organization": {"reference": f"Organization/{org_id}"},
        }),
        f"identifier={PROVIDER_SYSTEM}|{provider.provider_id}&organization=Organization/{org_id}",
    )  # fmt: skip
    return await _ensure(
        client,
        model_json(Schedule, {
            "active": True,
            "actor": [{"reference": f"Practitioner/{practitioner_id}"},
                      {"reference": f"PractitionerRole/{role_id}"}],
            "comment": f"{provider.display_name} at {clinic.name}",
        }),
        f"actor=PractitionerRole/{role_id}",
    )  # fmt: skip


async def _add_slots(
    client: FhirClient, slots: list[Slot], schedule_of: dict[str, str], linda_start: dt.datetime
) -> dict[tuple[str, str], str]:
    """Create the slots not there yet; every slot's id by (schedule id, start instant)."""
    if not slots:
        return {}
    linda = ("dr-chen", instant(linda_start))
    first = min(s.start for s in slots)
    last = max(s.start for s in slots)
    bundle = await client.search("Slot", {
        "schedule": ",".join(f"Schedule/{s}" for s in schedule_of.values()),
        "start": [f"ge{instant(first)}", f"le{instant(last)}"],
    })  # fmt: skip
    ids: dict[tuple[str, str], str] = {}
    for existing in matches(bundle):
        schedule_id = ref_id(existing.get("schedule"), "Schedule") or ""
        ids[(schedule_id, instant(parse_instant(existing.get("start"))))] = str(existing["id"])
    missing = [s for s in slots if (schedule_of[s.provider_id], instant(s.start)) not in ids]
    requests = [
        {
            "resource": model_json(FhirSlot, {
                "schedule": {"reference": f"Schedule/{schedule_of[s.provider_id]}"},
                "status": "busy" if _is_taken(s) and (s.provider_id, instant(s.start)) != linda
                else "free",
                "start": instant(s.start),
                "end": instant(s.end),
            }),
            "request": {"method": "POST", "url": "Slot"},
        }
        for s in missing
    ]  # fmt: skip
    if requests:
        for slot, entry in zip(missing, await client.batch(requests), strict=True):
            created = entry.get("resource") or {}
            location = str((entry.get("response") or {}).get("location", ""))
            slot_id = created.get("id") or ref_id({"reference": location}, "Slot")
            if not slot_id:
                raise ValueError("the FHIR server did not say which Slot it created")
            ids[(schedule_of[slot.provider_id], instant(slot.start))] = str(slot_id)
    return ids


async def _ensure(client: FhirClient, resource: Json, if_none_exist: str) -> str:
    """The id of the resource matching ``if_none_exist``, created from ``resource`` if none."""
    found, _ = await client.create_resource(resource, if_none_exist=if_none_exist)
    return str(found["id"])


def _organization(clinic: Clinic) -> Json:
    return {
        "identifier": [{"system": CLINIC_SYSTEM, "value": clinic.clinic_id}],
        "active": True,
        "name": clinic.name,
        "telecom": [{"system": "phone", "value": clinic.phone_number}],
        "address": [{"text": clinic.address}],
        "extension": [{"url": TIMEZONE_URL, "valueCode": clinic.time_zone}],
    }
