"""The cloud :class:`~reddytalk.ports.Ehr`: a clinic's FHIR R4 server, through fhirpy.

Mapping (systems and extension URLs live in ``fhir_mapping.py``, under one namespace):

- **Clinic** → ``Organization`` with identifier ``CLINIC_SYSTEM|<clinic id>`` and the
  ``timezone`` extension (IANA code; times are returned in that zone, UTC without it).
- **Provider** → ``Practitioner``, and a ``PractitionerRole`` (practitioner, organization =
  the clinic, identifier ``PROVIDER_SYSTEM|<provider id>``): the role is what ties a
  practitioner to one clinic, so provider ids need only be unique per clinic. Its
  ``Schedule`` has ``actor`` = [Practitioner, PractitionerRole]. A clinic's schedules
  are found through its roles (``fhir_directory.py``, cached).
- **Slot** → ``Slot`` (schedule, start, end, status). The domain's slot id is the
  Slot's logical id, so any id :meth:`FhirEhr.find_free_slots` returns can be held and
  booked. ``free`` is free; ``busy`` is booked; ``busy-tentative`` is held.
- **Hold / booking claim** → extension ``SLOT_CLAIM_URL`` on the Slot: ``key`` (SHA-256
  of the hold or booking key) and, for a hold, ``expires`` (instant). A hold whose
  ``expires`` passed counts as free everywhere; a ``busy-tentative`` slot without our
  extension is someone else's and never free.
- **Patient** → ``Patient`` with ``managingOrganization`` = the clinic (its scope) and an
  identifier ``PATIENT_IDENTITY_SYSTEM|<digest of clinic + normalized names + birth
  date>`` on the patients we register.
- **Appointment** → ``Appointment`` (status booked/cancelled, start/end from the Slot,
  ``slot``, participants Patient + Practitioner + PractitionerRole, ``serviceType``
  coding ``APPOINTMENT_TYPE_SYSTEM|<type code>``, identifier ``BOOKING_SYSTEM|<SHA-256 of
  the idempotency key>``). The domain's appointment id is its logical id; its provider
  comes from the PractitionerRole participant (else the Slot's Schedule).

Operations:

- ``find_patient``: ``Patient?organization=&birthdate=``, then the names compared here
  exactly as the embedded EHR does (casefold, NFKC, spacing). FHIR's string search is
  "starts with, case- and accent-insensitive": it cannot express that, and ``given``
  cannot match "Mary Ann" against ``given: [Mary, Ann]``. Names stay out of the URL.
  The earliest ``meta.lastUpdated`` wins when two records share an identity.
- ``get_patient``: ``Patient/{id}``, the clinic's only if its ``managingOrganization`` is
  the clinic's Organization (as ``find_patient`` scopes); 404/410 → None.
- ``create_patient``: find (so patients the clinic registered count), else a
  conditional create (``If-None-Exist: identifier=<identity>``): a retry or a race of
  ours creates one Patient. A patient registered by staff in the same instant is not
  covered (FHIR cannot match on our normalized names).
- ``find_free_slots``: ``Slot?schedule=<the clinic's or the provider's>&status=free,
  busy-tentative&start=ge<start>&start=lt<end>[&start=gt<now>]``; expired holds kept,
  others dropped; earliest first, ties by provider id (sorted here: Medplum sorts
  instants as strings and applies several sort keys last-first).
- ``hold`` / ``release`` / marking a slot busy or free: read the Slot, decide, ``PUT``
  with ``If-Match: W/"<versionId>"``; on 412 read again and decide again (a few times),
  so of two callers who pick one slot at once exactly one gets it.
- ``book``: an Appointment found by the key's identifier is returned (the same key,
  the same appointment). Else the Slot is claimed first (busy + the booking's key,
  ``If-Match``), then the Appointment is created conditionally on its identifier. If
  the create fails, the slot stays busy with our key: nobody else can book it, and a
  retry with the same key finds its own claim and finishes (no double booking, the
  retry converges). Only a definite refusal (4xx) gives the slot back.
- ``cancel``: Appointment ``cancelled`` (``If-Match``), then its Slot freed if it still
  carries this booking's claim (or no claim); cancelling a cancelled appointment frees a
  slot left busy by a failure and otherwise changes nothing.
- ``upcoming_appointments``: ``Appointment?patient=&date=gt<after>&status=booked``, the
  clinic's only.

Clinic scope: every operation names its clinic, and another clinic's slot or appointment
is treated exactly as an unknown one. A Slot is the clinic's when its Schedule is one of
the clinic's directory (cached, see ``fhir_directory.py``; the Slot is read anyway, so
the check costs no request once the directory is loaded); an Appointment is the clinic's
when its PractitionerRole (else its Slot's Schedule) is. So ``hold``, ``release`` and
``book`` of another clinic's slot, and ``cancel`` of another clinic's appointment, are
refused or do nothing before anything is written.

Errors: 409/412 → ``SlotUnavailable``; 5xx, timeouts, connection errors → retryable
``ProviderError``; other 4xx → non-retryable ``ProviderError`` (``fhir_client.py``).
Nothing here logs, and no message carries PHI. Time decisions (past, hold expiry) use
the ``now`` clock, not the server's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from reddytalk.errors import ProviderError, SchedulingError, SlotUnavailable, TimeNotBookable
from reddytalk.providers.ehr.fhir_auth import TokenProvider
from reddytalk.providers.ehr.fhir_client import FhirClient, Json, VersionConflict
from reddytalk.providers.ehr.fhir_directory import (
    ClinicDirectory,
    Directory,
    ProviderSchedule,
    matches,
)
from reddytalk.providers.ehr.fhir_mapping import (
    BOOKING_SYSTEM,
    PATIENT_IDENTITY_SYSTEM,
    Claim,
    appointment_of,
    appointment_resource,
    identity_digest,
    instant,
    is_logical_id,
    is_managed_by,
    is_offerable,
    key_digest,
    matching_name,
    parse_instant,
    participant_id,
    patient_of,
    patient_resource,
    ref_id,
    slot_of,
    version_id,
)
from reddytalk.providers.ehr.fhir_slots import SlotWriter, booking, holding, refuse_past, releasing
from reddytalk.scheduling.model import Appointment, Patient, Slot

__all__ = ["FhirEhr"]

_ATTEMPTS = 4  # reads and conditional writes of one Appointment before giving up
_NO_SLOT = "I couldn't find that time in the schedule."


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class FhirEhr:
    """The clinic's schedule and patients on a FHIR R4 server.

    Open one per process and event loop; ``close`` it at shutdown (or ``async with``).

    Args:
        base_url: The FHIR base URL (``REDDYTALK_FHIR_BASE_URL``).
        token_provider: Bearer tokens (a ``ClientCredentialsToken``); None: no auth.
        now: The clock deciding what is in the past and when holds expire.
        timeout_s: Limit on one HTTP request.
        directory_ttl_s: How long a clinic's Organization/roles/schedules are cached.
        identity_secret: Key of the patient identity digest (HMAC); empty: SHA-256.
    """

    def __init__(
        self,
        *,
        base_url: str,
        token_provider: TokenProvider | None = None,
        now: Callable[[], dt.datetime] = _utc_now,
        timeout_s: float = 10.0,
        directory_ttl_s: float = 300.0,
        identity_secret: bytes = b"",
    ) -> None:
        self.client = FhirClient(
            base_url=base_url, token_provider=token_provider, timeout_s=timeout_s
        )
        self.directory = Directory(self.client, ttl_s=directory_ttl_s)
        self.slots = SlotWriter(self.client)
        self._now = now
        self._secret = identity_secret

    def __repr__(self) -> str:
        return f"FhirEhr(base_url={self.client.url!r})"

    async def __aenter__(self) -> FhirEhr:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self.client.close()

    # -- patients ------------------------------------------------------------------------------

    async def find_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        """The clinic's patient with this name (any case, any spacing) and birth date."""
        directory = await self.directory.clinic(clinic_id)
        if directory is None:
            return None
        params = {
            "organization": f"Organization/{directory.organization_id}",
            "birthdate": birth_date.isoformat(),
        }
        found: list[tuple[str, str, Json, Json]] = []
        for patient in matches(await self.client.search("Patient", params)):
            name = matching_name(patient, given_name, family_name)
            if name is not None and patient.get("birthDate") == birth_date.isoformat():
                updated = str((patient.get("meta") or {}).get("lastUpdated", ""))
                found.append((updated, str(patient["id"]), patient, name))
        if not found:
            return None
        _, _, patient, name = min(found, key=lambda f: (f[0], f[1]))
        return patient_of(patient, name)

    async def get_patient(self, *, clinic_id: str, patient_id: str) -> Patient | None:
        """The clinic's patient with this id, or None (unknown, or another clinic's)."""
        directory = await self.directory.clinic(clinic_id)
        if directory is None or not is_logical_id(patient_id):
            return None
        patient = await self.client.read("Patient", patient_id)
        if patient is None or not is_managed_by(patient, directory.organization_id):
            return None
        return patient_of(patient)

    async def create_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        """Register a patient: the one with this identity if there is one, else a new one."""
        return await self.add_patient(
            clinic_id=clinic_id, given_name=given_name, family_name=family_name,
            birth_date=birth_date,
        )  # fmt: skip

    async def add_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date,
        phone: str = "",
    ) -> Patient:  # fmt: skip
        """The patient with this identity, registered (conditionally) if missing.

        Raises:
            ProviderError: The clinic has no Organization in the EHR.
        """
        found = await self.find_patient(
            clinic_id=clinic_id, given_name=given_name, family_name=family_name,
            birth_date=birth_date,
        )  # fmt: skip
        if found is not None:
            return found
        directory = await self.directory.clinic(clinic_id)
        if directory is None:
            raise ProviderError("the clinic has no Organization in the EHR", retryable=False)
        digest = identity_digest(
            clinic_id, given_name, family_name, birth_date, secret=self._secret
        )
        resource = patient_resource(
            organization_id=directory.organization_id, given_name=given_name,
            family_name=family_name, birth_date=birth_date, phone=phone, identity=digest,
        )  # fmt: skip
        try:
            patient, _ = await self.client.create_resource(
                resource, if_none_exist=f"identifier={PATIENT_IDENTITY_SYSTEM}|{digest}"
            )
        except VersionConflict:  # 412: several already match; the earliest is the one
            again = await self.find_patient(
                clinic_id=clinic_id, given_name=given_name, family_name=family_name,
                birth_date=birth_date,
            )  # fmt: skip
            if again is None:
                raise ProviderError("EHR patient registration conflicted", retryable=True) from None
            return again
        return patient_of(patient, matching_name(patient, given_name, family_name))

    # -- slots ---------------------------------------------------------------------------------

    async def find_free_slots(
        self, *, clinic_id: str, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        """Free slots starting in ``[start, end)`` and after now, earliest first, ties by
        provider id.

        Raises:
            ValueError: ``start`` or ``end`` is naive.
        """
        low, high, now = instant(start), instant(end), self._now()
        directory = await self.directory.clinic(clinic_id)
        schedules = [] if directory is None else [
            s for s in directory.schedules if provider_id is None or s.provider_id == provider_id
        ]  # fmt: skip
        if directory is None or not schedules or start >= end:
            return []
        by_schedule = {s.schedule_id: s for s in schedules}
        bounds = [f"ge{low}", f"lt{high}"] + ([f"gt{instant(now)}"] if now >= start else [])
        params = {
            "schedule": ",".join(f"Schedule/{schedule_id}" for schedule_id in by_schedule),
            "status": "free,busy-tentative",
            "start": bounds,
        }
        slots: list[Slot] = []
        for resource in matches(await self.client.search("Slot", params)):
            entry = by_schedule.get(ref_id(resource.get("schedule"), "Schedule") or "")
            if entry is None or not is_offerable(resource, now):
                continue
            slot = slot_of(resource, provider_id=entry.provider_id, tz=directory.tz)
            if start <= slot.start < end and slot.start > now:
                slots.append(slot)
        return sorted(slots, key=lambda s: (s.start, s.provider_id))

    async def hold(
        self, *, clinic_id: str, slot_id: str, hold_key: str, until: dt.datetime
    ) -> None:
        """Keep a free slot of the clinic for ``hold_key`` until ``until`` (again: extend it).

        Raises:
            SlotUnavailable: The slot is unknown, another clinic's, booked, or held for
                another key.
            TimeNotBookable: The slot already started.
            ValueError: ``until`` is naive.
        """
        instant(until)
        found = await self._clinic_slot(clinic_id, slot_id)
        if found is None:
            raise SlotUnavailable(_NO_SLOT)
        decide = holding(Claim(key_digest(hold_key), until), self._now())
        if await self.slots.write(slot_id, decide, current=found[0]) is None:
            raise SlotUnavailable(_NO_SLOT)

    async def release(self, *, clinic_id: str, slot_id: str, hold_key: str) -> None:
        """Drop ``hold_key``'s hold on the clinic's slot; nothing if it holds none, or if
        the slot is another clinic's."""
        found = await self._clinic_slot(clinic_id, slot_id)
        if found is not None:
            await self.slots.write(slot_id, releasing(key_digest(hold_key)), current=found[0])

    # -- appointments --------------------------------------------------------------------------

    async def book(
        self,
        *,
        clinic_id: str,
        slot_id: str,
        patient_id: str,
        appointment_type: str,
        idempotency_key: str,
    ) -> Appointment:
        """Book a free slot of the clinic; the same ``idempotency_key`` returns the same
        appointment (if the clinic made it).

        Raises:
            SlotUnavailable: The slot is taken, unknown or another clinic's (a retry of
                another clinic's booking of it too).
            TimeNotBookable: The slot already started.
            SchedulingError: The patient is unknown in the clinic.
            ValueError: ``idempotency_key`` was used before for another slot or patient.
        """
        key = key_digest(idempotency_key)
        done = await self._appointment_by_key(key)
        if done is not None:
            return await self._replay(clinic_id, done, slot_id, patient_id)
        now = self._now()
        found = await self._clinic_slot(clinic_id, slot_id)
        if found is None:
            raise SlotUnavailable(_NO_SLOT)
        slot, directory, entry = found
        refuse_past(slot, now)
        patient = await self.client.read("Patient", patient_id)
        if patient is None or not is_managed_by(patient, directory.organization_id):
            raise SchedulingError("I couldn't find your patient record.")

        try:
            claimed = await self.slots.write(slot_id, booking(key, now), current=slot)
        except SlotUnavailable:
            again = await self._appointment_by_key(key)  # the same key, racing us
            if again is None:
                raise
            return await self._replay(clinic_id, again, slot_id, patient_id)
        if claimed is None:
            raise SlotUnavailable(_NO_SLOT)
        resource = appointment_resource(
            slot=claimed, patient_id=patient_id, practitioner=entry.practitioner,
            role=f"PractitionerRole/{entry.role_id}", appointment_type=appointment_type,
            booking=key,
        )  # fmt: skip
        try:
            created, _ = await self.client.create_resource(
                resource, if_none_exist=f"identifier={BOOKING_SYSTEM}|{key}"
            )
        except ProviderError as error:
            if not error.retryable:  # refused for sure: nothing was created, give it back
                await self.slots.free(slot_id, key, unclaimed_too=False)
            raise
        return appointment_of(created, provider_id=entry.provider_id, tz=directory.tz)

    async def cancel(self, *, clinic_id: str, appointment_id: str) -> Appointment:
        """Cancel the clinic's appointment and free its slot; cancelling again changes
        nothing.

        Raises:
            SlotUnavailable: The clinic has no appointment with this id (another clinic's
                is left as it is).
            TimeNotBookable: The appointment already started.
        """
        directory = await self.directory.clinic(clinic_id)  # cached; warms the lookups below
        for _ in range(_ATTEMPTS):
            current = None
            if directory is not None and is_logical_id(appointment_id):
                current = await self.client.read("Appointment", appointment_id)
            place = None if current is None else await self._place(current)
            if current is None or place is None or place[0].clinic_id != clinic_id:
                raise SlotUnavailable("I couldn't find that appointment.")
            tz, provider_id = place[0].tz, place[1].provider_id
            if current.get("status") == "cancelled":
                await self.slots.free_booked(current, unclaimed_too=False)
                return appointment_of(current, provider_id=provider_id, tz=tz)
            if parse_instant(current.get("start")) <= self._now():
                raise TimeNotBookable("That appointment has already passed.")
            changed = {k: v for k, v in current.items() if k != "meta"} | {"status": "cancelled"}
            try:
                cancelled = await self.client.update_resource(
                    changed, version_id=version_id(current)
                )
            except VersionConflict:
                continue
            await self.slots.free_booked(cancelled, unclaimed_too=True)
            return appointment_of(cancelled, provider_id=provider_id, tz=tz)
        raise VersionConflict()

    async def get_appointment(self, appointment_id: str) -> Appointment | None:
        """An appointment in any status, or None."""
        found = await self.client.read("Appointment", appointment_id)
        return None if found is None else await self._domain_appointment(found)

    async def upcoming_appointments(
        self, *, clinic_id: str, patient_id: str, after: dt.datetime
    ) -> list[Appointment]:
        """A patient's booked appointments at the clinic starting after ``after``,
        earliest first. An appointment is the clinic's when its provider (role, else the
        Slot's Schedule) is; one of no clinic we know is left out.

        Raises:
            ValueError: ``after`` is naive.
        """
        params = {"patient": f"Patient/{patient_id}", "date": f"gt{instant(after)}",
                  "status": "booked"}  # fmt: skip
        if await self.directory.clinic(clinic_id) is None:  # cached; warms the lookups below
            return []
        found: list[Appointment] = []
        for resource in matches(await self.client.search("Appointment", params)):
            if resource.get("status") != "booked" or parse_instant(resource.get("start")) <= after:
                continue
            place = await self._place(resource)
            if place is not None and place[0].clinic_id == clinic_id:
                directory, entry = place
                found.append(appointment_of(resource, provider_id=entry.provider_id,
                                            tz=directory.tz))  # fmt: skip
        return sorted(found, key=lambda a: (a.start, a.provider_id))

    # -- helpers -------------------------------------------------------------------------------

    async def _clinic_slot(
        self, clinic_id: str, slot_id: str
    ) -> tuple[Json, ClinicDirectory, ProviderSchedule] | None:
        """The Slot with its clinic and provider, if it is one of the clinic's; None when
        it is unknown or another clinic's.

        The clinic's directory is cached (``find_free_slots`` loaded it; cold, it costs
        the three searches that spare the Schedule's tracing reads), so a slot of the
        clinic costs only the Slot's read, which the write that follows reuses. A Schedule
        missing from the clinic's directory is traced (it may be newer than the cache).
        """
        directory = await self.directory.clinic(clinic_id)
        if directory is None or not is_logical_id(slot_id):
            return None
        slot = await self.client.read("Slot", slot_id)
        if slot is None:
            return None
        schedule_id = ref_id(slot.get("schedule"), "Schedule") or ""
        entry = directory.schedule(schedule_id)
        if entry is not None:
            return slot, directory, entry
        place = await self.directory.for_schedule(schedule_id) if schedule_id else None
        if place is None or place[0].clinic_id != clinic_id:
            return None
        return slot, place[0], place[1]

    async def _appointment_by_key(self, key: str) -> Json | None:
        bundle = await self.client.search("Appointment", {"identifier": f"{BOOKING_SYSTEM}|{key}"})
        return next(iter(matches(bundle)), None)

    async def _replay(
        self, clinic_id: str, done: Json, slot_id: str, patient_id: str
    ) -> Appointment:
        slot_ids = [ref_id(reference, "Slot") for reference in done.get("slot") or []]
        if slot_id not in slot_ids or participant_id(done, "Patient") != patient_id:
            raise ValueError("idempotency key reused for a different booking")
        place = await self._place(done)
        if place is None or place[0].clinic_id != clinic_id:  # the slot is another clinic's
            raise SlotUnavailable(_NO_SLOT)
        directory, entry = place
        return appointment_of(done, provider_id=entry.provider_id, tz=directory.tz)

    async def _place(self, resource: Json) -> tuple[ClinicDirectory, ProviderSchedule] | None:
        """The clinic and provider of an Appointment: its PractitionerRole's, else its
        Slot's Schedule's; None when neither is one of a clinic we know."""
        place: tuple[ClinicDirectory, ProviderSchedule] | None = None
        role_id = participant_id(resource, "PractitionerRole")
        if role_id is not None:
            place = await self.directory.for_role(role_id)
        slot_refs = resource.get("slot") or []
        if place is None and slot_refs:
            slot = await self.client.read("Slot", ref_id(slot_refs[0], "Slot") or "")
            schedule_id = ref_id((slot or {}).get("schedule"), "Schedule")
            place = None if schedule_id is None else await self.directory.for_schedule(schedule_id)
        return place

    async def _domain_appointment(self, resource: Json) -> Appointment:
        place = await self._place(resource)
        if place is None:
            raise ProviderError(
                "EHR appointment has no provider of a known clinic", retryable=False
            )
        directory, entry = place
        return appointment_of(resource, provider_id=entry.provider_id, tz=directory.tz)
