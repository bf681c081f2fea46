"""The receptionist's back office in process: the clinic's records and the write workflows.

:class:`ClinicRecords` is one call's reads (and the small writes that need no
workflow: registering a patient, keeping a message, texting a confirmation), each
touch of PHI audited. The Functions app's tools API serves the same class to the
media worker in the cloud; :class:`LocalBackOffice` calls it directly on the
embedded profile, with the write workflows on an :class:`InlineRunner`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from reddytalk.calls import confirmations
from reddytalk.errors import BookingRefused, ProviderError, SchedulingError, SlotUnavailable
from reddytalk.ports import AuditEvent, CallRecord, CallStore, Ehr, Message, SmsSender
from reddytalk.scheduling.model import Appointment, Patient, Slot
from reddytalk.scheduling.wire import appointment_from_dict
from reddytalk.workflows.call_session import HANG_UP_REQUESTED, TRANSFER_REQUESTED
from reddytalk.workflows.runner import InlineRunner

__all__ = ["MAX_SLOT_SEARCH", "ClinicRecords", "LocalBackOffice", "LocalCallOffice"]

MAX_SLOT_SEARCH = dt.timedelta(days=62)
"""The longest stretch one slot search may cover."""
_NOT_IDENTIFIED = "I need to confirm who you are first."
_LATEST_UTC_OFFSET = dt.timedelta(hours=14)
"""Kiribati's: a birth date is in the future only once it is tomorrow everywhere."""
_NO_NUMBER = "I'm sorry, I don't have a number I can text."
_NOTHING_TO_CONFIRM = "I haven't changed an appointment on this call."
_CHANGED = frozenset({"booked", "rescheduled", "cancelled"})


