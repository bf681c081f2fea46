"""Adding, changing and removing clinics: what ``scripts/clinic`` (and the admin API)
do with a clinic read from its configuration (:mod:`reddytalk.clinics.config`).

A clinic on the embedded EHR gets its schedule here: every provider's slots during
opening hours for the next :data:`~reddytalk.providers.seed.SEED_DAYS` days (adding
them again changes nothing, so ``update`` and each start of the local stack extend
it). A clinic on FHIR keeps its schedule in its own EHR.

Nothing here is PHI: a clinic's configuration is its public facts.
"""

from __future__ import annotations

import datetime as dt
import logging

from reddytalk.ports import CallStore
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import SEED_DAYS, clinic_slots
from reddytalk.scheduling.model import Clinic

__all__ = [
    "ClinicExists",
    "ClinicNotFound",
    "add_clinic",
    "open_schedules",
    "remove_clinic",
    "update_clinic",
]

log = logging.getLogger(__name__)


class ClinicExists(ValueError):
    """``add`` of a clinic id the store already has (``update`` changes it)."""


class ClinicNotFound(LookupError):
    """``update`` or ``remove`` of a clinic id the store does not have."""


async def add_clinic(
    store: CallStore, clinic: Clinic, *, ehr: EmbeddedEhr | None, now: dt.datetime
) -> None:
    """Save a new clinic, its numbers, and (embedded EHR) its schedule.

    Raises:
        ClinicExists: A clinic with this id is saved already.
        ValueError: One of its numbers rings another clinic (nothing saved).
    """
    if await store.get_clinic(clinic.clinic_id) is not None:
        raise ClinicExists(f"clinic {clinic.clinic_id!r} exists already: use update")
    await store.save_clinic(clinic)
    await _open_schedule(ehr, clinic, now=now)
    log.info("clinic added: %s", clinic.clinic_id)


async def update_clinic(
    store: CallStore, clinic: Clinic, *, ehr: EmbeddedEhr | None, now: dt.datetime
) -> None:
    """Replace a saved clinic's configuration; its numbers become exactly the new ones.

    The schedule gains the slots new hours or providers open; slots already in it keep
    their state (booked ones stay booked even outside new hours: staff move those).

    Raises:
        ClinicNotFound: No clinic with this id.
        ValueError: One of its numbers rings another clinic (nothing changed).
    """
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
