"""The tools API over real HTTP: per-call token → orchestration → activities → EHR.

The app is served by the local Functions host; the token is the one incoming_call
put into the media URL it answered with (read back from the local ACS's record of
the answer request), exactly what the media worker receives from ACS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import azure.durable_functions as df
import pytest
from azure.durable_functions.models.utils import http_utils
from local_acs import LocalAcs, TlsFiles, make_tls
from local_functions import LocalFunctionsHost
from local_stack import functions_environment

from function_app import app
from functions import runtime
from reddytalk.calls.call_tokens import CallTokens
from reddytalk.composition import open_embedded_records
from reddytalk.errors import BookingRefused, ProviderError
from reddytalk.ports import CallRecord, Message
from reddytalk.providers.back_office.tools_api import ToolsApi
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import (
    DEMO_CLINIC_ID,
    DEMO_PHONE_NUMBER,
    DEMO_STAFF_NUMBER,
    demo_clinic,
    seed_demo,
)
from reddytalk.scheduling.model import Slot
from reddytalk.settings import Settings
from reddytalk.workflows import booking

SECRET = "t" * 40
ROBERT = ("Robert", "Taylor", "1980-03-15")
LINDA = ("Linda", "Wilson", "1975-07-04")


@dataclass
class Stack:
    acs: LocalAcs
    host: LocalFunctionsHost
    http: aiohttp.ClientSession
    ehr: EmbeddedEhr

    async def answered_call(self) -> tuple[str, str]:
        """Ring the clinic; the call id and the tools token the media worker would get."""
        event = self.acs.incoming_call_event(
            to_number=DEMO_PHONE_NUMBER, from_number="+15555550123",
            correlation_id=str(uuid.uuid4()),
        )  # fmt: skip
        url = f"{self.host.url}/runtime/webhooks/EventGrid?functionName=incoming_call"
        async with self.http.post(url, json=[event], headers={"aeg-event-type": "Notification"}):
            pass
        answer = [r for r in self.acs.requests if r.path.endswith(":answer")][-1]
        media_url = answer.body["mediaStreamingOptions"]["transportUrl"]
        [token] = urllib.parse.parse_qs(urllib.parse.urlsplit(media_url).query)["token"]
        return event["data"]["correlationId"], token

    async def tool(self, call_id: str, tool: str, body: Any, token: str | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = f"{self.host.url}/api/calls/{call_id}/tools/{tool}"
        payload = {"data": body} if isinstance(body, bytes) else {"json": body}
        async with self.http.post(url, headers=headers, **payload) as response:
            return response.status, await response.json(content_type=None)

    async def free_slot(self) -> Slot:
        tomorrow = dt.datetime.now(demo_clinic().tz) + dt.timedelta(days=2)
        slots = await self.ehr.find_free_slots(
            clinic_id=DEMO_CLINIC_ID, start=tomorrow, end=tomorrow + dt.timedelta(days=7),
            provider_id=None,
        )  # fmt: skip
        return slots[0]

    async def identify(
        self, call_id: str, token: str, person: tuple[str, str, str] | None = None
    ) -> tuple[str, str]:
        """Identify the caller (Robert by default) through the API: id and patient token."""
        given, family, born = person or ROBERT
        body = {"given_name": given, "family_name": family, "birth_date": born}
        status, answer = await self.tool(call_id, "verify_identity", body, token)
        assert status == 200, answer
        return answer["patient"]["patient_id"], answer["patient_token"]

    async def robert(self) -> str:
        patient = await self.ehr.find_patient(
            clinic_id=DEMO_CLINIC_ID, given_name="Robert", family_name="Taylor",
            birth_date=dt.date(1980, 3, 15),
        )  # fmt: skip
        assert patient is not None
        return patient.patient_id


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def run_stack(
    tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Callable[[Stack], Awaitable[None]]], None]]:
    today = dt.datetime.now(demo_clinic().tz).date()
    with open_embedded_records(Settings(data_dir=tmp_path)) as records:

        def run(scenario: Callable[[Stack], Awaitable[None]]) -> None:
            async def main() -> None:
                store, ehr = records.store, records.ehr
                await seed_demo(store, ehr, today=today)
                async with LocalAcs(tls) as acs:
                    for name, value in {
                        **functions_environment(acs, tmp_path),
                        "REDDYTALK_PUBLIC_MEDIA_URL": "wss://media.example",
                        "REDDYTALK_TOOLS_SECRET": SECRET,
                    }.items():
                        monkeypatch.setenv(name, value)
                    try:
                        async with (
                            LocalFunctionsHost(app) as host,
                            aiohttp.ClientSession() as http,
                        ):
                            monkeypatch.setenv("REDDYTALK_PUBLIC_FUNCTIONS_URL", host.url)
                            await scenario(Stack(acs, host, http, ehr))
                    finally:
                        await runtime.reset()
                        await http_utils._close_session()

            asyncio.run(main())

        yield run


def test_booking_through_the_tools_api_books_once(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()
        slot = await stack.free_slot()
        patient_id, patient_token = await stack.identify(call_id, token)
        body = {"slot_id": slot.slot_id, "patient_id": patient_id, "appointment_type": "checkup",
                "patient_token": patient_token}  # fmt: skip
        status, first = await stack.tool(call_id, "book", body, token)
        assert status == 200, first
        assert first["status"] == "booked"
        assert first["appointment"]["slot_id"] == slot.slot_id
        again = await stack.tool(call_id, "book", body, token)  # a retried request
        assert again == (200, first)
        upcoming = await stack.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=patient_id, after=dt.datetime.now(dt.UTC)
        )
        assert [a.slot_id for a in upcoming] == [slot.slot_id]

        cancel = {"appointment_id": first["appointment"]["appointment_id"],
                  "patient_id": patient_id, "patient_token": patient_token}  # fmt: skip
        status, cancelled = await stack.tool(call_id, "cancel", cancel, token)
        assert (status, cancelled["status"]) == (200, "cancelled")
        assert await stack.free_slot() == slot  # the earliest free slot again

    run_stack(scenario)


def test_a_slot_someone_else_holds_is_refused_as_data(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()
        slot = await stack.free_slot()
        patient_id, patient_token = await stack.identify(call_id, token)
        until = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
        await stack.ehr.hold(
            clinic_id=DEMO_CLINIC_ID, slot_id=slot.slot_id, hold_key="another-call", until=until
        )
        body = {"slot_id": slot.slot_id, "patient_id": patient_id, "appointment_type": "checkup",
                "patient_token": patient_token}  # fmt: skip
        assert await stack.tool(call_id, "book", body, token) == (
            200, {"status": "refused", "reason": "That time was just taken."}
        )  # fmt: skip

    run_stack(scenario)


def test_bad_requests_get_clear_errors_and_change_nothing(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()
        other = CallTokens(secret=SECRET.encode()).issue(
            call_id="another-call", clinic_id=DEMO_CLINIC_ID, now=dt.datetime.now(dt.UTC)
        )
        book = {"slot_id": "s", "patient_id": "p", "appointment_type": "checkup"}
        cases = [
            (await stack.tool(call_id, "book", book, None), 401),
            (await stack.tool(call_id, "book", book, "forged.token.value"), 401),
            (await stack.tool(call_id, "book", book, other), 403),
            (await stack.tool(call_id, "teleport", book, token), 404),
            (await stack.tool(call_id, "book", {"slot_id": "s"}, token), 400),
            (await stack.tool(call_id, "book", b"{not json", token), 400),
            (await stack.tool(call_id, "book", ["a", "list"], token), 400),
        ]
        assert [status for (status, _), _ in cases] == [expected for _, expected in cases]
        assert "patient_id" in cases[4][0][1]["error"]
        client = df.DurableOrchestrationClient(stack.host.client_binding)
        never_started = booking.instance_id(booking.BOOK_APPOINTMENT, call_id, "s")
        assert not await client.get_status(never_started)

    run_stack(scenario)


def test_the_media_workers_client_books_through_the_api(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()
        api = ToolsApi(base_url=stack.host.url)
        try:
            office = api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token=token)
            start = dt.datetime.now(dt.UTC) + dt.timedelta(days=2)
            slots = await office.find_free_slots(
                start=start, end=start + dt.timedelta(days=7), provider_id=None
            )
            assert slots[0] == await stack.free_slot()
            with pytest.raises(BookingRefused):  # nobody identified yet: not even sent
                await office.upcoming_appointments(patient_id=await stack.robert())
            patient = await office.find_patient(
                given_name="Robert", family_name="Taylor", birth_date=dt.date(1980, 3, 15)
            )
            assert patient is not None and patient.patient_id == await stack.robert()
            data = {"call_id": call_id, "clinic_id": DEMO_CLINIC_ID, "slot_id": slots[0].slot_id,
                    "patient_id": patient.patient_id, "appointment_type": "checkup"}  # fmt: skip
            instance = booking.instance_id(booking.BOOK_APPOINTMENT, call_id, slots[0].slot_id)
            result = await office.run(booking.BOOK_APPOINTMENT, instance_id=instance, data=data)
            assert result["status"] == "booked"
            assert result["appointment"]["patient_id"] == patient.patient_id
            [upcoming] = await office.upcoming_appointments(patient_id=patient.patient_id)
            assert upcoming.slot_id == slots[0].slot_id

            forged = api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token="forged")
            with pytest.raises(ProviderError) as refused:
                await forged.find_free_slots(start=start, end=start, provider_id=None)
            assert refused.value.retryable is False
            tokenless = api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token=None)
            with pytest.raises(ProviderError):
                await tokenless.find_free_slots(start=start, end=start, provider_id=None)
        finally:
            await api.close()

    run_stack(scenario)


def test_reads_messages_and_records_through_the_client(
    run_stack: Callable[..., None], tmp_path: Path
) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()
        api = ToolsApi(base_url=stack.host.url)
        try:
            office = api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token=token)
            born = dt.date(1990, 1, 2)
            first = await office.register_patient(
                given_name="Ada", family_name="Lovelace", birth_date=born
            )
            again = await office.register_patient(  # a retried request registers nobody new
                given_name="Ada", family_name="Lovelace", birth_date=born
            )
            assert again == first
            assert await office.upcoming_appointments(patient_id=first.patient_id) == []
            with pytest.raises(BookingRefused):
                await office.register_patient(
                    given_name="Ada", family_name="Lovelace",
                    birth_date=dt.date.today() + dt.timedelta(days=30),
                )  # fmt: skip
            message = Message(
                message_id=f"{call_id}:message:1", call_id=call_id, clinic_id=DEMO_CLINIC_ID,
                taken_at=dt.datetime.now(dt.UTC), text="Please call me about my refill.",
                caller_name="Ada Lovelace", patient_id=first.patient_id,
            )  # fmt: skip
            await office.take_message(message)
            await office.take_message(message)  # a retry keeps one
            record = CallRecord(
                call_id=call_id, clinic_id=DEMO_CLINIC_ID,
                started_at=dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC),
                ended_at=dt.datetime(2026, 11, 25, 15, 2, tzinfo=dt.UTC),
                outcome="message_taken", transcript=(("caller", "a refill"), ("agent", "sure")),
                tool_calls=({"name": "take_message"},), turn_timings=({"turn": 1},),
            )  # fmt: skip
            await office.keep_record(record)
        finally:
            await api.close()
        with open_embedded_records(Settings(data_dir=tmp_path)) as records:
            store = records.store
            [kept] = await store.list_messages(DEMO_CLINIC_ID)
            assert (kept.text, kept.caller_name, kept.patient_id) == (
                message.text, "Ada Lovelace", first.patient_id
            )  # fmt: skip
            assert await store.get_call(call_id) == record
            trail = [(e.action, e.resource) for e in await store.audit_trail(call_id)]
            assert ("create", f"Patient/{first.patient_id}") in trail
            assert ("create", f"Message/{message.message_id}") in trail
            assert trail.count(("create", f"Message/{message.message_id}")) == 1

    run_stack(scenario)


def test_a_call_reaches_only_the_patient_it_identified(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()
        robert, robert_token = await stack.identify(call_id, token)
        other_call, other_token = await stack.answered_call()
        linda, linda_token = await stack.identify(other_call, other_token, LINDA)
        [lindas] = (await stack.tool(other_call, "upcoming_appointments",
                                     {"patient_token": linda_token}, other_token))[1][
            "appointments"]  # fmt: skip
        slot = await stack.free_slot()
        book = {"slot_id": slot.slot_id, "appointment_type": "checkup"}
        cases = [
            # no patient token, or one of another call, for reads and writes
            (await stack.tool(call_id, "upcoming_appointments", {}, token), 403),
            (await stack.tool(call_id, "upcoming_appointments",
                              {"patient_token": linda_token}, token), 403),  # fmt: skip
            (await stack.tool(call_id, "book", {**book, "patient_id": linda,
                                                "patient_token": linda_token}, token), 403),
            (await stack.tool(call_id, "book", {**book, "patient_id": linda,
                                                "patient_token": robert_token}, token), 403),
            # Robert's call cannot cancel Linda's appointment
            (await stack.tool(call_id, "cancel", {
                "appointment_id": lindas["appointment_id"], "patient_id": robert,
                "patient_token": robert_token}, token), 403),  # fmt: skip
            (await stack.tool(call_id, "reschedule", {
                **book, "appointment_id": lindas["appointment_id"], "patient_id": robert,
                "patient_token": robert_token}, token), 403),  # fmt: skip
            (await stack.tool(call_id, "verify_identity", {"given_name": "Robert"}, token), 400),
            (await stack.tool(call_id, "verify_identity", {**dict(zip(
                ("given_name", "family_name"), ROBERT, strict=False)), "birth_date": "15/03/1980"},
                token), 400),  # fmt: skip
            (await stack.tool(call_id, "find_slots",
                              {"start": "2026-12-01T09:00:00", "end": "2026-12-02T09:00:00+00:00"},
                              token), 400),  # fmt: skip
            (await stack.tool(call_id, "find_slots",
                              {"start": "2026-12-01T09:00:00+00:00",
                               "end": "2027-06-01T09:00:00+00:00"}, token), 400),  # fmt: skip
            (await stack.tool(call_id, "take_message",
                              {"message_id": f"{other_call}:message:1", "text": "hi"}, token), 400),
            (await stack.tool(call_id, "take_message",
                              {"message_id": f"{call_id}:message:1", "text": " "}, token), 400),
            (await stack.tool(call_id, "keep_record", {"outcome": "x"}, token), 400),
        ]  # fmt: skip
        assert [status for (status, _), _ in cases] == [expected for _, expected in cases]
        assert "birth_date" in cases[7][0][1]["error"]
        assert "linda" not in str(cases).lower()  # no error echoes another patient's name
        now = dt.datetime.now(dt.UTC)
        still = await stack.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=linda, after=now
        )
        assert [a.appointment_id for a in still] == [lindas["appointment_id"]]
        assert (await stack.free_slot()) == slot  # nothing was booked
        unknown = {"given_name": "Nobody", "family_name": "Here", "birth_date": "2000-01-01"}
        assert await stack.tool(call_id, "verify_identity", unknown, token) == (
            200, {"patient": None}
        )  # fmt: skip
        assert robert != linda

    run_stack(scenario)


def test_an_unreachable_tools_api_is_a_retryable_provider_error() -> None:
    async def main() -> None:
        api = ToolsApi(base_url="http://127.0.0.1:9", timeout_s=2)
        try:
            office = api.for_call(call_id="c1", clinic_id=DEMO_CLINIC_ID, call_token="t")
            with pytest.raises(ProviderError) as failed:
                await office.find_free_slots(
                    start=dt.datetime.now(dt.UTC), end=dt.datetime.now(dt.UTC), provider_id=None
                )
            assert failed.value.retryable is True
        finally:
            await api.close()

    asyncio.run(main())


def test_end_call_and_transfer_go_through_the_calls_session(
    run_stack: Callable[..., None],
) -> None:
    async def connected(stack: Stack) -> tuple[str, str, str]:
        call_id, token = await stack.answered_call()
        connection_id = stack.acs.answered[-1].call_connection_id
        callback = stack.acs.callback_event(
            "CallConnected", correlation_id=call_id, call_connection_id=connection_id
        )
        headers = {"Authorization": f"Bearer {stack.acs.sign()}"}
        url = f"{stack.host.url}/api/call_events"
        async with stack.http.post(url, json=[callback], headers=headers) as response:
            assert response.status == 200
        return call_id, token, connection_id

    async def requests_to(stack: Stack, suffix: str) -> list[Any]:
        for _ in range(250):  # polled: the session acts from another task
            if found := [r for r in stack.acs.requests if r.path.endswith(suffix)]:
                return found
            await asyncio.sleep(0.02)
        raise AssertionError(f"ACS never got a {suffix} request")

    async def scenario(stack: Stack) -> None:
        call_id, token, connection_id = await connected(stack)
        assert await stack.tool(call_id, "end_call", {}, token) == (
            200, {"status": "requested"}
        )  # fmt: skip
        [terminate] = await requests_to(stack, ":terminate")
        assert terminate.path == f"/calling/callConnections/{connection_id}:terminate"

        call_id, token, connection_id = await connected(stack)
        status, _ = await stack.tool(call_id, "transfer_to_staff", {"reason": "emergency"}, token)
        assert status == 200
        [transfer] = await requests_to(stack, ":transferToParticipant")
        assert transfer.body["targetParticipant"]["phoneNumber"]["value"] == DEMO_STAFF_NUMBER

        assert (await stack.tool(call_id, "transfer_to_staff", {}, token))[0] == 400
        other = CallTokens(secret=SECRET.encode()).issue(
            call_id="no-such-call", clinic_id=DEMO_CLINIC_ID, now=dt.datetime.now(dt.UTC)
        )
        assert (await stack.tool("no-such-call", "end_call", {}, other))[0] == 409

    run_stack(scenario)


# -- text confirmations ------------------------------------------------------------------


async def _texts(tmp_path: Path) -> list[Any]:
    with open_embedded_records(Settings(data_dir=tmp_path)) as records:
        return await records.store.list_outbox(DEMO_CLINIC_ID)


def _outbox(tmp_path: Path) -> list[Any]:
    return asyncio.run(_texts(tmp_path))


def test_a_confirmation_is_texted_once_to_the_callers_number(
    run_stack: Callable[..., None], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(stack: Stack) -> None:
        call_id, token = await stack.answered_call()  # from +15555550123
        slot = await stack.free_slot()
        patient_id, patient_token = await stack.identify(call_id, token)
        other_call, other_token = await stack.answered_call()
        _, linda_token = await stack.identify(other_call, other_token, LINDA)
        book = {"slot_id": slot.slot_id, "patient_id": patient_id, "appointment_type": "checkup",
                "patient_token": patient_token}  # fmt: skip
        assert (await stack.tool(call_id, "book", book, token))[0] == 200
        confirm = {"change": "book", "slot_id": slot.slot_id}
        cases = [
            (await stack.tool(call_id, "send_confirmation", confirm, token), 403),
            (await stack.tool(call_id, "send_confirmation",
                              {**confirm, "patient_token": linda_token}, token), 403),
            (await stack.tool(call_id, "send_confirmation",
                              {**confirm, "change": "teleport", "patient_token": patient_token},
                              token), 400),
            (await stack.tool(call_id, "send_confirmation", {**confirm, "change": "cancel",
                              "appointment_id": "appt-never-cancelled",
                              "patient_token": patient_token}, token), 422),
            (await stack.tool(other_call, "send_confirmation",
                              {**confirm, "patient_token": linda_token}, other_token), 422),
        ]  # fmt: skip
        assert [status for (status, _), _ in cases] == [expected for _, expected in cases]
        assert cases[3][0][1] == {"error": "I haven't changed an appointment on this call."}
        assert await _texts(tmp_path) == []
        confirm["patient_token"] = patient_token
        assert await stack.tool(call_id, "send_confirmation", confirm, token) == (
            200, {"status": "sent"}
        )  # fmt: skip
        assert await stack.tool(call_id, "send_confirmation", confirm, token) == (
            200, {"status": "sent_already"}
        )  # fmt: skip

    with caplog.at_level(logging.DEBUG):
        run_stack(scenario)
    [text] = _outbox(tmp_path)
    assert text.to_number == "+15555550123"
    assert text.text.startswith("Reddy Family Clinic: your appointment with Doctor ")
    assert text.text.endswith(" is booked.")
    assert "Robert" not in text.text and "check" not in text.text.lower()
    assert "5555550123" not in caplog.text and "Reddy Family Clinic: your" not in caplog.text


def test_the_media_workers_client_texts_to_the_ehr_phone(
    run_stack: Callable[..., None], tmp_path: Path
) -> None:
    seen: dict[str, str] = {}

    async def scenario(stack: Stack) -> None:
        await stack.ehr.add_patient(
            clinic_id=DEMO_CLINIC_ID, given_name="Maria", family_name="Garcia",
            birth_date=dt.date(1985, 4, 2), phone="(555) 010-0177",
        )  # fmt: skip
        call_id, token = await stack.answered_call()
        api = ToolsApi(base_url=stack.host.url)
        try:
            office = api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token=token)
            maria = await office.find_patient(
                given_name="Maria", family_name="Garcia", birth_date=dt.date(1985, 4, 2)
            )
            assert maria is not None
            seen.update(call_id=call_id, patient_id=maria.patient_id)
            slot = await stack.free_slot()
            data = {"call_id": call_id, "clinic_id": DEMO_CLINIC_ID, "slot_id": slot.slot_id,
                    "patient_id": maria.patient_id, "appointment_type": "checkup"}  # fmt: skip
            instance = booking.instance_id(booking.BOOK_APPOINTMENT, call_id, slot.slot_id)
            with pytest.raises(BookingRefused):  # nothing booked yet: nothing to confirm
                await office.send_confirmation(
                    booking.BOOK_APPOINTMENT, instance_id=instance, data=data
                )
            result = await office.run(booking.BOOK_APPOINTMENT, instance_id=instance, data=data)
            assert result["status"] == "booked"
            sent = [
                await office.send_confirmation(
                    booking.BOOK_APPOINTMENT, instance_id=instance, data=data
                )
                for _ in range(2)
            ]
            assert sent == [True, False]
        finally:
            await api.close()

    run_stack(scenario)
    [text] = _outbox(tmp_path)
    assert text.to_number == "+15550100177"  # the EHR's phone, not the caller's
    assert asyncio.run(
        _kept_number(tmp_path, seen["call_id"], f"patient:{seen['patient_id']}")
    ) is (
        None  # read from the EHR when sent, never copied into the store
    )


async def _kept_number(tmp_path: Path, call_id: str, party: str) -> str | None:
    with open_embedded_records(Settings(data_dir=tmp_path)) as records:
        return await records.store.get_call_number(call_id, DEMO_CLINIC_ID, party=party)
