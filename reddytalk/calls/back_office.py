"""The receptionist's back office in process: the clinic's records and the write workflows.

:class:`ClinicRecords` is one call's reads (and the two small writes that need no
workflow: registering a patient, keeping a message), each touch of PHI audited.
The Functions app's tools API serves the same class to the media worker in the
cloud; :class:`LocalBackOffice` calls it directly on the embedded profile, with
the write workflows on an :class:`InlineRunner`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from reddytalk.errors import BookingRefused, SlotUnavailable
from reddytalk.ports import AuditEvent, CallRecord, CallStore, Ehr, Message
from reddytalk.scheduling.model import Appointment, Patient, Slot
from reddytalk.workflows.call_session import HANG_UP_REQUESTED, TRANSFER_REQUESTED
from reddytalk.workflows.runner import InlineRunner

__all__ = ["MAX_SLOT_SEARCH", "ClinicRecords", "LocalBackOffice", "LocalCallOffice"]

MAX_SLOT_SEARCH = dt.timedelta(days=62)
"""The longest stretch one slot search may cover."""
_NOT_IDENTIFIED = "I need to confirm who you are first."
_LATEST_UTC_OFFSET = dt.timedelta(hours=14)
"""Kiribati's: a birth date is in the future only once it is tomorrow everywhere."""


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
        found = await self._ehr.upcoming_appointments(patient_id=patient_id, after=self._clock())
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

    def __init__(self, *, records: ClinicRecords, runner: InlineRunner, call_id: str) -> None:
        self._records = records
        self._runner = runner
        self._call_id = call_id
        self._identified: set[str] = set()

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
        return await self._runner.run(name, instance_id=instance_id, data=data)

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
    """

    def __init__(
        self,
        *,
        ehr: Ehr,
        store: CallStore,
        runner: InlineRunner,
        clock: Callable[[], dt.datetime],
    ) -> None:
        self._ehr = ehr
        self._store = store
        self.runner = runner
        self._clock = clock

    def for_call(self, *, call_id: str, clinic_id: str, call_token: str | None) -> LocalCallOffice:
        """One call's back office (no token is needed in process)."""
        records = ClinicRecords(
            ehr=self._ehr, store=self._store, clock=self._clock, call_id=call_id,
            clinic_id=clinic_id,
        )  # fmt: skip
        return LocalCallOffice(records=records, runner=self.runner, call_id=call_id)

    async def close(self) -> None:
        """Nothing to release: runs end with their callers."""