class ClinicRecords:
    """One call's reads of its clinic's records.

    Args:
        ehr: The clinic's schedule and patients.
        store: ReddyTalk's records (audit, messages).
        clock: Current time (aware).
        call_id: The call, named in every audit record.
        clinic_id: The clinic the call is for; nothing of another clinic is reachable.
    """

    def __init__(
        self,
        *,
        ehr: Ehr,
        store: CallStore,
        clock: Callable[[], dt.datetime],
        call_id: str,
        clinic_id: str,
    ) -> None:
        self._ehr = ehr
        self._store = store
        self._clock = clock
        self._call_id = call_id
        self._clinic_id = clinic_id

    async def _audit(self, action: str, resource: str, **details: str) -> None:
        await self._store.record_audit(
            AuditEvent(
                call_id=self._call_id,
                clinic_id=self._clinic_id,
                action=action,
                resource=resource,
                at=self._clock(),
                details=details,
            )
        )

    async def find_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        """The clinic's patient with exactly this name and birth date, if any."""
        patient = await self._ehr.find_patient(
            clinic_id=self._clinic_id,
            given_name=given_name,
            family_name=family_name,
            birth_date=birth_date,
        )
        found = f"Patient/{patient.patient_id}" if patient else "Patient"
        await self._audit("search", found, matched=str(patient is not None))
        return patient

    async def register_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        """The patient with this name and birth date, created now if new.

        Raises:
            BookingRefused: The birth date is in the future.
        """
        if birth_date > (self._clock() + _LATEST_UTC_OFFSET).date():  # today anywhere on earth
            raise BookingRefused("That date of birth is in the future.")
        existing = await self._ehr.find_patient(
            clinic_id=self._clinic_id,
            given_name=given_name,
            family_name=family_name,
            birth_date=birth_date,
        )
        if existing is not None:  # a retried request, or a patient who forgot they are one
            await self._audit("search", f"Patient/{existing.patient_id}", matched="True")
            return existing
        patient = await self._ehr.create_patient(
            clinic_id=self._clinic_id,
            given_name=given_name,
            family_name=family_name,
            birth_date=birth_date,
        )
        await self._audit("create", f"Patient/{patient.patient_id}")
        return patient

    async def find_free_slots(
        self, *, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        """The clinic's free slots starting in ``[start, end)``, earliest first.

        Raises:
            ValueError: A naive time, an empty range, or one longer than
                :data:`MAX_SLOT_SEARCH`.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("start and end need a UTC offset")
        if not start < end <= start + MAX_SLOT_SEARCH:
            raise ValueError(f"the range must be non-empty and at most {MAX_SLOT_SEARCH.days} days")
        return await self._ehr.find_free_slots(
            clinic_id=self._clinic_id, start=start, end=end, provider_id=provider_id
        )

    async def upcoming_appointments(self, *, patient_id: str) -> list[Appointment]:
        """The patient's booked appointments from now on (the caller must have proved
        who they are: the caller of this class checks)."""
        found = await self._ehr.upcoming_appointments(
            clinic_id=self._clinic_id, patient_id=patient_id, after=self._clock()
        )
        await self._audit("search", f"Patient/{patient_id}/Appointment", count=str(len(found)))
        return found

    async def owns(self, *, patient_id: str, appointment_id: str) -> bool:
        """Whether ``appointment_id`` is one of the patient's upcoming appointments."""
        upcoming = await self.upcoming_appointments(patient_id=patient_id)
        return any(a.appointment_id == appointment_id for a in upcoming)

    async def take_message(self, message: Message) -> bool:
        """Keep ``message`` for staff; False if it was kept already (a retry).

        Raises:
            ValueError: The message is for another call or clinic, or has no text.
        """
        if (message.call_id, message.clinic_id) != (self._call_id, self._clinic_id):
            raise ValueError("the message is for another call")
        if not message.text.strip():
            raise ValueError("the message has no text")
        kept = await self._store.save_message(message)
        if kept:
            await self._audit("create", f"Message/{message.message_id}")
        return kept

    async def send_confirmation(
        self, *, workflow: str, appointment: Appointment, sms: SmsSender
    ) -> bool:
        """Text the patient a confirmation of what ``workflow`` did to ``appointment``
        in this call; whether this request sent it (False: an earlier one did, or was
        refused for good).

        The caller of this class checks that the call ran that write for its patient.
        The number is the patient's phone in the EHR, read now (when it is one a text
        can go to), else the number the call came from; the text is composed here.

        Raises:
            SchedulingError: There is no number to text.
            ProviderError: The text was not sent (a retryable failure gives the claim
                back, so a retry may send it).
        """
        clinic = await self._store.get_clinic(self._clinic_id)
        if clinic is None:
            raise ProviderError("the call's clinic is not in the store", retryable=False)
        text = confirmations.confirmation_text(workflow, appointment, clinic)
        key = confirmations.confirmation_key(self._call_id, workflow, appointment.appointment_id)
        if not await self._store.claim(key):
            return False
        try:
            found = await self._number_for(
                appointment.patient_id, clinic_number=clinic.phone_number
            )
            if found is None:
                raise SchedulingError(_NO_NUMBER)
        except (SchedulingError, ProviderError):
            await self._store.release(key)  # nothing was sent
            raise
        to_number, whose = found
        try:
            message_id = await sms.send(
                to_number, text, from_number=clinic.phone_number, clinic_id=self._clinic_id,
                call_id=self._call_id, idempotency_key=key,
            )  # fmt: skip
        except ProviderError as error:
            if error.retryable:
                await self._store.release(key)
            await self._audit(  # the number was read for it: the attempt is audited too
                "send_failed", f"Appointment/{appointment.appointment_id}/sms",
                number=whose, retryable=str(error.retryable),
            )  # fmt: skip
            raise
        await self._audit(
            "send", f"Sms/{message_id}", appointment=f"Appointment/{appointment.appointment_id}",
            change=confirmations.CHANGES[workflow], number=whose,
        )  # fmt: skip
        return True

    async def _number_for(self, patient_id: str, *, clinic_number: str) -> tuple[str, str] | None:
        """The number to text and whose it is (for the audit): the patient's phone in
        the EHR (what the patient gave the clinic), else the number the call came from."""
        patient = await self._ehr.get_patient(clinic_id=self._clinic_id, patient_id=patient_id)
        await self._audit("read", f"Patient/{patient_id}", found=str(patient is not None))
        if patient is not None and patient.phone:
            number = confirmations.as_e164(patient.phone, clinic_number=clinic_number)
            if number is not None:  # else not a number a text can go to
                return number, confirmations.PATIENT_PHONE
        caller = await self._store.get_call_number(
            self._call_id, self._clinic_id, party=confirmations.CALLER
        )
        return (caller, confirmations.CALLER_NUMBER) if caller else None

    async def keep_record(self, record: CallRecord) -> None:
        """Store the call's record (the conversation's account replaces a stub the
        call's session may have stored when the call ended first).

        Raises:
            ValueError: The record is for another call or clinic.
        """
        if (record.call_id, record.clinic_id) != (self._call_id, self._clinic_id):
            raise ValueError("the record is for another call")
        await self._store.save_call(record)


