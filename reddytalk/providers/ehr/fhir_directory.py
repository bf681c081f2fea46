"""Which FHIR resources are a clinic's, and which provider a Schedule or role is.

    Organization   identifier CLINIC_SYSTEM|<clinic id>, extension timezone (IANA code)
      └─ PractitionerRole  organization → it; identifier PROVIDER_SYSTEM|<provider id>;
         │                 practitioner → Practitioner
         └─ Schedule       actor → [Practitioner, PractitionerRole]

A clinic's directory costs three searches (Organization by identifier, its
PractitionerRoles, their Schedules) and is cached for ``ttl_s``. A Schedule or role
met cold (a slot id from another process) is traced up to its Organization with
reads, then its clinic's directory is loaded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from reddytalk.providers.ehr.fhir_client import FhirClient, Json
from reddytalk.providers.ehr.fhir_mapping import (
    CLINIC_SYSTEM,
    PROVIDER_SYSTEM,
    TIMEZONE_URL,
    identifier_value,
    ref_id,
)

__all__ = ["ClinicDirectory", "Directory", "ProviderSchedule", "matches"]

_UTC = ZoneInfo("UTC")


@dataclass(frozen=True, slots=True)
class ProviderSchedule:
    """One provider's Schedule at one clinic, with what an Appointment refers to."""

    provider_id: str
    schedule_id: str
    role_id: str
    practitioner: str
    """``Practitioner/<id>``."""


@dataclass(frozen=True, slots=True)
class ClinicDirectory:
    """A clinic's Organization, time zone and provider schedules."""

    clinic_id: str
    organization_id: str
    tz: ZoneInfo
    schedules: tuple[ProviderSchedule, ...]

    def schedule(self, schedule_id: str) -> ProviderSchedule | None:
        """The provider schedule with this Schedule id."""
        return next((s for s in self.schedules if s.schedule_id == schedule_id), None)

    def role(self, role_id: str) -> ProviderSchedule | None:
        """A provider schedule of this PractitionerRole."""
        return next((s for s in self.schedules if s.role_id == role_id), None)


