"""The Functions app's call triggers, driven directly with azure-functions objects.

Functions Core Tools cannot run here, so the tests call each registered function's
user code as the host would: an ``EventGridEvent`` or an ``HttpRequest``, and the
Durable client binding as the JSON string the host passes. Everything behind the
functions is real and on loopback: the callautomation SDK talks to the local ACS
(``scripts/local_acs.py``, HTTPS), the JWT verifier fetches the local ACS's keys,
and the Durable client talks to a stand-in of the Durable extension's HTTP API
that records what it was asked and answers as the extension does (202, or 404
for an unknown instance).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from aiohttp import web
from azure.durable_functions.models.utils import http_utils
from local_acs import LocalAcs, TlsFiles, make_tls
from local_stack import functions_environment

from functions import runtime
from reddytalk.composition import open_embedded_records
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic
from reddytalk.settings import Settings
from reddytalk.workflows.activities import ACTIVITIES
from reddytalk.workflows.runner import WORKFLOWS

CALLER = "+15555550123"
FUNCTIONS_URL = "https://reddytalk-fn.example"
MEDIA_URL = "wss://reddytalk-media.example"


@dataclass
class DurableHost:
    """The Durable extension's HTTP API as the Python client uses it (``rpcBaseUrl``)."""

    timeline: list[str]
    started: dict[str, Any] = field(default_factory=dict)
    raised: list[tuple[str, str, Any]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def binding(self) -> str:
        """The durable client binding JSON the host hands the function."""
        return json.dumps({
            "taskHubName": "ReddyTalkHub",
            "creationUrls": {},
            "managementUrls": {},
            "rpcBaseUrl": f"http://127.0.0.1:{self.port}/durabletask/",
        })  # fmt: skip

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/durabletask/orchestrators/{name}/{instance}", self._start_new)
        app.router.add_post(
            "/durabletask/instances/{instance}/raiseEvent/{event}", self._raise_event
        )
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _start_new(self, request: web.Request) -> web.Response:
        instance = request.match_info["instance"]
        self.started[instance] = {
            "name": request.match_info["name"], "input": _payload(await request.read())
        }  # fmt: skip
        self.timeline.append(f"start {request.match_info['name']}")
        return web.json_response({"id": instance}, status=202)

    async def _raise_event(self, request: web.Request) -> web.Response:
        instance = request.match_info["instance"]
        if instance not in self.started:
            return web.Response(status=404)
        self.raised.append((instance, request.match_info["event"], _payload(await request.read())))
        return web.Response(status=202)


@functools.cache
def _functions() -> dict[str, Any]:
    """The app's functions as the host indexes them (the SDK allows indexing once)."""
    from function_app import app

    return {function.get_function_name(): function for function in app.get_functions()}


def _payload(body: bytes) -> Any:
    """The JSON value the client sent. It posts ``json.dumps(value)`` as a JSON string
    (serialized twice); the extension reads the inner JSON, and so does this."""
    value = json.loads(body)
    return json.loads(value) if isinstance(value, str) else value


@dataclass
class Stack:
    acs: LocalAcs
    durable: DurableHost
    timeline: list[str]
    data_dir: Path

    def function(self, name: str) -> Callable[..., Awaitable[Any]]:
        return _functions()[name].get_user_function()  # type: ignore[no-any-return]

    async def incoming_call(self, event: dict[str, Any]) -> None:
        grid_event = func.EventGridEvent(
            id=event["id"],
            data=event["data"],
            topic=event.get("topic", ""),
            subject=event.get("subject", ""),
            event_type=event["eventType"],
            event_time=dt.datetime.now(dt.UTC),
            data_version=event.get("dataVersion", "1.0"),
        )
        await self.function("incoming_call")(event=grid_event, client=self.durable.binding)

    async def call_events(self, body: bytes, token: str | None) -> func.HttpResponse:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        request = func.HttpRequest(
            method="POST", url=f"{FUNCTIONS_URL}/api/call_events", headers=headers, body=body
        )
        response = await self.function("call_events")(req=request, client=self.durable.binding)
        assert isinstance(response, func.HttpResponse)
        return response

    def answers(self) -> list[Any]:
        return [r for r in self.acs.requests if r.path == "/calling/callConnections:answer"]


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def run_stack(
    tls: TlsFiles, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[Callable[[Stack], Awaitable[None]]], Stack]]:
    """Run a scenario against the functions with a local ACS and a Durable stand-in."""
    with open_embedded_records(Settings(data_dir=tmp_path)) as records:
        asyncio.run(records.store.save_clinic(demo_clinic()))

    def run(scenario: Callable[[Stack], Awaitable[None]]) -> Stack:
        async def main() -> Stack:
            timeline: list[str] = []
            durable = DurableHost(timeline)
            async with LocalAcs(tls) as acs:
                await durable.start()
                for name, value in {
                    **functions_environment(acs, tmp_path),
                    "REDDYTALK_PUBLIC_FUNCTIONS_URL": FUNCTIONS_URL,
                    "REDDYTALK_PUBLIC_MEDIA_URL": MEDIA_URL,
                }.items():
                    monkeypatch.setenv(name, value)
                stack = Stack(acs, durable, timeline, tmp_path)
                try:
                    await scenario(stack)
                finally:
                    await runtime.reset()
                    await http_utils._close_session()  # the client's module-level session
                    await durable.stop()
            return stack

        return asyncio.run(main())

    yield run


