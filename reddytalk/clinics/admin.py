"""Adding, changing and removing clinics: what ``scripts/clinic`` (and the admin API)
do with a clinic read from its configuration (:mod:`reddytalk.clinics.config`).

A clinic on the embedded EHR gets its schedule here: every provider's slots during
opening hours for the next :data:`~reddytalk.providers.seed.SEED_DAYS` days (adding
them again changes nothing, so ``update`` and each start of the local stack extend
it). A clinic on FHIR keeps its schedule in its own EHR.

Each clinic's calls reach the EHR its file names
(:mod:`reddytalk.providers.ehr.clinic_ehrs`). The one a deployment cannot reach, the
embedded schedule on a FHIR deployment (Azure keeps no schedule of its own), is refused
here with the reason (:func:`check_served`), so that no booking goes to an EHR the clinic
did not name.

Nothing here is PHI: a clinic's configuration is its public facts.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass

from reddytalk.clinics.config import ClinicConfigError
from reddytalk.ports import CallStore, Ehr
from reddytalk.providers.ehr.clinic_ehrs import ClinicEhrs
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import SEED_DAYS, clinic_slots
from reddytalk.scheduling.model import Clinic, EhrConnection
from reddytalk.settings import Settings

__all__ = [
    "ClinicExists",
    "ClinicNotFound",
    "DeploymentEhr",
    "add_clinic",
    "check_served",
    "embedded_schedule",
    "open_schedules",
    "remove_clinic",
    "update_clinic",
]

log = logging.getLogger(__name__)


class ClinicExists(ValueError):
    """``add`` of a clinic id the store already has (``update`` changes it)."""


class ClinicNotFound(LookupError):
    """``update`` or ``remove`` of a clinic id the store does not have."""


@dataclass(frozen=True, slots=True)
class DeploymentEhr:
    """The deployment's own EHR (``REDDYTALK_EHR``, ``REDDYTALK_FHIR_*``): ``embedded``, or
    ``fhir`` at ``fhir_base_url`` with the client secret named ``credentials_secret``."""

    kind: str
    fhir_base_url: str = ""
    credentials_secret: str = ""

    @classmethod
    def of(cls, settings: Settings) -> DeploymentEhr:
        if settings.ehr == "embedded":
            return cls("embedded")
        return cls("fhir", settings.fhir_base_url, settings.fhir_client_secret_name)

    @property
    def connection(self) -> EhrConnection:
        """As a clinic's file would name it."""
        if self.kind == "embedded":
            return EhrConnection()
        return EhrConnection("fhir", self.fhir_base_url, self.credentials_secret)


def check_served(clinic: Clinic, deployment: DeploymentEhr) -> None:
    """Refuse a clinic this deployment cannot reach the EHR of: a clinic on the embedded
    schedule where there is none (a FHIR deployment: Azure keeps no schedule of its own).
    A clinic on a FHIR server is reached there (:mod:`reddytalk.providers.ehr.clinic_ehrs`).

    Raises:
        ClinicConfigError: ``ehr.kind``, with what this deployment has.
    """
    if clinic.ehr.kind == "embedded" and deployment.kind != "embedded":
        raise ClinicConfigError(
            [("ehr.kind", "is 'embedded', but this deployment keeps no schedule of its own "
                          f"(its EHR is the FHIR server at {deployment.fhir_base_url}); "
                          "expected fhir, with the clinic's FHIR server")]
        )  # fmt: skip


def embedded_schedule(ehr: Ehr | None) -> EmbeddedEhr | None:
    """The embedded EHR behind ``ehr`` (the deployment's, under the per-clinic router), if
    that is what it is: where a clinic on the embedded schedule gets its slots."""
    if isinstance(ehr, ClinicEhrs):
        ehr = ehr.default
    return ehr if isinstance(ehr, EmbeddedEhr) else None


async def add_clinic(
    store: CallStore,
    clinic: Clinic,
    *,
    ehr: EmbeddedEhr | None,
    deployment: DeploymentEhr,
    now: dt.datetime,
) -> None:
    """Save a new clinic, its numbers, and (embedded EHR) its schedule.

    Raises:
        ClinicConfigError: Its EHR is not the deployment's (:func:`check_served`).
        ClinicExists: A clinic with this id is saved already.
        ValueError: One of its numbers rings another clinic (nothing saved).
    """
    check_served(clinic, deployment)
    if await store.get_clinic(clinic.clinic_id) is not None:
        raise ClinicExists(f"clinic {clinic.clinic_id!r} exists already: use update")
    await store.save_clinic(clinic)
    await _open_schedule(ehr, clinic, now=now)
    log.info("clinic added: %s", clinic.clinic_id)


async def update_clinic(
    store: CallStore,
    clinic: Clinic,
    *,
    ehr: EmbeddedEhr | None,
    deployment: DeploymentEhr,
    now: dt.datetime,
) -> None:
    """Replace a saved clinic's configuration; its numbers become exactly the new ones.

    The schedule gains the slots new hours or providers open; slots already in it keep
    their state (booked ones stay booked even outside new hours: staff move those).

    Raises:
        ClinicConfigError: Its EHR is not the deployment's (:func:`check_served`).
        ClinicNotFound: No clinic with this id.
        ValueError: One of its numbers rings another clinic (nothing changed).
    """
    check_served(clinic, deployment)
    if await store.get_clinic(clinic.clinic_id) is None:
        raise ClinicNotFound(f"no clinic {clinic.clinic_id!r}: use add")
    await store.save_clinic(clinic)
    await _open_schedule(ehr, clinic, now=now)
    log.info("clinic updated: %s", clinic.clinic_id)


async def remove_clinic(store: CallStore, clinic_id: str) -> None:
    """Remove a clinic and free its numbers; its records (calls, messages, audit) stay.

    Raises:
        ClinicNotFound: No clinic with this id.
        ClinicBusy: It has calls in progress (nothing changed).
    """
    if not await store.remove_clinic(clinic_id):
        raise ClinicNotFound(f"no clinic {clinic_id!r}")
    log.info("clinic removed: %s", clinic_id)


async def open_schedules(store: CallStore, ehr: EmbeddedEhr, *, now: dt.datetime) -> int:
    """Extend the schedule of every clinic on the embedded EHR to ``SEED_DAYS`` days from
    ``now`` (the local stack's start); how many clinics that was."""
    clinics = [c for c in await store.list_clinics() if c.ehr.kind == "embedded"]
    for clinic in clinics:
        await _open_schedule(ehr, clinic, now=now)
    return len(clinics)


async def _open_schedule(ehr: EmbeddedEhr | None, clinic: Clinic, *, now: dt.datetime) -> None:
    if ehr is None or clinic.ehr.kind != "embedded":
        return
    today = now.astimezone(clinic.tz).date()  # the clinic's day, not the server's
    await ehr.add_slots(clinic.clinic_id, clinic_slots(clinic, today=today, days=SEED_DAYS))
