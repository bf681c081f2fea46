"""AzureOpenAIChat through the real ``openai`` SDK, against a loopback Azure OpenAI.

The loopback server answers ``POST /openai/deployments/{deployment}/chat/completions
?api-version=…`` as Azure OpenAI documents streamed chat completions
(learn.microsoft.com ``azure/ai-foundry/openai/reference`` "Create chat completion";
``text/event-stream``, one ``data: {chunk}`` line per chunk, ``data: [DONE]`` last): a
first chunk with no choices (the prompt filter results), a role chunk, content or
tool-call deltas (``id`` and ``name`` in the first fragment of a call, the JSON
arguments spread over the next), a chunk with ``finish_reason``, and with
``stream_options.include_usage`` a last chunk with no choices and ``usage``. Each test
scripts the answer as steps: a chunk, a pause, a gate the test opens, a cut connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web

from reddytalk.chat_events import (
    ChatEvent,
    Clause,
    ClauseCutter,
    Finished,
    FirstTokenLate,
    InvalidToolCall,
    TextDelta,
    ToolCallRequest,
)
from reddytalk.errors import ProviderError
from reddytalk.providers.llm.azure_openai import AzureOpenAIChat, build_messages
from reddytalk.providers.llm.tool_schemas import receptionist_tools

API_VERSION = "2024-10-21"
DEPLOYMENT = "gpt-4o-mini-fast"
KEY = "test-key-not-a-secret"
MESSAGES = build_messages("You are a receptionist.", "Clinic: Reddy Family Clinic.", [], "Hi")


def _chunk(delta: dict[str, Any] | None = None, finish: str | None = None) -> dict[str, Any]:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    return {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1764000000,
            "model": "gpt-4o-mini", "choices": choices}  # fmt: skip


FILTER = {**_chunk(), "model": "", "prompt_filter_results": [{"prompt_index": 0}]}
ROLE = _chunk({"role": "assistant", "content": ""})
USAGE = {**_chunk(), "usage": {"prompt_tokens": 1200, "completion_tokens": 9, "total_tokens": 1209,
                               "prompt_tokens_details": {"cached_tokens": 1024}}}  # fmt: skip


def _text(text: str) -> dict[str, Any]:
    return _chunk({"content": text})


def _call(index: int, arguments: str, *, call_id: str = "", name: str = "") -> dict[str, Any]:
    fragment: dict[str, Any] = {"index": index, "function": {"arguments": arguments}}
    if call_id:
        fragment.update(id=call_id, type="function")
        fragment["function"]["name"] = name
    return _chunk({"tool_calls": [fragment]})


@dataclass
class Pause:
    seconds: float


@dataclass
class Gate:
    """The server waits here until the test opens it (or 2 s pass)."""

    opened: asyncio.Event = field(default_factory=asyncio.Event)
    is_waiting: bool = False


class Cut:
    """The server drops the connection without ending the chunked body."""


Step = dict[str, Any] | Pause | Gate | Cut


@dataclass
class Recorded:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: dict[str, Any]


class LocalAzureOpenAI:
    """A loopback Azure OpenAI: answers with ``steps`` (or ``status``), records requests."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self.status: tuple[int, dict[str, Any]] | None = None
        self.requests: list[Recorded] = []
        self._runner: web.AppRunner | None = None
        self.endpoint = ""

    async def __aenter__(self) -> LocalAzureOpenAI:
        app = web.Application()
        app.router.add_post("/openai/deployments/{deployment}/chat/completions", self._answer)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.endpoint = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        self.requests.append(
            Recorded(request.path, dict(request.query), dict(request.headers), body)
        )
        if self.status is not None:
            status, error = self.status
            return web.json_response({"error": error}, status=status)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        for step in self.steps:
            if isinstance(step, Pause):
                await asyncio.sleep(step.seconds)
            elif isinstance(step, Gate):
                step.is_waiting = True
                await asyncio.wait_for(step.opened.wait(), 2)
                step.is_waiting = False
            elif isinstance(step, Cut):
                assert request.transport is not None
                request.transport.close()
                return response
            else:
                await response.write(f"data: {json.dumps(step)}\n\n".encode())
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


