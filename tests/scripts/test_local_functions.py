"""The local Functions host serves function_app.app over real HTTP, as the Azure host would.

Everything is on loopback: Event Grid posts and ACS callbacks come in over HTTP, the
functions' Durable client talks to the host's Durable API stand-in, the orchestrations
run their activities through the app's registered activity functions, and Call
Automation is the local ACS (``scripts/local_acs.py``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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
from reddytalk.composition import open_embedded_records
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic, seed_demo
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.settings import Settings
from reddytalk.workflows import booking

CALLER = "+15555550123"
MEDIA_URL = "wss://reddytalk-media.example"
EVENT_GRID = "/runtime/webhooks/EventGrid"


@dataclass
class Stack:
    acs: LocalAcs
    host: LocalFunctionsHost
    http: aiohttp.ClientSession
    store: SqliteStore
    ehr: EmbeddedEhr

    @property
    def client(self) -> df.DurableOrchestrationClient:
        return df.DurableOrchestrationClient(self.host.client_binding)

    async def post_event_grid(
        self, function: str, events: list[dict[str, Any]], kind: str = "Notification"
    ) -> aiohttp.ClientResponse:
        async with self.http.post(
            f"{self.host.url}{EVENT_GRID}",
            params={"functionName": function},
            json=events,
            headers={"aeg-event-type": kind},
        ) as response:
            await response.read()
            return response

    async def post_callbacks(self, *events: dict[str, Any]) -> int:
        headers = {"Authorization": f"Bearer {self.acs.sign()}"}
        url = f"{self.host.url}/api/call_events"
        async with self.http.post(url, json=list(events), headers=headers) as response:
            return response.status

    async def ring(self) -> str:
        event = self.acs.incoming_call_event(
            to_number=DEMO_PHONE_NUMBER, from_number=CALLER, correlation_id=str(uuid.uuid4())
        )
        response = await self.post_event_grid("incoming_call", [event])
        assert response.status == 200
        return str(event["data"]["correlationId"])

    async def until_done(self, instance_id: str, timeout_s: float = 5.0) -> Any:
        async with asyncio.timeout(timeout_s):
            while True:
                status = await self.client.get_status(instance_id)
                if status.runtime_status in (df.OrchestrationRuntimeStatus.Completed,
                                             df.OrchestrationRuntimeStatus.Failed):  # fmt: skip
                    return status
                await asyncio.sleep(0.02)


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def run_stack(
    tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Callable[[Stack], Awaitable[None]]], None]]:
    """Run a scenario against function_app.app served by the local host."""
    today = dt.datetime.now(demo_clinic().tz).date()
    with open_embedded_records(Settings(data_dir=tmp_path)) as records:

        def run(scenario: Callable[[Stack], Awaitable[None]]) -> None:
            async def main() -> None:
                store, ehr = records.store, records.ehr
                await seed_demo(store, ehr, today=today)
                async with LocalAcs(tls) as acs:
                    for name, value in {
                        **functions_environment(acs, tmp_path),
                        "REDDYTALK_PUBLIC_MEDIA_URL": MEDIA_URL,
                    }.items():
                        monkeypatch.setenv(name, value)
                    try:
                        async with (
                            LocalFunctionsHost(app) as host,
                            aiohttp.ClientSession() as http,
                        ):
                            monkeypatch.setenv("REDDYTALK_PUBLIC_FUNCTIONS_URL", host.url)
                            await scenario(Stack(acs, host, http, store, ehr))
                    finally:
                        await runtime.reset()
                        await http_utils._close_session()  # the Durable client's session

            asyncio.run(main())

        yield run


def test_healthz_answers_ok(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        async with stack.http.get(f"{stack.host.url}/api/healthz") as response:
            assert (response.status, await response.text()) == (200, "ok")
            assert response.content_type == "text/plain"

    run_stack(scenario)


def test_the_event_grid_handshake_is_answered_by_the_host(
    run_stack: Callable[..., None], caplog: pytest.LogCaptureFixture
) -> None:
    async def scenario(stack: Stack) -> None:
        validation = {
            "id": str(uuid.uuid4()),
            "topic": "/subscriptions/x/resourceGroups/local",
            "subject": "",
            "data": {"validationCode": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"},
            "eventType": "Microsoft.EventGrid.SubscriptionValidationEvent",
            "eventTime": "2026-11-25T10:00:00.1234567Z",
            "dataVersion": "1",
        }
        async with stack.http.post(
            f"{stack.host.url}{EVENT_GRID}?functionName=incoming_call",
            json=[validation],
            headers={"aeg-event-type": "SubscriptionValidation"},
        ) as response:
            assert response.status == 200
            assert await response.json() == {
                "validationResponse": "512d38b6-c7b8-40c8-89fe-f46f9e9622b6"
            }

    run_stack(scenario)
    # the function never saw the handshake (it would have logged ignoring its event type)
    assert [r.getMessage() for r in caplog.records if r.name.startswith("functions.")] == []


def test_an_incoming_call_is_answered_and_its_session_runs(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id = await stack.ring()
        [answered] = stack.acs.answered
        assert answered.correlation_id == call_id
        assert answered.callback_uri == f"{stack.host.url}/api/call_events"
        status = await stack.client.get_status(call_id)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Running
        assert (status.name, status.instance_id) == ("call_session", call_id)
        assert status.input_ == {"call_id": call_id, "clinic_id": DEMO_CLINIC_ID}

    run_stack(scenario)


def test_signed_callbacks_drive_the_session_to_its_end(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        call_id = await stack.ring()
        connection = stack.acs.answered[0].call_connection_id
        for name in ("CallConnected", "CallDisconnected"):
            event = stack.acs.callback_event(
                name, correlation_id=call_id, call_connection_id=connection
            )
            assert await stack.post_callbacks(event) == 200
        status = await stack.until_done(call_id)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
        assert status.output == {"outcome": "completed"}
        record = await stack.store.get_call(call_id)  # written by the finish_call activity
        assert record is not None
        assert (record.clinic_id, record.outcome) == (DEMO_CLINIC_ID, "completed")
        with pytest.raises(Exception, match="gone"):  # 410: the instance completed
            await stack.client.raise_event(call_id, "CallDisconnected", {})

    run_stack(scenario)


def test_a_booking_orchestration_books_once_per_instance_id(
    run_stack: Callable[..., None],
) -> None:
    async def scenario(stack: Stack) -> None:
        now = dt.datetime.now(dt.UTC)
        slot = (await stack.ehr.find_free_slots(
            clinic_id=DEMO_CLINIC_ID, start=now + dt.timedelta(days=1),
            end=now + dt.timedelta(days=8), provider_id=None,
        ))[0]  # fmt: skip
        robert = await stack.ehr.find_patient(
            clinic_id=DEMO_CLINIC_ID, given_name="Robert", family_name="Taylor",
            birth_date=dt.date(1980, 3, 15),
        )  # fmt: skip
        assert robert is not None
        data = {"call_id": "call-1", "clinic_id": DEMO_CLINIC_ID, "slot_id": slot.slot_id,
                "patient_id": robert.patient_id, "appointment_type": "checkup"}  # fmt: skip
        instance = booking.instance_id(booking.BOOK_APPOINTMENT, "call-1", slot.slot_id)
        assert await stack.client.start_new("book_appointment", instance, data) == instance
        status = await stack.until_done(instance)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Completed
        assert status.output["status"] == "booked"
        assert status.output["appointment"]["slot_id"] == slot.slot_id

        # the same request again (here even with another input): the first instance answers
        retry = {**data, "appointment_type": "follow-up"}
        assert await stack.client.start_new("book_appointment", instance, retry) == instance
        again = await stack.until_done(instance)
        assert (again.input_, again.output) == (data, status.output)
        upcoming = await stack.ehr.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=robert.patient_id, after=now
        )
        assert [a.slot_id for a in upcoming] == [slot.slot_id]
        assert len(await stack.store.audit_trail("call-1")) == 1

    run_stack(scenario)


def test_a_workflow_whose_activity_fails_ends_failed(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        data = {"call_id": "call-2", "clinic_id": DEMO_CLINIC_ID}  # no slot to hold
        instance = await stack.client.start_new("book_appointment", None, data)
        status = await stack.until_done(instance)
        assert status.runtime_status == df.OrchestrationRuntimeStatus.Failed
        assert "slot_id" in status.output

    run_stack(scenario)


def test_unknown_things_are_not_found(run_stack: Callable[..., None]) -> None:
    async def scenario(stack: Stack) -> None:
        async with stack.http.get(f"{stack.host.url}/api/no-such-function") as response:
            assert response.status == 404
        response = await stack.post_event_grid("no_such_function", [{"id": "1"}])
        assert response.status == 404
        response = await stack.post_event_grid("healthz", [{"id": "1"}])  # not Event Grid
        assert response.status == 404
        assert not await stack.client.get_status("no-such-instance")
        with pytest.raises(Exception, match="No instance"):
            await stack.client.raise_event("no-such-instance", "CallConnected", {})
        with pytest.raises(Exception, match="doesn't exist"):
            await stack.client.start_new("no_such_orchestrator", None, {})
        assert json.loads(stack.host.client_binding)["rpcBaseUrl"].startswith(stack.host.url)

    run_stack(scenario)
