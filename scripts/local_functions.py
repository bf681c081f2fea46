"""A local Functions host: serves a v2 ``FunctionApp``/``DFApp`` on loopback over HTTP.

It stands in for the Functions host (``func start``, which cannot be installed here) and
the Durable extension's HTTP API, calling the user functions as the Python worker does:

* HTTP triggers at ``/api/<route>`` get a ``func.HttpRequest``; their response goes back
  through the worker's own ``HttpResponseConverter``.
* Event Grid triggers at ``POST /runtime/webhooks/EventGrid?functionName=<name>`` (where a
  subscription delivers), one invocation per event, decoded by the worker's converter.
* The Durable extension's API under ``/runtime/webhooks/durabletask/`` (the client
  binding's ``rpcBaseUrl``) as ``DurableOrchestrationClient`` 1.7 calls it: start
  (``POST orchestrators/{name}[/{id}]``), ``POST instances/{id}/raiseEvent/{event}``
  and ``GET instances/{id}``.

Differences from the real host:

* Orchestrations run forward only, in memory, through ``InlineRunner`` executing the
  ``WORKFLOWS`` generators the app registers as orchestrators (the ones its orchestrator
  functions wrap), not by replaying a history; nothing survives a restart. Activities are
  the app's registered activity functions, input and output passed through JSON.
* Starting an instance id that is pending, running or completed returns that instance
  instead of replacing it (Durable's default); a failed one runs again.
* ``authLevel`` is not enforced (nor is it by ``func start``); the route prefix is
  ``api``; route constraints (``{id:int}``) and optional parameters are not honoured.
* No CloudEvents validation handshake; no terminate, rewind, purge, suspend, entities or
  history; ``host.json`` is not read.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import inspect
import json
import logging
import re
import socket
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

if __name__ == "__main__":  # run as a file: the app's packages live one folder up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import azure.functions as func
from aiohttp import web
from azure.functions import meta
from azure.functions.eventgrid import EventGridEventInConverter
from azure.functions.http import HttpResponseConverter

from reddytalk.ports import CallStore, Ehr
from reddytalk.workflows.activities import Activity, ActivityDeps
from reddytalk.workflows.runner import WORKFLOWS, InlineRunner

__all__ = ["DURABLE_PATH", "LocalFunctionsHost"]

log = logging.getLogger(__name__)

DURABLE_PATH = "/runtime/webhooks/durabletask/"
_LOOPBACK = "127.0.0.1"
_DONE = ("Completed", "Failed")
_VALIDATION_EVENT = "Microsoft.EventGrid.SubscriptionValidationEvent"
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True, slots=True)
class _Function:
    """A registered function as the host sees it in its ``function.json`` bindings."""

    name: str
    call: Callable[..., Any]
    trigger: dict[str, Any]
    client: str | None  # the durableClient binding's parameter name


@dataclass(slots=True)
class _Instance:
    name: str
    input: Any
    created: dt.datetime
    updated: dt.datetime
    status: str = "Pending"
    output: Any = None

    def status_json(self, instance_id: str) -> dict[str, Any]:
        """What ``GET instances/{id}`` answers (``DurableOrchestrationStatus.from_json``)."""
        return {
            "name": self.name,
            "instanceId": instance_id,
            "runtimeStatus": self.status,
            "input": self.input,
            "output": self.output,
            "createdTime": self.created.strftime(_TIME_FORMAT),
            "lastUpdatedTime": self.updated.strftime(_TIME_FORMAT),
        }


@functools.cache
def _index(app: func.FunctionApp) -> dict[str, _Function]:
    """The app's functions, indexed once per process as the worker does."""
    # The SDK's duplicate-name check remembers the names of every get_functions() call, so
    # a second indexing in one process (a test driving the functions directly, then this
    # host) fails it: index with a clean slate and leave the app as it was.
    previous, app.functions_bindings = app.functions_bindings, None
    try:
        functions = app.get_functions()
    finally:
        app.functions_bindings = previous
    indexed: dict[str, _Function] = {}
    for function in functions:
        bindings = json.loads(function.get_function_json())["bindings"]
        trigger = next(b for b in bindings if b["type"].endswith("Trigger"))
        client = next((b["name"] for b in bindings if b["type"] == "durableClient"), None)
        name = str(function.get_function_name())
        indexed[name] = _Function(name, function.get_user_function(), trigger, client)
    return indexed


def _aiohttp_path(route: str) -> str:
    """``/api/`` + a Functions route template as an aiohttp path (``{*rest}`` catches all)."""
    return "/api/" + re.sub(
        r"\{(\*?)(\w+)[^}]*\}", lambda m: f"{{{m[2]}{':.*' if m[1] else ''}}}", route.strip("/")
    )


