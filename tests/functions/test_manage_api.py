"""The admin API, driven through its registered functions with azure-functions objects.

Behind the functions everything is real: the embedded SQLite store and EHR the
Functions app's runtime opens, and Entra ID tokens checked by PyJWT against a
loopback tenant (``tests/admin/entra.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
import yaml

from functions import manage, runtime
from reddytalk.admin.auth import CLINIC_ADMIN_ROLE, OPERATOR_ROLE
from reddytalk.clinics.config import clinic_to_yaml
from reddytalk.ports import AuditEvent, CallRecord, CallStore, Message
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic
from reddytalk.scheduling.model import EhrConnection
from tests.admin.entra import AUDIENCE, OTHER_KEY, TENANT, Entra, loopback_entra, token

ALICE = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"  # ClinicAdmin of clinic A (the demo clinic)
BOB = "1c2d3e4f-5061-4728-8394-a5b6c7d8e9f1"  # ClinicAdmin of clinic B
A, B = DEMO_CLINIC_ID, "other-clinic"
CALLER = "+15555550123"
LOCAL = "local-admin-token-" + "x" * 30
T0 = dt.datetime(2026, 3, 2, 15, 0, tzinfo=dt.UTC)


def _functions() -> dict[str, Callable[..., Awaitable[func.HttpResponse]]]:
    # A FunctionApp of our own: the host's app may be indexed once per process.
    app = func.FunctionApp()
    app.register_functions(manage.bp)
    return {f.get_function_name(): f.get_user_function() for f in app.get_functions()}


FUNCTIONS = _functions()
ROUTES = {  # function: its route template under /api/
    "manage_clinics": "manage/clinics",
    "manage_clinic": "manage/clinics/{clinic_id}",
    "manage_calls": "manage/clinics/{clinic_id}/calls",
    "manage_call": "manage/clinics/{clinic_id}/calls/{call_id}",
    "manage_call_audit": "manage/clinics/{clinic_id}/calls/{call_id}/audit",
    "manage_messages": "manage/clinics/{clinic_id}/messages",
    "manage_message_done": "manage/clinics/{clinic_id}/messages/{message_id}/done",
    "manage_softphone": "manage/clinics/{clinic_id}/softphone",
    "manage_appointments": "manage/clinics/{clinic_id}/appointments",
}


def clinic_b() -> Any:
    return dataclasses.replace(
        demo_clinic(), clinic_id=B, name="Other Clinic", phone_number="+15550100300",
        other_phone_numbers=(), staff_phone_number="+15550100399", admins=(BOB,),
    )  # fmt: skip


@dataclass
class Api:
    store: CallStore

    async def send(
        self,
        name: str,
        method: str = "GET",
        *,
        auth: str | None,
        body: bytes = b"",
        params: dict[str, str] | None = None,
        **route: str,
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {auth}"} if auth is not None else {}
        url = "https://fn.example/api/" + ROUTES[name].format(**route)
        request = func.HttpRequest(
            method, url, headers=headers, params=params or {}, route_params=route, body=body
        )
        response = await FUNCTIONS[name](request)
        text = response.get_body().decode()
        if response.mimetype == "application/json" and text:
            return response.status_code, json.loads(text)
        return response.status_code, text

    async def snapshot(self) -> Any:
        """What a refused request must leave as it was."""
        return (
            await self.store.list_clinics(),
            [await self.store.list_messages(c) for c in (A, B)],
            [await self.store.audit_trail(c) for c in ("call-a", "call-b", A, B)],
        )


async def _seed(store: CallStore) -> None:
    await store.save_clinic(dataclasses.replace(demo_clinic(), admins=(ALICE,)))
    await store.save_clinic(clinic_b())
    for call_id, clinic_id in (("call-a", A), ("call-b", B)):
        await store.save_call(
            CallRecord(
                call_id=call_id, clinic_id=clinic_id, started_at=T0,
                ended_at=T0 + dt.timedelta(seconds=95), outcome="booked",
                transcript=(("caller", "I'd like a checkup"), ("receptionist", "Sure.")),
                tool_calls=({"name": "find_slots", "arguments": {}, "result": {}},),
                turn_timings=({"turn": 1, "caller_speech_end_ms": 1000.0,
                               "turn_end_decided_ms": 1400.0, "first_frame_sent_ms": 1650.5,
                               "first_content_sent_ms": 1890.0, "tier": "deterministic",
                               "was_interrupted": False},),
            )
        )  # fmt: skip
        await store.save_call_number(call_id, clinic_id, party="caller", number=CALLER)
        await store.save_message(
            Message(f"{call_id}:1", call_id, clinic_id, T0, "Please call me back", "Robert")
        )


@pytest.fixture
def entra() -> Iterator[Entra]:
    with loopback_entra() as tenant:
        yield tenant


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, entra: Entra) -> Callable[..., None]:
    """Run a scenario against the functions, with the given admin settings."""

    def run_scenario(scenario: Callable[[Api], Awaitable[None]], **settings: str) -> None:
        env = {
            "REDDYTALK_DATA_DIR": str(tmp_path),
            # Call control is built with the runtime but never reached by the admin API.
            "REDDYTALK_ACS_CONNECTION_STRING": "endpoint=https://127.0.0.1:9/;accesskey=a2V5",
            "REDDYTALK_ACS_RESOURCE_ID": "acs-resource",
            "REDDYTALK_ADMIN_TENANT_ID": TENANT,
            "REDDYTALK_ADMIN_AUDIENCE": AUDIENCE,
            "REDDYTALK_ADMIN_OPENID_CONFIG_URL": entra.config_url,
            **settings,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)

        async def main() -> None:
            try:
                rt = await runtime.runtime()
                await _seed(rt.store)
                await scenario(Api(rt.store))
            finally:
                await runtime.reset()

        asyncio.run(main())

    return run_scenario


OPERATOR = token(roles=(OPERATOR_ROLE,))


def _clinic_a_admin() -> str:
    return token(roles=(CLINIC_ADMIN_ROLE,), oid=ALICE)


def _new_clinic(**changes: Any) -> bytes:
    clinic = dataclasses.replace(
        demo_clinic(), clinic_id="new-clinic", name="New Clinic", phone_number="+15550100400",
        other_phone_numbers=(), staff_phone_number="+15550100499",
    )  # fmt: skip
    return clinic_to_yaml(dataclasses.replace(clinic, **changes)).encode()


BAD_TOKENS = {
    "malformed": "not.a-token",
    "expired": token(roles=(OPERATOR_ROLE,), exp=int(time.time()) - 600),
    "audience": token(roles=(OPERATOR_ROLE,), aud="api://another"),
    "issuer": token(roles=(OPERATOR_ROLE,), iss="https://sts.windows.net/x/"),
    "alg-none": "eyJhbGciOiJub25lIiwia2lkIjoiazEifQ.eyJyb2xlcyI6WyJSZWRkeVRhbGsuT3BlcmF0b3IiXX0.",
    "signature": token(roles=(OPERATOR_ROLE,), key=OTHER_KEY),
    "kid": token(roles=(OPERATOR_ROLE,), kid="k9"),
}


async def _every_kind_of_request(api: Api, auth: str | None) -> list[int]:
    return [
        (await api.send("manage_clinics", auth=auth))[0],
        (await api.send("manage_clinic", auth=auth, clinic_id=B))[0],
        (
            await api.send(
                "manage_clinic", "PUT", auth=auth, body=_new_clinic(), clinic_id="new-clinic"
            )
        )[0],  # fmt: skip
        (await api.send("manage_clinic", "DELETE", auth=auth, clinic_id=B))[0],
        (await api.send("manage_calls", auth=auth, clinic_id=B))[0],
        (await api.send("manage_call", auth=auth, clinic_id=B, call_id="call-b"))[0],
        (await api.send("manage_call_audit", auth=auth, clinic_id=B, call_id="call-b"))[0],
        (await api.send("manage_messages", auth=auth, clinic_id=B))[0],
        (
            await api.send(
                "manage_message_done", "POST", auth=auth, clinic_id=B, message_id="call-b:1"
            )
        )[0],  # fmt: skip
        (await api.send("manage_softphone", "POST", auth=auth, clinic_id=B))[0],
        (await api.send("manage_appointments", auth=auth, clinic_id=B))[0],
    ]


def test_unauthenticated_requests_are_401_and_change_nothing(run: Callable[..., None]) -> None:
    async def scenario(api: Api) -> None:
        before = await api.snapshot()
        for auth in (None, *BAD_TOKENS.values(), "Bearer-less"):
            assert set(await _every_kind_of_request(api, auth)) == {401}, auth
        status, body = await api.send("manage_clinics", auth=None)
        assert body == {"error": "unauthorized"}
        assert await api.snapshot() == before

    run(scenario)


def test_a_token_without_an_admin_role_is_403_and_changes_nothing(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        before = await api.snapshot()
        no_role = token(roles=("Some.Other",), oid=ALICE)
        assert set(await _every_kind_of_request(api, no_role)) == {403}
        assert await api.snapshot() == before

    run(scenario)


def test_a_clinic_admin_sees_their_clinic_and_nothing_of_another(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        alice = _clinic_a_admin()
        clinic = demo_clinic()
        shown = {"id": A, "name": clinic.name, "phone_numbers": list(clinic.phone_numbers),
                 "time_zone": clinic.time_zone}  # fmt: skip
        assert await api.send("manage_clinics", auth=alice) == (
            200, {"clinics": [shown], "softphone": False}
        )  # fmt: skip
        status, text = await api.send("manage_clinic", auth=alice, clinic_id=A)
        assert status == 200 and yaml.safe_load(text)["admins"] == [ALICE]

        status, listed = await api.send("manage_calls", auth=alice, clinic_id=A)
        assert status == 200
        [call] = listed["calls"]
        assert (call["call_id"], call["duration_s"], call["caller_number"]) == (
            "call-a", 95.0, "hidden"
        )  # fmt: skip
        assert call["turns"][0]["tier"] == "deterministic"
        turn = call["turns"][0]
        assert (turn["end_of_turn_ms"], turn["first_frame_ms"], turn["first_content_ms"]) == (
            400.0, 650.5, 890.0
        )  # fmt: skip
        assert "transcript" not in call

        status, messages = await api.send("manage_messages", auth=alice, clinic_id=A)
        assert status == 200
        assert [(m["message_id"], m["text"], m["status"]) for m in messages["messages"]] == [
            ("call-a:1", "Please call me back", "open")
        ]
        [viewed] = await api.store.audit_trail(A)
        assert (viewed.action, viewed.clinic_id, viewed.details) == (
            "messages.viewed", A, {"actor": ALICE}
        )  # fmt: skip
        done = await api.send("manage_message_done", "POST", auth=alice, clinic_id=A,
                              message_id="call-a:1")  # fmt: skip
        assert done == (200, {"message_id": "call-a:1", "status": "done"})
        assert [m.status for m in await api.store.list_messages(A)] == ["done"]

        before = await api.snapshot()
        refused = [
            await api.send("manage_clinic", auth=alice, clinic_id=B),
            await api.send("manage_calls", auth=alice, clinic_id=B),
            await api.send("manage_call", auth=alice, clinic_id=B, call_id="call-b"),
            await api.send("manage_call", auth=alice, clinic_id=A, call_id="call-b"),
            await api.send("manage_call_audit", auth=alice, clinic_id=A, call_id="call-b"),
            await api.send("manage_messages", auth=alice, clinic_id=B),
            await api.send("manage_message_done", "POST", auth=alice, clinic_id=B,
                           message_id="call-b:1"),
            await api.send("manage_message_done", "POST", auth=alice, clinic_id=A,
                           message_id="call-b:1"),
            await api.send("manage_softphone", "POST", auth=alice, clinic_id=B),
            await api.send("manage_appointments", auth=alice, clinic_id=B),
        ]  # fmt: skip
        assert [status for status, _ in refused] == [404] * len(refused)
        assert not any("call me back" in json.dumps(body) for _, body in refused)
        changes = [
            await api.send("manage_clinic", "PUT", auth=alice, body=_new_clinic(),
                           clinic_id="new-clinic"),
            await api.send("manage_clinic", "DELETE", auth=alice, clinic_id=A),
        ]  # fmt: skip
        assert [status for status, _ in changes] == [403, 403]
        assert await api.snapshot() == before

    run(scenario)


def test_viewing_a_call_records_who_viewed_it_and_reveals_the_caller(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        alice = _clinic_a_admin()
        status, call = await api.send("manage_call", auth=alice, clinic_id=A, call_id="call-a")
        assert status == 200
        assert call["caller_number"] == CALLER
        assert call["transcript"][0] == {"speaker": "caller", "text": "I'd like a checkup"}
        assert call["tool_calls"][0]["name"] == "find_slots"
        viewed = [e for e in await api.store.audit_trail("call-a") if e.action == "call.viewed"]
        assert viewed == [AuditEvent("call-a", A, "call.viewed", "call", viewed[0].at,
                                     {"actor": ALICE})]  # fmt: skip
        status, trail = await api.send("manage_call_audit", auth=alice, clinic_id=A,
                                       call_id="call-a")  # fmt: skip
        assert status == 200
        assert [e["action"] for e in trail["audit"]][-1] == "call.viewed"
        assert "I'd like" not in json.dumps(trail)

    run(scenario)


def test_an_operator_adds_updates_and_removes_clinics(run: Callable[..., None]) -> None:
    async def scenario(api: Api) -> None:
        put = "manage_clinic"
        added = await api.send(
            put, "PUT", auth=OPERATOR, body=_new_clinic(), clinic_id="new-clinic"
        )
        assert added == (201, {"id": "new-clinic", "added": True})
        renamed = _new_clinic(name="Renamed Clinic")
        assert (await api.send(put, "PUT", auth=OPERATOR, body=renamed, clinic_id="new-clinic"))[
            0
        ] == 200
        stored = await api.store.get_clinic("new-clinic")
        assert stored is not None and stored.name == "Renamed Clinic"
        status, listed = await api.send("manage_clinics", auth=OPERATOR)
        assert [c["id"] for c in listed["clinics"]] == sorted([A, B, "new-clinic"])

        before = await api.snapshot()
        bad = renamed.replace(b"time_zone: America/Chicago", b"time_zone: Mars/Olympus")
        status, body = await api.send(put, "PUT", auth=OPERATOR, body=bad, clinic_id="new-clinic")
        assert status == 400 and [p["field"] for p in body["problems"]] == ["time_zone"]
        status, body = await api.send(
            put, "PUT", auth=OPERATOR, body=renamed, clinic_id="elsewhere"
        )
        assert status == 400 and body["problems"][0]["field"] == "id"
        status, body = await api.send(put, "PUT", auth=OPERATOR, body=b"\xff\xfe", clinic_id="x")
        assert status == 400
        taken = _new_clinic(other_phone_numbers=("+15550100300",))  # clinic B's number
        status, body = await api.send(put, "PUT", auth=OPERATOR, body=taken, clinic_id="new-clinic")
        assert status == 409 and "+15550100300" in body["error"]
        assert await api.snapshot() == before

        await api.store.call_started("call-live", B, at=dt.datetime.now(dt.UTC))
        status, body = await api.send(put, "DELETE", auth=OPERATOR, clinic_id=B)
        assert status == 409 and await api.store.get_clinic(B) is not None
        assert await api.send(put, "DELETE", auth=OPERATOR, clinic_id="new-clinic") == (204, "")
        assert (await api.send(put, "DELETE", auth=OPERATOR, clinic_id="new-clinic"))[0] == 404
        assert (await api.send(put, auth=OPERATOR, clinic_id="new-clinic"))[0] == 404

    run(scenario)


def test_bad_paging_is_400(run: Callable[..., None]) -> None:
    async def scenario(api: Api) -> None:
        for params in ({"limit": "many"}, {"limit": "0"}, {"before": "yesterday"},
                       {"before": "2026-03-02T15:00:00"}):  # fmt: skip
            status, _ = await api.send("manage_calls", auth=OPERATOR, params=params, clinic_id=A)
            assert status == 400, params
        later = {"before": (T0 + dt.timedelta(seconds=1)).isoformat(), "limit": "1"}
        status, body = await api.send("manage_calls", auth=OPERATOR, params=later, clinic_id=A)
        assert status == 200 and [c["call_id"] for c in body["calls"]] == ["call-a"]

    run(scenario)


def test_the_local_token_is_an_operator_on_the_embedded_profile(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        status, listed = await api.send("manage_clinics", auth=LOCAL)
        assert status == 200 and len(listed["clinics"]) == 2
        status, _ = await api.send("manage_call", auth=LOCAL, clinic_id=B, call_id="call-b")
        assert status == 200
        [viewed] = [e for e in await api.store.audit_trail("call-b") if e.action == "call.viewed"]
        assert viewed.details == {"actor": "local-admin"}
        assert (await api.send("manage_clinics", auth=LOCAL[:-1] + "y"))[0] == 401
        assert (await api.send("manage_clinics", auth=OPERATOR))[0] == 401  # no tenant

    run(scenario, REDDYTALK_ADMIN_TOKEN=LOCAL, REDDYTALK_ADMIN_TENANT_ID="",
        REDDYTALK_ADMIN_AUDIENCE="")  # fmt: skip


def test_with_nothing_configured_everything_is_401(run: Callable[..., None]) -> None:
    async def scenario(api: Api) -> None:
        before = await api.snapshot()
        for auth in (None, LOCAL, OPERATOR):
            assert set(await _every_kind_of_request(api, auth)) == {401}
        assert await api.snapshot() == before

    run(scenario, REDDYTALK_ADMIN_TENANT_ID="", REDDYTALK_ADMIN_AUDIENCE="")


LINE = "ws://127.0.0.1:7099"


def test_the_softphone_dials_the_clinic_on_the_phone_line_and_names_who_placed_it(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        alice = _clinic_a_admin()
        assert (await api.send("manage_clinics", auth=alice))[1]["softphone"] is True
        status, first = await api.send("manage_softphone", "POST", auth=alice, clinic_id=A)
        assert status == 201
        call_id = first["call_id"]
        assert call_id.startswith("softphone-")
        assert first["line_url"] == f"{LINE}/calls/{call_id}?to=%2B15550100200&transcript=1"
        assert (first["sample_rate_hz"], first["participant_raw_id"]) == (16000, "softphone")
        [placed] = await api.store.audit_trail(call_id)
        assert (placed.action, placed.clinic_id, placed.resource, placed.details) == (
            "call.placed", A, "softphone", {"actor": ALICE}
        )  # fmt: skip
        _, second = await api.send("manage_softphone", "POST", auth=alice, clinic_id=A)
        assert second["call_id"] != call_id  # every call its own id

    run(scenario, REDDYTALK_SOFTPHONE_LINE_URL=LINE)


def test_without_a_phone_line_the_softphone_is_404_and_records_nothing(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        before = await api.snapshot()
        status, body = await api.send("manage_softphone", "POST", auth=OPERATOR, clinic_id=A)
        assert status == 404 and "phone line" in body["error"]
        assert await api.snapshot() == before

    run(scenario)


def test_a_clinic_admin_lists_the_appointments_its_calls_changed_with_their_calls(
    run: Callable[..., None],
) -> None:
    def change(call_id: str, clinic_id: str, what: str, ago: dt.timedelta, **more: str) -> Any:
        action = "update" if what == "cancelled" else "create"
        appointment = f"Appointment/{call_id}-appt"
        return AuditEvent(call_id, clinic_id, action, appointment, dt.datetime.now(dt.UTC) - ago,
                          {"change": what, **more})  # fmt: skip

    async def scenario(api: Api) -> None:
        for event in (  # appended as they happened
            change("call-old", A, "booked", dt.timedelta(days=40)),
            change("call-a", A, "booked", dt.timedelta(days=2)),
            change("call-c", A, "moved", dt.timedelta(hours=1)),
            change("call-a", A, "cancelled", dt.timedelta(hours=1),
                   moved_to="Appointment/call-c-appt"),  # fmt: skip
            change("call-b", B, "booked", dt.timedelta(hours=2)),
        ):
            await api.store.record_audit(event)
        alice = _clinic_a_admin()

        status, body = await api.send("manage_appointments", auth=alice, clinic_id=A)
        assert status == 200
        assert [(a["change"], a["appointment_id"], a["moved_to"], a["call_id"])
                for a in body["appointments"]] == [
            ("cancelled", "call-a-appt", "call-c-appt", "call-a"),
            ("moved", "call-c-appt", None, "call-c"),
            ("booked", "call-a-appt", None, "call-a"),
        ]  # fmt: skip
        status, body = await api.send(
            "manage_appointments", auth=alice, clinic_id=A, params={"days": "366"}
        )
        assert [a["call_id"] for a in body["appointments"]][-1] == "call-old"
        for bad in ("0", "367", "-1", "x", "1.5"):
            status, _ = await api.send(
                "manage_appointments", auth=alice, clinic_id=A, params={"days": bad}
            )
            assert status == 400, bad
        assert [e.action for e in await api.store.audit_trail(A)] == []  # opens no PHI

    run(scenario)


def test_a_clinic_on_the_embedded_schedule_is_400_on_a_fhir_deployment_and_changes_nothing(
    run: Callable[..., None],
) -> None:
    async def scenario(api: Api) -> None:
        before = await api.snapshot()
        status, body = await api.send(
            "manage_clinic", "PUT", auth=OPERATOR, body=_new_clinic(ehr=EhrConnection()),
            clinic_id="new-clinic",
        )  # fmt: skip
        assert status == 400
        assert [p["field"] for p in body["problems"]] == ["ehr.kind"]
        assert "keeps no schedule of its own" in body["problems"][0]["message"]
        assert await api.snapshot() == before
        own = EhrConnection("fhir", "https://fhir.other.example.org/r4", "other-secret")
        status, _ = await api.send(
            "manage_clinic", "PUT", auth=OPERATOR, body=_new_clinic(ehr=own),
            clinic_id="new-clinic",
        )  # fmt: skip
        assert status == 201  # its own FHIR server: its calls go there

    run(scenario, REDDYTALK_EHR="fhir", REDDYTALK_FHIR_BASE_URL="https://fhir.example.org/r4")