def _ring(acs: LocalAcs, to_number: str = DEMO_PHONE_NUMBER) -> dict[str, Any]:
    return acs.incoming_call_event(
        to_number=to_number, from_number=CALLER, correlation_id=str(uuid.uuid4())
    )


# -- incoming_call ---------------------------------------------------------------------


def test_a_call_to_a_clinic_number_starts_its_session_then_answers_with_media(
    run_stack: Callable[..., Stack],
) -> None:
    event: dict[str, Any] = {}

    async def scenario(stack: Stack) -> None:
        event.update(_ring(stack.acs))
        await stack.incoming_call(event)

    stack = run_stack(scenario)
    call_id = event["data"]["correlationId"]
    session_input = {"call_id": call_id, "clinic_id": DEMO_CLINIC_ID}
    assert stack.durable.started == {call_id: {"name": "call_session", "input": session_input}}
    [answer] = stack.answers()
    assert answer.is_signed
    assert answer.body["incomingCallContext"] == event["data"]["incomingCallContext"]
    assert answer.body["callbackUri"] == f"{FUNCTIONS_URL}/api/call_events"
    streaming = answer.body["mediaStreamingOptions"]
    assert streaming["transportUrl"] == f"{MEDIA_URL}/calls/{call_id}?clinic={DEMO_CLINIC_ID}"
    assert streaming["audioFormat"] == "pcm16KMono"
    assert streaming["enableBidirectional"] is True
    assert streaming["startMediaStreaming"] is True
    # the session was waiting before ACS could send CallConnected
    assert stack.timeline.index("start call_session") == 0


def test_the_same_incoming_call_delivered_twice_answers_once(
    run_stack: Callable[..., Stack],
) -> None:
    async def scenario(stack: Stack) -> None:
        event = _ring(stack.acs)
        await stack.incoming_call(event)
        await stack.incoming_call(event)

    stack = run_stack(scenario)
    assert len(stack.answers()) == 1
    assert len(stack.durable.started) == 1


def test_an_unknown_number_is_rejected_and_no_session_starts(
    run_stack: Callable[..., Stack],
) -> None:
    async def scenario(stack: Stack) -> None:
        await stack.incoming_call(_ring(stack.acs, to_number="+15559999999"))

    stack = run_stack(scenario)
    assert [r.path for r in stack.acs.requests] == ["/calling/callConnections:reject"]
    assert stack.durable.started == {}


@pytest.mark.parametrize(
    "spoil",
    [
        lambda e: e.update(eventType="Microsoft.Communication.CallStarted"),
        lambda e: e.update(data="not an object"),
        lambda e: e["data"].pop("incomingCallContext"),
        lambda e: e["data"].update(to={"phoneNumber": {"value": "0800 CLINIC"}}),
    ],
    ids=["other type", "data not an object", "no context", "to not E.164"],
)
def test_a_malformed_event_is_dropped_and_changes_nothing(
    spoil: Callable[[dict[str, Any]], None], run_stack: Callable[..., Stack]
) -> None:
    async def scenario(stack: Stack) -> None:
        event = _ring(stack.acs)
        spoil(event)
        await stack.incoming_call(event)

    stack = run_stack(scenario)
    assert stack.acs.requests == []
    assert stack.durable.started == {}


def test_acs_unavailable_raises_so_event_grid_redelivers_and_the_retry_answers(
    run_stack: Callable[..., Stack],
) -> None:
    failures: list[Exception] = []

    async def scenario(stack: Stack) -> None:
        event = _ring(stack.acs)
        stack.acs.script.append((503, {"error": {"code": "ServiceUnavailable"}}))
        try:
            await stack.incoming_call(event)
        except Exception as error:  # what the host reports to Event Grid as a failure
            failures.append(error)
        await stack.incoming_call(event)  # Event Grid's redelivery

    stack = run_stack(scenario)
    assert len(failures) == 1
    assert len(stack.answers()) == 2  # the failed one and the retry
    assert len(stack.durable.started) == 1


# -- call_events -----------------------------------------------------------------------


def _callbacks(acs: LocalAcs, call_id: str, *names: str) -> list[dict[str, Any]]:
    return [
        acs.callback_event(name, correlation_id=call_id, call_connection_id="conn-1")
        for name in names
    ]


