"""The receptionist's tools and their guardrails, shared by every policy.

A policy (the deterministic one here, a language model later) asks for tools by
name; this layer runs them through the call's back office (:class:`CallOffice`:
in process, or the Functions app's tools API), records each call as a
:class:`ToolCall`, and refuses writes the guardrails forbid: no booking without a
verified patient and the caller's explicit yes to the read-back of that very
slot, and no text message without the caller's yes to texting that very change.
The back office audits every touch of PHI where it happens.

A text confirmation is its own tool (``send_confirmation``) rather than a step of the
write workflows: the caller is asked after the write succeeded, and the number must
stay out of the workflows' (Durable's, unencrypted) history; see
:mod:`reddytalk.calls.confirmations`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
from typing import Any

from reddytalk.dialogue.state import snapshot
from reddytalk.errors import BookingRefused, ProviderError, SchedulingError, SlotUnavailable
from reddytalk.frames import ToolCall
from reddytalk.logs import remember_phi
from reddytalk.ports import CallOffice, Message
from reddytalk.scheduling.model import Appointment, Clinic, Patient, Slot
from reddytalk.scheduling.offering import choose_offers, search_window
from reddytalk.scheduling.wire import appointment_from_dict
from reddytalk.workflows.booking import (
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    RESCHEDULE_APPOINTMENT,
    instance_id,
)

__all__ = ["ReceptionistTools"]


@dataclasses.dataclass(frozen=True, slots=True)
class _Change:
    """The last write of the call: what a text confirmation would confirm."""

    workflow: str
    instance_id: str
    request: dict[str, str]
    appointment_id: str


class ReceptionistTools:
    """One call's tools.

    Args:
        clinic: The clinic the call is for.
        office: The call's back office: the clinic's records, and the writes (book,
            reschedule, cancel) as workflows, which hold, write, record and
            compensate; the guardrails stay here.
        call_id: The call, for idempotency keys.
        clock: Current time (aware).
    """

    def __init__(
        self,
        *,
        clinic: Clinic,
        office: CallOffice,
        call_id: str,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self.clinic = clinic
        self._office = office
        self._call_id = call_id
        self._clock = clock
        self.calls: list[ToolCall] = []
        self.patient: Patient | None = None
        self._read_back: tuple[str, str] | None = None
        self._confirmed: tuple[str, str] | None = None
        self.outcome = "no_action"
        self._messages = 0
        self._change: _Change | None = None
        self._text_consent: _Change | None = None

    def checkpoint(self) -> Callable[[], None]:
        """Remember what the tools hold for the call (the patient, a read-back, a yes);
        the result puts it back. Nothing outside the call is undone: withdraw only
        answers that called no tool."""
        return snapshot(self, shared=("clinic", "_office", "_call_id", "_clock"))

    def now(self) -> dt.datetime:
        """The current time."""
        return self._clock()

    def _record(self, name: str, arguments: dict[str, Any], result: dict[str, Any]) -> ToolCall:
        call = ToolCall(name, arguments, result)
        self.calls.append(call)
        return call

    async def verify_identity(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> ToolCall:
        """Match the caller to a patient by name and date of birth."""
        remember_phi(given_name, family_name)
        patient = await self._office.find_patient(
            given_name=given_name, family_name=family_name, birth_date=birth_date
        )
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
        remember_phi(given_name, family_name)
        patient = await self._office.register_patient(
            given_name=given_name, family_name=family_name, birth_date=birth_date
        )
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
        free = await self._office.find_free_slots(
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

    def is_confirmed(self, action: str, slot_id: str) -> bool:
        """Whether the caller said yes to the read-back of ``action`` on this slot."""
        return self._confirmed == (action, slot_id)

    def _require(self, action: str, slot_id: str) -> Patient:
        if self.patient is None:
            raise BookingRefused("I need to confirm who you are first.")
        if self._confirmed != (action, slot_id):
            raise BookingRefused("I need you to confirm the details first.")
        return self.patient

    async def _run(self, workflow: str, target: str, **data: str) -> Appointment:
        """Run a write workflow; its appointment, or the refusal as a SchedulingError."""
        request = {"call_id": self._call_id, "clinic_id": self.clinic.clinic_id, **data}
        instance = instance_id(workflow, self._call_id, target)
        result = await self._office.run(workflow, instance_id=instance, data=request)
        if result["status"] == "refused":
            raise SlotUnavailable(result["reason"])
        if result["status"] == "failed":
            raise ProviderError(f"{workflow} failed", retryable=True)
        if "appointment" not in result:
            raise SchedulingError("I'm sorry, something went wrong with that appointment.")
        appointment = appointment_from_dict(result["appointment"])
        self._change = _Change(workflow, instance, request, appointment.appointment_id)
        self._text_consent = None
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
        found = await self._office.upcoming_appointments(patient_id=self.patient.patient_id)
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
        cancelled = await self._run(
            CANCEL_APPOINTMENT, target, appointment_id=target, patient_id=patient.patient_id
        )
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

    def note_text_consent(self) -> None:
        """The caller said a clear yes to a text confirmation of the change just made."""
        self._text_consent = self._change

    async def send_confirmation(self) -> ToolCall:
        """Text a confirmation of the change just made: only after the caller's yes to
        it, and once per change (the back office picks the number and the words).

        Raises:
            BookingRefused: No change was made, or the caller did not say yes to a text.
            SchedulingError: There is no number to text (a reason the caller can hear).
            ProviderError: The text could not be sent; the appointment stands.
        """
        change = self._change
        if change is None or self._text_consent is not change:
            raise BookingRefused("I need your okay before I send a text.")
        self._text_consent = None  # one text per yes, whatever happens next
        sent = await self._office.send_confirmation(
            change.workflow, instance_id=change.instance_id, data=change.request
        )
        return self._record(
            "send_confirmation", {"appointment_id": change.appointment_id},
            {"status": "sent" if sent else "sent_already"},
        )  # fmt: skip

    async def take_message(self, *, text: str, caller_name: str = "") -> ToolCall:
        """Keep a message for the clinic's staff, with the caller's identity if known.

        ``text`` is what the caller wants passed on; ``caller_name`` what they said
        their name is, when they were not identified as a patient.
        """
        remember_phi(caller_name)
        self._messages += 1
        message = Message(
            message_id=f"{self._call_id}:message:{self._messages}",
            call_id=self._call_id,
            clinic_id=self.clinic.clinic_id,
            taken_at=self.now(),
            text=text,
            caller_name=caller_name,
            patient_id=self.patient.patient_id if self.patient else None,
        )
        await self._office.take_message(message)
        if self.outcome == "no_action":
            self.outcome = "message_taken"
        return self._record(
            "take_message", {"text": "[phi]", "caller_name": "[phi]"},
            {"message_id": message.message_id},
        )  # fmt: skip

    def transfer_to_staff(self, *, reason: str) -> ToolCall:
        """Mark the call for transfer to a person."""
        self.outcome = f"transferred:{reason}"
        return self._record("transfer_to_staff", {"reason": reason}, {"transferred": True})

    def end_call(self) -> ToolCall:
        """Mark the call as finished by the receptionist."""
        return self._record("end_call", {}, {"ended": True})