Scenario = Callable[[LocalAzureOpenAI, AzureOpenAIChat], Awaitable[None]]


def _run(scenario: Scenario, **options: Any) -> LocalAzureOpenAI:
    async def main() -> LocalAzureOpenAI:
        async with LocalAzureOpenAI() as server:
            options.setdefault("api_key", KEY)
            async with AzureOpenAIChat(endpoint=server.endpoint, **options) as chat:
                await scenario(server, chat)
        return server

    return asyncio.run(main())


def _stream(chat: AzureOpenAIChat) -> AsyncIterator[ChatEvent]:
    return chat.stream(MESSAGES, tools=receptionist_tools(), deployment=DEPLOYMENT)


async def _collect(chat: AzureOpenAIChat) -> list[ChatEvent]:
    return [event async for event in _stream(chat)]


def test_sends_a_streamed_request_to_the_deployment_with_the_tools_and_the_key() -> None:
    events: list[ChatEvent] = []

    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [FILTER, ROLE, _text("Hello!"), _chunk({}, "stop"), USAGE]
        events.extend(await _collect(chat))

    server = _run(scenario, api_version=API_VERSION)
    [sent] = server.requests
    assert sent.path == f"/openai/deployments/{DEPLOYMENT}/chat/completions"
    assert sent.query == {"api-version": API_VERSION}
    assert sent.headers["api-key"] == KEY and "Authorization" not in sent.headers
    assert sent.body["stream"] is True and sent.body["stream_options"] == {"include_usage": True}
    assert sent.body["messages"] == MESSAGES and sent.body["tools"] == receptionist_tools()
    assert events[:2] == [TextDelta("Hello!"), Clause("Hello!")]
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.reason == "stop"
    assert finished.usage is not None and finished.usage.cached_prompt_tokens == 1024
    assert finished.first_token_ms is not None and finished.first_token_ms > 0


def test_an_entra_id_token_provider_is_sent_as_a_bearer_token() -> None:
    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [ROLE, _text("Hi."), _chunk({}, "stop")]
        await _collect(chat)

    async def token() -> str:
        return "entra-token"

    server = _run(scenario, api_key=None, token_provider=token)
    assert server.requests[0].headers["Authorization"] == "Bearer entra-token"
    assert "api-key" not in server.requests[0].headers


def test_the_first_clause_comes_before_the_stream_ends() -> None:
    gate = Gate()
    seen: list[ChatEvent] = []

    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [ROLE, _text("Sure, I can help with that"), _text(". Which day"), gate,
                        _text(" works best for you?"), _chunk({}, "stop")]  # fmt: skip
        async for event in _stream(chat):
            seen.append(event)
            if isinstance(event, Clause) and len(seen) < 5:
                assert gate.is_waiting  # the server holds the rest of the answer back
                gate.opened.set()

    _run(scenario)
    clauses = [e.text for e in seen if isinstance(e, Clause)]
    assert clauses == ["Sure, I can help with that.", "Which day works best for you?"]


def test_tool_calls_are_assembled_from_fragments_two_in_one_answer() -> None:
    events: list[ChatEvent] = []

    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [
            ROLE, _call(0, "", call_id="call_a", name="find_slots"),
            _call(0, '{"day": "2026-12-01", '), _call(0, '"part_of_day": "morning", '),
            _call(0, '"clock_time": null, "provider_id": null}'),
            _call(1, "", call_id="call_b", name="upcoming_appointments"), _call(1, "{}"),
            _chunk({}, "tool_calls"), USAGE,
        ]  # fmt: skip
        events.extend(await _collect(chat))

    _run(scenario)
    *calls, finished = events
    assert calls == [
        ToolCallRequest("call_a", "find_slots", {"day": "2026-12-01", "part_of_day": "morning",
                                                 "clock_time": None, "provider_id": None}),
        ToolCallRequest("call_b", "upcoming_appointments", {}),
    ]  # fmt: skip
    assert isinstance(finished, Finished) and finished.reason == "tool_calls"