def _payload(body: bytes) -> Any:
    """The JSON value a Durable client posted: it sends ``json.dumps(value)`` as a JSON
    string (encoded twice); the extension reads the inner JSON, and so does this."""
    if not body:
        return None
    value = json.loads(body)
    return json.loads(value) if isinstance(value, str) else value


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class LocalFunctionsHost:
    """Serves ``app`` on ``http://127.0.0.1:<port>`` while the context is open.

    Args:
        app: The v2 function app (indexed once per process).
        port: 0 picks a free port.
        task_hub: The Durable task hub name the client binding reports.

    Attributes:
        url: ``http://127.0.0.1:<port>``, once entered.
        client_binding: The durable client binding JSON the host hands a function.
        runner: The InlineRunner running the orchestrations (raise events on it directly
            or through the Durable HTTP API).
    """

    def __init__(self, app: func.FunctionApp, *, port: int = 0, task_hub: str = "ReddyTalk"):
        self._functions = _index(app)
        self._port = port
        self._task_hub = task_hub
        self._query = f"taskHub={task_hub}&connection=Storage"
        self._instances: dict[str, _Instance] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._web: web.AppRunner | None = None
        self.url = ""
        self.client_binding = ""
        activities = {f.name: self._activity(f) for f in self._triggered_by("activityTrigger")}
        self._orchestrators = {f.name for f in self._triggered_by("orchestrationTrigger")}
        # The activities reach their dependencies through functions.runtime, as in Azure;
        # InlineRunner itself only reads the clock of its deps.
        deps = ActivityDeps(ehr=cast(Ehr, None), store=cast(CallStore, None), control=None,
                            clock=_utc_now)  # fmt: skip
        self._orchestrators &= set(WORKFLOWS)  # the ones InlineRunner can run
        workflows = {name: WORKFLOWS[name] for name in self._orchestrators}
        self.runner = InlineRunner(deps=deps, activities=activities, workflows=workflows)

    async def __aenter__(self) -> LocalFunctionsHost:
        app = web.Application()
        durable = DURABLE_PATH
        app.router.add_post("/runtime/webhooks/EventGrid", self._event_grid)
        app.router.add_post(durable + "orchestrators/{name}", self._start_new)
        app.router.add_post(durable + "orchestrators/{name}/{instance}", self._start_new)
        app.router.add_post(durable + "instances/{instance}/raiseEvent/{event}", self._raise)
        app.router.add_get(durable + "instances/{instance}", self._get_status)
        for function in self._triggered_by("httpTrigger"):
            path = _aiohttp_path(function.trigger.get("route") or function.name)
            for method in function.trigger.get("methods") or ["*"]:
                app.router.add_route(method, path, functools.partial(self._http, function))
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((_LOOPBACK, self._port))
        # No access log: paths carry call and appointment ids (as the real host's would).
        self._web = web.AppRunner(app, shutdown_timeout=0.5, access_log=None)
        await self._web.setup()
        await web.SockSite(self._web, sock).start()
        self.url = f"http://{_LOOPBACK}:{sock.getsockname()[1]}"
        self.client_binding = json.dumps({
            "taskHubName": self._task_hub,
            "creationUrls": {"createNewInstancePostUri": f"{self.url}{durable}orchestrators/"
                             f"{{functionName}}[/{{instanceId}}]?{self._query}"},
            "managementUrls": self._management_urls("INSTANCEID"),
            "baseUrl": f"{self.url}{durable}",
            "rpcBaseUrl": f"{self.url}{durable}",
        })  # fmt: skip
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._web is not None:
            await self._web.cleanup()

    # -- invoking functions -------------------------------------------------------------

    def _triggered_by(self, trigger: str) -> list[_Function]:
        return [f for f in self._functions.values() if f.trigger["type"] == trigger]

    async def _invoke(self, function: _Function, argument: Any) -> Any:
        kwargs = {function.trigger["name"]: argument}
        if function.client is not None:
            kwargs[function.client] = self.client_binding
        if inspect.iscoroutinefunction(function.call):
            return await function.call(**kwargs)
        return await asyncio.to_thread(function.call, **kwargs)  # the worker's thread pool

    def _activity(self, function: _Function) -> Activity:
        async def call(_deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
            # Input and output cross the extension as JSON, so they must survive it here too.
            result = await self._invoke(function, json.loads(json.dumps(data)))
            return cast(dict[str, Any], json.loads(json.dumps(result)))

        return call

    async def _http(self, function: _Function, request: web.Request) -> web.Response:
        http_request = func.HttpRequest(
            method=request.method,
            url=str(request.url),
            headers=dict(request.headers),
            params=dict(request.query),
            route_params=dict(request.match_info),
            body=await request.read(),
        )
        try:
            datum = HttpResponseConverter.encode(
                await self._invoke(function, http_request), expected_type=None
            )
        except Exception:  # the host answers 500 for a function that raised
            log.exception("function %s failed", function.name)
            return web.Response(status=500)
        if datum.type == "string":
            return web.Response(text=datum.value)
        value = datum.value
        headers = {name: header.value for name, header in value["headers"].items()}
        status = int(value["status_code"].value)
        return web.Response(status=status, headers=headers, body=value["body"].value)

    async def _event_grid(self, request: web.Request) -> web.Response:
        function = self._functions.get(request.query.get("functionName", ""))
        if function is None or function.trigger["type"] != "eventGridTrigger":
            return web.Response(status=404, text="no Event Grid function of that name")
        try:
            body = await request.json()
        except ValueError:
            return web.Response(status=400, text="the body is not JSON")
        events: list[dict[str, Any]] = body if isinstance(body, list) else [body]
        if not all(isinstance(event, dict) for event in events):
            return web.Response(status=400, text="an event is not a JSON object")
        if request.headers.get("aeg-event-type") == "SubscriptionValidation":
            # The host answers the handshake itself; the function never sees it.
            handshake = [e for e in events if e.get("eventType") == _VALIDATION_EVENT]
            code = (handshake[0].get("data") or {}).get("validationCode") if handshake else None
            if code is None:
                return web.Response(status=400, text="no validationCode")
            return web.json_response({"validationResponse": code})
        for event in events:
            datum = meta.Datum(json.dumps(event), "json")
            try:
                decoded = EventGridEventInConverter.decode(datum, trigger_metadata={})
                await self._invoke(function, decoded)
            except Exception:  # a failed delivery: Event Grid retries it
                log.exception("function %s failed", function.name)
                return web.Response(status=500, text=f"function {function.name} failed")
        return web.Response(status=200)

    # -- the Durable extension's HTTP API -----------------------------------------------

    def _management_urls(self, instance_id: str) -> dict[str, str]:
        """The management URLs of an instance; only the routes served here."""
        base = f"{self.url}{DURABLE_PATH}instances/{instance_id}"
        return {
            "id": instance_id,
            "statusQueryGetUri": f"{base}?{self._query}",
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}?{self._query}",
        }

    async def _start_new(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in self._orchestrators:
            message = f"The function '{name}' doesn't exist, is disabled, or is not an orchestrator"
            return web.json_response({"Message": message, "ExceptionMessage": message}, status=400)
        instance_id = request.match_info.get("instance") or uuid.uuid4().hex
        existing = self._instances.get(instance_id)
        # Durable replaces an existing instance; ReddyTalk derives instance ids from the
        # request so that a retry finds the first run, so a live or completed one is kept.
        if existing is None or existing.status == "Failed":
            now = _utc_now()
            instance = _Instance(name, _payload(await request.read()), now, now)
            self._instances[instance_id] = instance
            task = asyncio.create_task(self._orchestrate(instance_id, instance), name=instance_id)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        urls = self._management_urls(instance_id)
        headers = {"Location": urls["statusQueryGetUri"]}
        return web.json_response(urls, status=202, headers=headers)

    async def _orchestrate(self, instance_id: str, instance: _Instance) -> None:
        instance.status, instance.updated = "Running", _utc_now()
        data = instance.input if isinstance(instance.input, dict) else {}
        try:
            instance.output = await self.runner.run(instance.name, instance_id=instance_id,
                                                    data=data)  # fmt: skip
            instance.status = "Completed"
        except Exception as error:
            log.warning("orchestration %s failed: %s", instance.name, error)
            instance.output, instance.status = str(error), "Failed"
        instance.updated = _utc_now()

    async def _raise(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance"]
        instance = self._instances.get(instance_id)
        if instance is None:
            return web.Response(status=404)
        if instance.status in _DONE:
            return web.Response(status=410)
        data = _payload(await request.read())
        event = request.match_info["event"]
        await self.runner.raise_event(instance_id, event, data if isinstance(data, dict) else {})
        return web.Response(status=202)

    async def _get_status(self, request: web.Request) -> web.Response:
        instance_id = request.match_info["instance"]
        instance = self._instances.get(instance_id)
        if instance is None:
            return web.Response(status=404)  # the client reads an empty body as "no instance"
        # As the extension: 202 while it runs, 200 once it completed or failed.
        status = 200 if instance.status in _DONE else 202
        return web.json_response(instance.status_json(instance_id), status=status)


async def _serve(port: int) -> None:
    from azure.durable_functions.models.utils import http_utils

    from function_app import app
    from functions import runtime

    async with LocalFunctionsHost(app, port=port) as host:
        print(f"Functions host on {host.url} (Ctrl-C to stop)", flush=True)
        try:
            await asyncio.Event().wait()
        finally:
            await runtime.reset()
            await http_utils._close_session()  # the Durable client's module-level session


def main(argv: list[str] | None = None) -> int:
    """``python scripts/local_functions.py [--port 7071]``: serve ``function_app.app``."""
    from reddytalk.logs import configure_logging

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=7071)
    args = parser.parse_args(argv)
    configure_logging()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
