"""The receptionist's tools and their guardrails, shared by every policy.

A policy (the deterministic one here, a language model later) asks for tools by
name; this layer runs them against the EHR and the store, records each call as a
:class:`ToolCall`, writes an audit record for every touch of PHI, and refuses
writes the guardrails forbid: no booking without a verified patient and the
caller's explicit yes to the read-back of that very slot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from reddytalk.errors import BookingRefused, ProviderError, SchedulingError, SlotUnavailable
from reddytalk.frames import ToolCall
from reddytalk.ports import AuditEvent, CallStore, Ehr, Workflows
from reddytalk.scheduling.model import Appointment, Clinic, Patient, Slot
from reddytalk.scheduling.offering import choose_offers, search_window
from reddytalk.workflows.activities import appointment_from_dict
from reddytalk.workflows.booking import (
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    RESCHEDULE_APPOINTMENT,
    instance_id,
)

__all__ = ["ReceptionistTools"]


class ReceptionistTools:
    """One call's tools.

    Args:
        clinic: The clinic the call is for.
        ehr: The clinic's schedule and patients (reads).
        store: ReddyTalk's records (audit).
        workflows: Runs the writes (book, reschedule, cancel) as workflows, which
            hold, write, record and compensate; the guardrails stay here.
        call_id: The call, for audit records and idempotency keys.
        clock: Current time (aware).
    """

    def __init__(
        self,
        *,
        clinic: Clinic,
        ehr: Ehr,
        store: CallStore,
        workflows: Workflows,
        call_id: str,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.clinic = clinic
        self._ehr = ehr
        self._store = store
        self._workflows = workflows
        self._call_id = call_id
        self._clock = clock
        self.calls: list[ToolCall] = []
        self.patient: Patient | None = None
        self._read_back: tuple[str, str] | None = None
        self._confirmed: tuple[str, str] | None = None
        self.outcome = "no_action"

    def now(self) -> dt.datetime:
        """The current time."""
        return self._clock()

    def _record(self, name: str, arguments: dict[str, Any], result: dict[str, Any]) -> ToolCall:
        call = ToolCall(name, arguments, result)
        self.calls.append(call)
        return call

    async def _audit(self, action: str, resource: str, **details: str) -> None:
        await self._store.record_audit(
            AuditEvent(
                call_id=self._call_id,
                clinic_id=self.clinic.clinic_id,
                action=action,
                resource=resource,
                at=self._clock(),
                details=details,
            )
        )

    async def verify_identity(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> ToolCall:
        """Match the caller to a patient by name and date of birth."""
        patient = await self._ehr.find_patient(
            clinic_id=self.clinic.clinic_id,
            given_name=given_name,
            family_name=family_name,
            birth_date=birth_date,
        )
        await self._audit("search", "Patient", matched=str(patient is not None))
        self.patient = patient
        return self._record(
            "verify_identity",
            {"given_name": "[phi]", "family_name": "[phi]", "birth_date": "[phi]"},
            {"verified": patient is not None},
        )

    async def register_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> ToolCall:
        """Register the caller as a new patient; they count as verified for this call."""
        patient = await self._ehr.create_patient(
            clinic_id=self.clinic.clinic_id,
            given_name=given_name,
            family_name=family_name,
            birth_date=birth_date,
        )
        await self._audit("create", f"Patient/{patient.patient_id}")
        self.patient = patient
        return self._record("register_patient", {"name": "[phi]"}, {"registered": True})

    async def find_slots(
        self,
        *,
        day: dt.date | None,
        part_of_day: str | None,
        clock_time: dt.time | None,
        provider_id: str | None,
        limit: int = 3,
    ) -> tuple[ToolCall, list[Slot]]:
        """Up to ``limit`` free slots for a request; raises TimeNotBookable with a reason."""
        window = search_window(
            self.clinic, day=day, part_of_day=part_of_day, clock_time=clock_time, now=self.now()
        )
        free = await self._ehr.find_free_slots(
            clinic_id=self.clinic.clinic_id,
            start=window.start,
            end=window.end,
            provider_id=provider_id,
        )
        offers = choose_offers(free, window, limit=limit)
        call = self._record(
            "find_slots",
            {
                "day": day.isoformat() if day else None,
                "part_of_day": part_of_day,
                "time": clock_time.isoformat() if clock_time else None,
                "provider_id": provider_id,
            },
            {"slots": [s.slot_id for s in offers]},
        )
        return call, offers

    def note_read_back(self, slot: Slot, action: str) -> None:
        """The receptionist read ``slot`` back for ``action`` (book, reschedule, cancel)."""
        self._read_back = (action, slot.slot_id)
        self._confirmed = None

    def note_caller_confirmed(self) -> None:
        """The caller said a clear yes right after the read-back."""
        self._confirmed = self._read_back

    def _require(self, action: str, slot_id: str) -> Patient:
        if self.patient is None:
            raise BookingRefused("I need to confirm who you are first.")
        if self._confirmed != (action, slot_id):
            raise BookingRefused("I need you to confirm the details first.")
        return self.patient

    async def _run(self, workflow: str, target: str, **data: str) -> Appointment:
        """Run a write workflow; its appointment, or the refusal as a SchedulingError."""
        request = {"call_id": self._call_id, "clinic_id": self.clinic.clinic_id, **data}
        result = await self._workflows.run(
            workflow, instance_id=instance_id(workflow, self._call_id, target), data=request
        )
        if result["status"] == "refused":
            raise SlotUnavailable(result["reason"])
        if result["status"] == "failed":
            raise ProviderError(f"{workflow} failed", retryable=True)
        if "appointment" not in result:
            raise SchedulingError("I'm sorry, something went wrong with that appointment.")
        appointment = appointment_from_dict(result["appointment"])
        return dataclasses.replace(appointment, start=appointment.start.astimezone(self.clinic.tz))

    async def book(self, *, slot: Slot, appointment_type: str) -> tuple[ToolCall, Appointment]:
        """Book ``slot``; only after verification and a confirmed read-back of it."""
        patient = self._require("book", slot.slot_id)
        appointment = await self._run(
            BOOK_APPOINTMENT,
            slot.slot_id,
            slot_id=slot.slot_id,
            patient_id=patient.patient_id,
            appointment_type=appointment_type,
        )
        self._confirmed = None
        self.outcome = "booked"
        call = self._record(
            "book",
            {"slot_id": slot.slot_id, "appointment_type": appointment_type},
            {"appointment_id": appointment.appointment_id},
        )
        return call, appointment

    async def upcoming_appointments(self) -> tuple[ToolCall, list[Appointment]]:
        """The verified patient's upcoming appointments."""
        if self.patient is None:
            raise BookingRefused("I need to confirm who you are first.")
        found = await self._ehr.upcoming_appointments(
            patient_id=self.patient.patient_id, after=self.now()
        )
        await self._audit("search", "Appointment", count=str(len(found)))
        call = self._record(
            "upcoming_appointments", {}, {"appointments": [a.appointment_id for a in found]}
        )
        return call, found

    async def cancel(self, *, appointment: Appointment) -> ToolCall:
        """Cancel one of the verified patient's appointments after a confirmed read-back."""
        patient = self._require("cancel", appointment.slot_id)
        if appointment.patient_id != patient.patient_id:
            raise SlotUnavailable("I couldn't find that appointment.")
        target = appointment.appointment_id
        cancelled = await self._run(CANCEL_APPOINTMENT, target, appointment_id=target)
        self._confirmed = None
        self.outcome = "cancelled"
        return self._record(
            "cancel", {"appointment_id": appointment.appointment_id}, {"status": cancelled.status}
        )

    async def reschedule(
        self, *, appointment: Appointment, slot: Slot
    ) -> tuple[ToolCall, Appointment]:
        """Move an appointment: book the new slot first, then cancel the old one.

        Booking first means the caller never loses the old time if the new one
        was just taken.
        """
        patient = self._require("reschedule", slot.slot_id)
        if appointment.patient_id != patient.patient_id:
            raise SlotUnavailable("I couldn't find that appointment.")
        moved = await self._run(
            RESCHEDULE_APPOINTMENT,
            f"{appointment.appointment_id}->{slot.slot_id}",
            slot_id=slot.slot_id,
            patient_id=patient.patient_id,
            appointment_type=appointment.appointment_type,
            appointment_id=appointment.appointment_id,
        )
        self._confirmed = None
        self.outcome = "rescheduled"
        call = self._record(
            "reschedule",
            {"appointment_id": appointment.appointment_id, "slot_id": slot.slot_id},
            {"appointment_id": moved.appointment_id},
        )
        return call, moved

    def transfer_to_staff(self, *, reason: str) -> ToolCall:
        """Mark the call for transfer to a person."""
        self.outcome = f"transferred:{reason}"
        return self._record("transfer_to_staff", {"reason": reason}, {"transferred": True})

    def end_call(self) -> ToolCall:
        """Mark the call as finished by the receptionist."""
        return self._record("end_call", {}, {"ended": True})