def test_signed_callbacks_are_raised_on_the_calls_orchestration_once(
    run_stack: Callable[..., Stack],
) -> None:
    responses: list[int] = []

    async def scenario(stack: Stack) -> None:
        event = _ring(stack.acs)
        await stack.incoming_call(event)
        call_id = event["data"]["correlationId"]
        body = json.dumps(_callbacks(stack.acs, call_id, "CallConnected", "MediaStreamingStarted"))
        for _ in range(2):  # the second is a redelivery of the same events
            response = await stack.call_events(body.encode(), stack.acs.sign())
            responses.append(response.status_code)

    stack = run_stack(scenario)
    assert responses == [200, 200]
    names = [(event, data["name"]) for _, event, data in stack.durable.raised]
    assert names == [("CallConnected", "CallConnected"),
                     ("MediaStreamingStarted", "MediaStreamingStarted")]  # fmt: skip
    call_id = next(iter(stack.durable.started))
    assert {instance for instance, _, _ in stack.durable.raised} == {call_id}


@pytest.mark.parametrize(
    "token",
    [
        lambda acs: None,
        lambda acs: acs.sign(lifetime_s=-600),
        lambda acs: acs.sign(audience="another-acs-resource"),
        lambda acs: acs.sign()[:-4] + "AAAA",
        lambda acs: "not-a-jwt",
    ],
    ids=["missing", "expired", "wrong audience", "tampered", "garbage"],
)
def test_unauthenticated_callbacks_get_401_before_the_body_is_read(
    token: Callable[[LocalAcs], str | None], run_stack: Callable[..., Stack]
) -> None:
    statuses: list[int] = []

    async def scenario(stack: Stack) -> None:
        event = _ring(stack.acs)
        await stack.incoming_call(event)
        response = await stack.call_events(b"{not json", token(stack.acs))
        statuses.append(response.status_code)

    stack = run_stack(scenario)
    assert statuses == [401]
    assert stack.durable.raised == []


def test_a_malformed_callback_body_gets_400_and_raises_nothing(
    run_stack: Callable[..., Stack],
) -> None:
    statuses: list[int] = []

    async def scenario(stack: Stack) -> None:
        event = _ring(stack.acs)
        await stack.incoming_call(event)
        good = _callbacks(stack.acs, event["data"]["correlationId"], "CallConnected")
        body = json.dumps([*good, {"type": "Microsoft.Communication.CallDisconnected"}])
        statuses.append((await stack.call_events(body.encode(), stack.acs.sign())).status_code)

    stack = run_stack(scenario)
    assert statuses == [400]
    assert stack.durable.raised == []


def test_a_callback_for_a_call_without_a_session_is_acknowledged_and_dropped(
    run_stack: Callable[..., Stack],
) -> None:
    statuses: list[int] = []

    async def scenario(stack: Stack) -> None:
        body = json.dumps(_callbacks(stack.acs, "no-such-call", "CallDisconnected"))
        statuses.append((await stack.call_events(body.encode(), stack.acs.sign())).status_code)

    stack = run_stack(scenario)
    assert statuses == [200]
    assert stack.durable.raised == []


# -- the app ---------------------------------------------------------------------------


def test_the_app_registers_the_call_functions_with_their_triggers() -> None:
    bindings = {
        name: {b["type"]: b for b in json.loads(f.get_function_json())["bindings"]}
        for name, f in _functions().items()
    }
    manage = {"manage_clinics", "manage_clinic", "manage_calls", "manage_call",
              "manage_call_audit", "manage_messages", "manage_message_done",
              "manage_softphone", "manage_appointments"}  # fmt: skip
    expected = {"incoming_call", "call_events", "healthz", "tools", "console", "console_file",
                *manage, *WORKFLOWS, *ACTIVITIES}  # fmt: skip
    assert set(bindings) == expected
    for name in manage:  # the admin API: routes under manage/ (the host reserves admin/)
        assert bindings[name]["httpTrigger"]["route"].startswith("manage/clinics")
    for name in WORKFLOWS:
        assert bindings[name]["orchestrationTrigger"]["orchestration"] == name
    for name in ACTIVITIES:
        assert bindings[name]["activityTrigger"]["activity"] == name
    assert "eventGridTrigger" in bindings["incoming_call"]
    assert "durableClient" in bindings["incoming_call"]
    http = bindings["call_events"]["httpTrigger"]
    assert (http["route"], http["methods"], http["authLevel"]) == (
        "call_events", ["POST"], "ANONYMOUS"
    )  # fmt: skip
    tools = bindings["tools"]["httpTrigger"]
    assert (tools["route"], tools["methods"]) == ("calls/{call_id}/tools/{tool}", ["POST"])


def test_healthz_answers_ok() -> None:
    health = _functions()["healthz"].get_user_function()
    response = health(func.HttpRequest("GET", "/api/healthz", body=b""))
    assert (response.status_code, response.get_body()) == (200, b"ok")
