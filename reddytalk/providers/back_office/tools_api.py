"""The back office through the Functions app's tools API (the cloud profile).

The media worker holds the conversation; the Functions app holds the clinic's
records and runs the writes as Durable orchestrations, so the media worker needs
no EHR or store credentials. Each request carries the call's own token (from the
media URL ACS connected with), so the API knows the call and the clinic without
trusting the body. Identifying the caller returns a patient token, kept here
and sent with every request about that patient's appointments.

A write the API is still working on (202) is sent again: the API derives the
orchestration's instance id from the call and the request, so the repeat waits
for the same run and never books twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import aiohttp

from reddytalk.calls.tool_requests import call_record_to_dict
from reddytalk.errors import BookingRefused, ProviderError
from reddytalk.ports import CallRecord, Message
from reddytalk.scheduling.model import Appointment, Patient, Slot
from reddytalk.scheduling.wire import appointment_from_dict, patient_from_dict, slot_from_dict
from reddytalk.workflows import booking

__all__ = ["ToolsApi", "ToolsApiCallOffice"]

_TOOLS = {
    booking.BOOK_APPOINTMENT: "book",
    booking.RESCHEDULE_APPOINTMENT: "reschedule",
    booking.CANCEL_APPOINTMENT: "cancel",
}
_FIELDS = ("slot_id", "patient_id", "appointment_type", "appointment_id")
_TARGETS = ("slot_id", "appointment_id")  # what names a write's orchestration
_NOT_IDENTIFIED = "I need to confirm who you are first."


class ToolsApiCallOffice:
    """One call's :class:`reddytalk.ports.CallOffice` over the tools API."""

    def __init__(self, *, api: ToolsApi, call_id: str, call_token: str | None) -> None:
        self._api = api
        self._call_id = call_id
        self._call_token = call_token
        self._patient_tokens: dict[str, str] = {}

    async def _post(self, tool: str, body: dict[str, Any]) -> dict[str, Any]:
        if self._call_token is None:
            raise ProviderError("this call has no tools token", retryable=False)
        return await self._api.post(self._call_id, tool, body, self._call_token)

    def _patient_token(self, patient_id: str) -> str:
        token = self._patient_tokens.get(patient_id)
        if token is None:
            raise BookingRefused(_NOT_IDENTIFIED)
        return token

    async def _identify(self, tool: str, given: str, family: str, born: dt.date) -> Patient | None:
        body = {"given_name": given, "family_name": family, "birth_date": born.isoformat()}
        answer = await self._post(tool, body)
        if answer.get("patient") is None:
            return None
        try:
            patient = patient_from_dict(answer["patient"])
            self._patient_tokens[patient.patient_id] = str(answer["patient_token"])
        except (KeyError, TypeError, ValueError):
            raise ProviderError(
                f"tools API answered {tool} with a malformed patient", retryable=False
            ) from None
        return patient

    async def find_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        return await self._identify("verify_identity", given_name, family_name, birth_date)

    async def register_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        patient = await self._identify("register_patient", given_name, family_name, birth_date)
        if patient is None:
            raise ProviderError("tools API registered nobody", retryable=False)
        return patient

    async def find_free_slots(
        self, *, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        body = {"start": start.isoformat(), "end": end.isoformat(), "provider_id": provider_id}
        answer = await self._post("find_slots", body)
        try:
            return [slot_from_dict(slot) for slot in answer["slots"]]
        except (KeyError, TypeError, ValueError):
            raise ProviderError(
                "tools API answered find_slots with malformed slots", retryable=False
            ) from None

    async def upcoming_appointments(self, *, patient_id: str) -> list[Appointment]:
        body = {"patient_token": self._patient_token(patient_id)}
        answer = await self._post("upcoming_appointments", body)
        try:
            return [appointment_from_dict(a) for a in answer["appointments"]]
        except (KeyError, TypeError, ValueError):
            raise ProviderError(
                "tools API answered with malformed appointments", retryable=False
            ) from None

    async def take_message(self, message: Message) -> None:
        body: dict[str, Any] = {
            "message_id": message.message_id,
            "text": message.text,
            "caller_name": message.caller_name or None,
        }
        if message.patient_id is not None:
            body["patient_token"] = self._patient_token(message.patient_id)
        await self._post("take_message", body)

    async def keep_record(self, record: CallRecord) -> None:
        await self._post("keep_record", call_record_to_dict(record))

    async def run(self, name: str, *, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """POST the write; the workflow's result.

        Raises:
            BookingRefused: The patient was not identified in this call.
            ProviderError: The API refused (not retryable) or could not answer in
                time (retryable); the policy hands the caller to staff.
        """
        tool = _TOOLS.get(name)
        if tool is None:
            raise ProviderError(f"no tool runs workflow {name}", retryable=False)
        body = {k: data[k] for k in _FIELDS if k in data}
        body["patient_token"] = self._patient_token(str(data.get("patient_id")))
        return await self._post(tool, body)

    async def send_confirmation(self, name: str, *, instance_id: str, data: dict[str, Any]) -> bool:
        """POST ``send_confirmation`` for the write ``name`` ran with ``data``; whether
        this request sent the text (False: sent already).

        The API finds the write's orchestration from the change and its target, as it
        did for the write; no number or text is sent from here.

        Raises:
            BookingRefused: The patient was not identified, or the API refused with a
                reason the caller can hear (no such change, no number to text).
            ProviderError: The text could not be sent.
        """
        tool = _TOOLS.get(name)
        if tool is None:
            raise ProviderError(f"no tool runs workflow {name}", retryable=False)
        body: dict[str, Any] = {k: data[k] for k in _TARGETS if k in data}
        body["change"] = tool
        body["patient_token"] = self._patient_token(str(data.get("patient_id")))
        answer = await self._post("send_confirmation", body)
        return answer.get("status") == "sent"

    async def end_call(self, *, transfer_reason: str | None) -> None:
        """Ask the call's session to hang up, or to transfer to staff."""
        if transfer_reason is None:
            await self._post("end_call", {})
        else:
            await self._post("transfer_to_staff", {"reason": transfer_reason})


class ToolsApi:
    """The tools API of one Functions app; :meth:`for_call` gives a call's back office.

    Args:
        base_url: The Functions app's origin (``https://<app>.azurewebsites.net``).
        timeout_s: Per request; the API itself waits up to 8 s for a write.
        attempts: Requests sent for one write while the API answers 202.
    """

    def __init__(self, *, base_url: str, timeout_s: float = 10.0, attempts: int = 3) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._attempts = attempts
        self._session: aiohttp.ClientSession | None = None

    def for_call(
        self, *, call_id: str, clinic_id: str, call_token: str | None
    ) -> ToolsApiCallOffice:
        """The back office of one call, authenticated with its token (which names the
        clinic)."""
        return ToolsApiCallOffice(api=self, call_id=call_id, call_token=call_token)

    async def post(
        self, call_id: str, tool: str, body: dict[str, Any], token: str
    ) -> dict[str, Any]:
        """Send one tool request until it has a result (bounded).

        Raises:
            BookingRefused: The API refused with a reason the caller can hear (422).
            ProviderError: Any other failure; retryable for 5xx, timeouts and
                connection errors.
        """
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        url = f"{self._base_url}/api/calls/{call_id}/tools/{tool}"
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(self._attempts):
            try:
                async with self._session.post(url, json=body, headers=headers) as response:
                    status = response.status
                    payload = (
                        await response.json(content_type=None) if status in (200, 422) else None
                    )
            except (aiohttp.ClientError, TimeoutError, ValueError) as error:
                raise ProviderError(
                    f"tools API unreachable: {type(error).__name__}", retryable=True
                ) from None
            if status == 200 and isinstance(payload, dict):
                return payload
            if status == 422 and isinstance(payload, dict):
                raise BookingRefused(str(payload.get("error", "I can't do that.")))
            if status != 202:
                raise ProviderError(f"tools API answered {status}", retryable=status >= 500)
            await asyncio.sleep(0)  # still running: ask again for the same instance
        raise ProviderError("tools API did not finish in time", retryable=True)

    async def close(self) -> None:
        """Close the HTTP session."""
        if self._session is not None:
            await self._session.close()