class Directory:
    """Clinic directories, loaded on demand and kept for ``ttl_s`` seconds.

    Args:
        client: The FHIR client.
        ttl_s: How long a loaded directory is trusted (new schedules show after it).
        clock: Monotonic seconds.
    """

    def __init__(
        self, client: FhirClient, *, ttl_s: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._client = client
        self._ttl_s = ttl_s
        self._clock = clock
        self._clinics: dict[str, tuple[float, ClinicDirectory]] = {}
        self._clinic_of: dict[str, str] = {}  # "Schedule/x", "PractitionerRole/y", ... → clinic

    def forget(self, clinic_id: str) -> None:
        """Drop a clinic's cached directory (after its structure changed)."""
        self._clinics.pop(clinic_id, None)

    async def clinic(self, clinic_id: str) -> ClinicDirectory | None:
        """The clinic's directory; None when no Organization carries its id."""
        cached = self._clinics.get(clinic_id)
        if cached is not None and self._clock() - cached[0] < self._ttl_s:
            return cached[1]
        bundle = await self._client.search(
            "Organization", {"identifier": f"{CLINIC_SYSTEM}|{clinic_id}"}
        )
        organization = next(iter(matches(bundle)), None)
        if organization is None:
            return None  # not cached: the clinic may be onboarded any moment
        return await self._load(clinic_id, organization)

    async def for_schedule(
        self, schedule_id: str
    ) -> tuple[ClinicDirectory, ProviderSchedule] | None:
        """The clinic and provider of a Schedule; None when it is not one of ours."""
        found = await self._known(f"Schedule/{schedule_id}", lambda d: d.schedule(schedule_id))
        if found is not None:
            return found
        schedule = await self._client.read("Schedule", schedule_id)
        roles = [ref_id(actor, "PractitionerRole") for actor in (schedule or {}).get("actor") or []]
        role_id = next((r for r in roles if r is not None), None)
        if role_id is None or await self._trace_role(role_id) is None:
            return None
        return await self._known(f"Schedule/{schedule_id}", lambda d: d.schedule(schedule_id))

    async def for_role(self, role_id: str) -> tuple[ClinicDirectory, ProviderSchedule] | None:
        """The clinic and provider of a PractitionerRole."""
        found = await self._known(f"PractitionerRole/{role_id}", lambda d: d.role(role_id))
        if found is not None or await self._trace_role(role_id) is None:
            return found
        return await self._known(f"PractitionerRole/{role_id}", lambda d: d.role(role_id))

    async def _known(
        self, key: str, pick: Callable[[ClinicDirectory], ProviderSchedule | None]
    ) -> tuple[ClinicDirectory, ProviderSchedule] | None:
        clinic_id = self._clinic_of.get(key)
        directory = None if clinic_id is None else await self.clinic(clinic_id)
        entry = None if directory is None else pick(directory)
        return None if directory is None or entry is None else (directory, entry)

    async def _trace_role(self, role_id: str) -> ClinicDirectory | None:
        role = await self._client.read("PractitionerRole", role_id)
        organization_id = ref_id((role or {}).get("organization"), "Organization")
        if organization_id is None:
            return None
        organization = await self._client.read("Organization", organization_id)
        clinic_id = None if organization is None else identifier_value(organization, CLINIC_SYSTEM)
        if organization is None or clinic_id is None:
            return None
        return await self._load(clinic_id, organization)

    async def _load(self, clinic_id: str, organization: Json) -> ClinicDirectory:
        organization_id = str(organization["id"])
        roles = matches(
            await self._client.search(
                "PractitionerRole", {"organization": f"Organization/{organization_id}"}
            )
        )
        by_role = {
            str(role["id"]): role
            for role in roles
            if role.get("active", True) is not False and identifier_value(role, PROVIDER_SYSTEM)
        }
        schedules: list[ProviderSchedule] = []
        if by_role:
            actors = ",".join(f"PractitionerRole/{role_id}" for role_id in sorted(by_role))
            for schedule in matches(await self._client.search("Schedule", {"actor": actors})):
                if schedule.get("active", True) is False:
                    continue
                entry = _provider_schedule(schedule, by_role)
                if entry is not None:
                    schedules.append(entry)
        directory = ClinicDirectory(
            clinic_id=clinic_id,
            organization_id=organization_id,
            tz=_time_zone(organization),
            schedules=tuple(sorted(schedules, key=lambda s: (s.provider_id, s.schedule_id))),
        )
        self._clinics[clinic_id] = (self._clock(), directory)
        self._clinic_of[f"Organization/{organization_id}"] = clinic_id
        for entry in directory.schedules:
            self._clinic_of[f"Schedule/{entry.schedule_id}"] = clinic_id
            self._clinic_of[f"PractitionerRole/{entry.role_id}"] = clinic_id
        return directory


def _provider_schedule(schedule: Json, by_role: dict[str, Json]) -> ProviderSchedule | None:
    actors = schedule.get("actor") or []
    role_id = next((r for a in actors if (r := ref_id(a, "PractitionerRole")) in by_role), None)
    if role_id is None:
        return None
    role = by_role[role_id]
    practitioner_id = ref_id(role.get("practitioner"), "Practitioner") or next(
        (p for a in actors if (p := ref_id(a, "Practitioner")) is not None), None
    )
    provider_id = identifier_value(role, PROVIDER_SYSTEM)
    if practitioner_id is None or provider_id is None:
        return None
    return ProviderSchedule(
        provider_id=provider_id,
        schedule_id=str(schedule["id"]),
        role_id=role_id,
        practitioner=f"Practitioner/{practitioner_id}",
    )


def _time_zone(organization: Json) -> ZoneInfo:
    code = next((e.get("valueCode") for e in organization.get("extension") or []
                 if e.get("url") == TIMEZONE_URL), None)  # fmt: skip
    try:
        return ZoneInfo(str(code)) if code else _UTC
    except (ZoneInfoNotFoundError, ValueError):
        return _UTC


def matches(bundle: Json) -> list[Json]:
    """The search's matches (not what ``_include`` added)."""
    return [
        entry["resource"]
        for entry in bundle.get("entry") or []
        if (entry.get("search") or {}).get("mode", "match") == "match" and "resource" in entry
    ]
