"""Changing a Slot safely: read, decide, ``PUT`` with ``If-Match``, again on a conflict.

A Slot is the lock of its time: whoever writes it first (holds it, books it) wins,
because every write names the version it was decided on and the server refuses a
write on a version that is no longer current (412). The loser reads the Slot again
and decides again, seeing the winner's claim. The decisions are pure functions of the
Slot as read and the clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from reddytalk.errors import SlotUnavailable, TimeNotBookable
from reddytalk.providers.ehr.fhir_client import FhirClient, Json, VersionConflict
from reddytalk.providers.ehr.fhir_mapping import (
    BOOKING_SYSTEM,
    Claim,
    claim_of,
    identifier_value,
    is_offerable,
    parse_instant,
    ref_id,
    version_id,
    with_claim,
)

__all__ = [
    "TAKEN",
    "Decision",
    "SlotWriter",
    "booking",
    "holding",
    "refuse_past",
    "releasing",
]

TAKEN = "That time was just taken."
_ATTEMPTS = 4  # reads and conditional writes of one Slot before giving up

Decision = Callable[[Json], Json | None]
"""The Slot's next version from the Slot as read (None: leave it); may raise a refusal."""


def refuse_past(slot: Json, now: dt.datetime) -> None:
    """Raise ``TimeNotBookable`` when the slot started by ``now``."""
    if parse_instant(slot.get("start")) <= now:
        raise TimeNotBookable("That time has already passed.")


def holding(claim: Claim, now: dt.datetime) -> Decision:
    """Hold for ``claim``: a free slot (or an expired hold, or ours again: extended)."""

    def decide(slot: Json) -> Json | None:
        refuse_past(slot, now)
        current = claim_of(slot)
        ours = current is not None and current.key == claim.key
        if is_offerable(slot, now) or (slot.get("status") == "busy-tentative" and ours):
            return with_claim(slot, "busy-tentative", claim)
        raise SlotUnavailable(TAKEN)

    return decide


def releasing(key: str) -> Decision:
    """Free the slot if ``key`` holds it."""

    def decide(slot: Json) -> Json | None:
        current = claim_of(slot)
        if slot.get("status") == "busy-tentative" and current is not None and current.key == key:
            return with_claim(slot, "free", None)
        return None

    return decide


def booking(key: str, now: dt.datetime) -> Decision:
    """Mark the slot busy for booking ``key``: free, an expired hold, or held by ``key``;
    left as it is when ``key`` already booked it (an earlier try that failed after)."""

    def decide(slot: Json) -> Json | None:
        refuse_past(slot, now)
        current = claim_of(slot)
        ours = current is not None and current.key == key
        if slot.get("status") == "busy" and ours:
            return None
        if is_offerable(slot, now) or (slot.get("status") == "busy-tentative" and ours):
            return with_claim(slot, "busy", Claim(key))
        raise SlotUnavailable(TAKEN)

    return decide


class SlotWriter:
    """Writes Slots with ``If-Match`` through ``client``."""

    def __init__(self, client: FhirClient) -> None:
        self._client = client

    async def write(
        self, slot_id: str, decide: Decision, *, current: Json | None = None
    ) -> Json | None:
        """Read the Slot (unless ``current`` was just read), ``decide``, write with
        ``If-Match``; on a conflict read and decide again. The Slot as it stands after;
        None if it does not exist.

        Raises:
            VersionConflict: Still conflicting after a few tries.
        """
        for _ in range(_ATTEMPTS):
            slot, current = current or await self._client.read("Slot", slot_id), None
            if slot is None:
                return None
            changed = decide(slot)
            if changed is None:
                return slot
            try:
                return await self._client.update_resource(changed, version_id=version_id(slot))
            except VersionConflict:
                continue
        raise VersionConflict()

    async def free(self, slot_id: str, key: str | None, *, unclaimed_too: bool) -> None:
        """Free a busy slot booked by ``key`` (or by nobody we know, if ``unclaimed_too``)."""

        def decide(slot: Json) -> Json | None:
            claim = claim_of(slot)
            ours = claim is not None and key is not None and claim.key == key
            if slot.get("status") == "busy" and (ours or (claim is None and unclaimed_too)):
                return with_claim(slot, "free", None)
            return None

        await self.write(slot_id, decide)

    async def free_booked(self, appointment: Json, *, unclaimed_too: bool) -> None:
        """Free the slots of ``appointment`` its booking still claims."""
        key = identifier_value(appointment, BOOKING_SYSTEM)
        for reference in appointment.get("slot") or []:
            slot_id = ref_id(reference, "Slot")
            if slot_id is not None:
                await self.free(slot_id, key, unclaimed_too=unclaimed_too)