def test_malformed_tool_arguments_are_an_invalid_call_without_the_arguments() -> None:
    events: list[ChatEvent] = []

    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        cut_short = _call(0, '{"text": "Jane Doe called', call_id="c", name="take_message")
        server.steps = [ROLE, cut_short, _chunk({}, "tool_calls")]
        events.extend(await _collect(chat))

    _run(scenario)
    [invalid, _] = events
    assert isinstance(invalid, InvalidToolCall) and (invalid.id, invalid.name) == (
        "c",
        "take_message",
    )
    assert "Jane" not in invalid.reason


def test_a_slow_first_token_yields_one_late_event_at_the_bound_and_the_stream_goes_on() -> None:
    events: list[tuple[float, ChatEvent]] = []

    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [ROLE, Pause(0.3), _text("Okay."), _chunk({}, "stop")]
        started = time.perf_counter()
        async for event in _stream(chat):
            events.append(((time.perf_counter() - started) * 1000, event))

    _run(scenario, first_token_late_ms=100)
    [(at_ms, late), (_, text), *_, (_, finished)] = events
    assert isinstance(late, FirstTokenLate) and 100 <= late.after_ms and at_ms < 200
    assert text == TextDelta("Okay.")
    assert isinstance(finished, Finished) and finished.first_token_ms is not None
    assert finished.first_token_ms >= 300
    assert sum(isinstance(e, FirstTokenLate) for _, e in events) == 1


def test_a_stream_cut_mid_way_is_a_retryable_provider_error() -> None:
    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [ROLE, _text("Let me check"), Cut()]
        with pytest.raises(ProviderError) as raised:
            await _collect(chat)
        assert raised.value.retryable

    _run(scenario)


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [(429, "429", True), (500, "InternalServerError", True), (401, "401", False),
     (404, "DeploymentNotFound", False), (400, "context_length_exceeded", False)],
)  # fmt: skip
def test_http_errors_map_to_provider_errors(status: int, code: str, retryable: bool) -> None:
    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.status = (status, {"code": code, "message": "Patient Jane Doe: quota reached"})
        with pytest.raises(ProviderError) as raised:
            await _collect(chat)
        assert raised.value.retryable is retryable
        assert str(raised.value) == f"Azure OpenAI chat failed: HTTP {status} ({code})"
        assert raised.value.__cause__ is None and raised.value.__suppress_context__

    server = _run(scenario)
    assert len(server.requests) == 1  # the SDK's own retries are off


def test_the_clause_cutter_keeps_numbers_and_titles_and_short_pauses_whole() -> None:
    cutter = ClauseCutter(min_pause_chars=10)
    pieces = ["Yes, Dr. Patel is in at 9.30 tomorrow", ", on the first floor; ", "bring your card!",
              " Anything else?"]  # fmt: skip
    clauses = [c for piece in pieces for c in cutter.feed(piece)]
    assert clauses == ["Yes, Dr. Patel is in at 9.30 tomorrow,", "on the first floor;",
                       "bring your card!"]  # fmt: skip
    assert cutter.flush() == "Anything else?"


def test_tool_schemas_name_every_receptionist_tool_strictly() -> None:
    tools = {t["function"]["name"]: t["function"] for t in receptionist_tools()}
    assert set(tools) == {
        "verify_identity", "register_patient", "find_slots", "book", "upcoming_appointments",
        "cancel", "reschedule", "send_confirmation", "take_message", "transfer_to_staff",
        "end_call",
    }  # fmt: skip
    for function in tools.values():
        parameters = function["parameters"]
        assert function["strict"] and parameters["additionalProperties"] is False
        assert parameters["required"] == list(parameters["properties"])


def test_a_consumer_that_stops_waiting_closes_the_stream_at_once() -> None:
    """Barge-in: the policy closes the stream while the request is still silent."""
    gate = Gate()
    closed_after_ms: list[float] = []

    async def scenario(server: LocalAzureOpenAI, chat: AzureOpenAIChat) -> None:
        server.steps = [ROLE, gate, _text("Too late."), _chunk({}, "stop")]
        async with contextlib.aclosing(_stream(chat)) as events:
            async for event in events:
                assert isinstance(event, FirstTokenLate)
                started = time.perf_counter()
                break
        closed_after_ms.append((time.perf_counter() - started) * 1000)
        gate.opened.set()

    _run(scenario, first_token_late_ms=50)
    assert closed_after_ms[0] < 50