class LocalCallOffice:
    """One call's :class:`reddytalk.ports.CallOffice`, in process."""

    def __init__(
        self, *, records: ClinicRecords, runner: InlineRunner, call_id: str, sms: SmsSender
    ) -> None:
        self._records = records
        self._runner = runner
        self._call_id = call_id
        self._sms = sms
        self._identified: set[str] = set()
        self._changes: dict[str, tuple[str, dict[str, Any]]] = {}  # instance → write, result

    async def find_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        patient = await self._records.find_patient(
            given_name=given_name, family_name=family_name, birth_date=birth_date
        )
        if patient is not None:
            self._identified.add(patient.patient_id)
        return patient

    async def register_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        patient = await self._records.register_patient(
            given_name=given_name, family_name=family_name, birth_date=birth_date
        )
        self._identified.add(patient.patient_id)
        return patient

    async def find_free_slots(
        self, *, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        return await self._records.find_free_slots(start=start, end=end, provider_id=provider_id)

    async def upcoming_appointments(self, *, patient_id: str) -> list[Appointment]:
        if patient_id not in self._identified:
            raise BookingRefused(_NOT_IDENTIFIED)
        return await self._records.upcoming_appointments(patient_id=patient_id)

    async def take_message(self, message: Message) -> None:
        if message.patient_id is not None and message.patient_id not in self._identified:
            raise BookingRefused(_NOT_IDENTIFIED)
        await self._records.take_message(message)

    async def keep_record(self, record: CallRecord) -> None:
        await self._records.keep_record(record)

    async def run(self, name: str, *, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run a write for the patient this call identified, on their own appointment."""
        patient_id = data.get("patient_id")
        if patient_id not in self._identified:
            raise BookingRefused(_NOT_IDENTIFIED)
        appointment_id = data.get("appointment_id")
        if appointment_id is not None and not await self._records.owns(
            patient_id=patient_id, appointment_id=appointment_id
        ):
            raise SlotUnavailable("I couldn't find that appointment.")
        result = await self._runner.run(name, instance_id=instance_id, data=data)
        if result.get("status") in _CHANGED:
            self._changes[instance_id] = (name, result)
        return result

    async def send_confirmation(self, name: str, *, instance_id: str, data: dict[str, Any]) -> bool:
        """Text a confirmation of a write this office ran, for the patient it identified."""
        workflow, result = self._changes.get(instance_id, ("", {}))
        if workflow != name or "appointment" not in result:
            raise BookingRefused(_NOTHING_TO_CONFIRM)
        appointment = appointment_from_dict(result["appointment"])
        patient_id = data.get("patient_id")
        if patient_id not in self._identified or appointment.patient_id != patient_id:
            raise BookingRefused(_NOT_IDENTIFIED)
        return await self._records.send_confirmation(
            workflow=name, appointment=appointment, sms=self._sms
        )

    async def end_call(self, *, transfer_reason: str | None) -> None:
        """Tell the call's session, if it runs here; without telephony there is none."""
        if not self._runner.is_running(self._call_id):
            return
        if transfer_reason is None:
            await self._runner.raise_event(self._call_id, HANG_UP_REQUESTED, {})
        else:
            await self._runner.raise_event(
                self._call_id, TRANSFER_REQUESTED, {"reason": transfer_reason}
            )


class LocalBackOffice:
    """The embedded profile's :class:`reddytalk.ports.BackOffice`: records and workflows
    in this process.

    Args:
        ehr: The clinics' schedules and patients.
        store: ReddyTalk's records.
        runner: Runs the write workflows (and, under the local stack, call sessions).
        clock: Current time (aware).
        sms: Sends the text confirmations callers ask for (the store's outbox on the
            embedded profile).
    """

    def __init__(
        self,
        *,
        ehr: Ehr,
        store: CallStore,
        runner: InlineRunner,
        clock: Callable[[], dt.datetime],
        sms: SmsSender,
    ) -> None:
        self._ehr = ehr
        self._store = store
        self.runner = runner
        self._clock = clock
        self._sms = sms

    def for_call(self, *, call_id: str, clinic_id: str, call_token: str | None) -> LocalCallOffice:
        """One call's back office (no token is needed in process)."""
        records = ClinicRecords(
            ehr=self._ehr, store=self._store, clock=self._clock, call_id=call_id,
            clinic_id=clinic_id,
        )  # fmt: skip
        return LocalCallOffice(records=records, runner=self.runner, call_id=call_id, sms=self._sms)

    async def close(self) -> None:
        """Nothing to release: runs end with their callers."""
