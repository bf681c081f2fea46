"""Streamed chat completions from Azure OpenAI, as :mod:`~reddytalk.chat_events`.

Through the ``openai`` package's ``AsyncAzureOpenAI``: ``POST
{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=…`` with
``stream: true``, answered as server-sent events (``data: {chunk}`` … ``data: [DONE]``).
Text deltas are cut into clauses as they arrive; tool calls come as fragments keyed by
``index`` (id and name in the first, the JSON arguments spread over the rest) and are
assembled here. ``stream_options.include_usage`` adds a last chunk with no choices and
the token usage (cached prompt tokens included).

The SDK's own retries are off (``max_retries=0``): the retry policy lives once, in the
wrapper around every provider. Errors become :class:`ProviderError` without the SDK's
text, which may quote the prompt (PHI); no message content is ever logged.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, cast

import openai
from openai.types.chat import ChatCompletionChunk

from reddytalk.chat_events import (
    ChatEvent,
    Clause,
    ClauseCutter,
    Finished,
    FirstTokenLate,
    InvalidToolCall,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from reddytalk.errors import ProviderError

__all__ = ["AzureOpenAIChat", "build_messages", "provider_error"]

DEFAULT_API_VERSION = "2024-10-21"  # the GA version with stream_options and tools
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_END = object()


def build_messages(
    system_stable: str,
    clinic_facts: str,
    history: Sequence[Mapping[str, Any]],
    user: str,
) -> list[dict[str, Any]]:
    """The messages of one turn, ordered for the prompt cache.

    Azure OpenAI caches prompts of 1,024 tokens or more by their identical prefix (in
    128-token steps; the tools count as part of it), so what never changes comes
    first: the receptionist's instructions, then the clinic's facts (stable for a
    clinic and a day: keep the clock time out of them), then the call so far, which
    only grows, so each turn's prompt starts with the last one. Anything that varies
    earlier than the history would make every turn a cache miss.
    """
    return [
        {"role": "system", "content": system_stable},
        {"role": "system", "content": clinic_facts},
        *(dict(message) for message in history),
        {"role": "user", "content": user},
    ]


def provider_error(error: openai.OpenAIError) -> ProviderError:
    """The PHI-free :class:`ProviderError` for an ``openai`` error.

    408, 429 and 5xx, timeouts and connection failures (a stream cut mid-way too) may
    succeed when retried; 400, 401, 403, 404 will not until the request or the setup
    is fixed. The message keeps the status and a token-like error code only.
    """
    if isinstance(error, openai.APIStatusError):
        status = error.status_code
        detail = f"HTTP {status}"
        if isinstance(error.code, str) and _SAFE_CODE.fullmatch(error.code):
            detail += f" ({error.code})"
        retryable = status in (408, 429) or status >= 500
        return ProviderError(f"Azure OpenAI chat failed: {detail}", retryable=retryable)
    # APITimeoutError, APIConnectionError, and APIError (an error event mid-stream).
    retryable = isinstance(error, openai.APIError)
    return ProviderError(f"Azure OpenAI chat failed: {type(error).__name__}", retryable=retryable)


class AzureOpenAIChat:
    """Azure OpenAI chat completions, streamed.

    Args:
        endpoint: The resource's endpoint, ``https://{resource}.openai.azure.com`` (a
            loopback URL in tests).
        api_version: The data-plane API version (``api-version`` query parameter).
        token_provider: Returns an Entra ID bearer token for
            ``https://cognitiveservices.azure.com/.default`` (managed identity); or
        api_key: The resource's key (local runs only). Exactly one of the two.
        first_token_late_ms: After this long without a first token, one
            :class:`FirstTokenLate` is yielded and the stream goes on.
        timeout_s: Bound on connecting and on each read of the stream.
        min_pause_chars: See :class:`ClauseCutter`.
    """

    def __init__(
        self,
        *,
        endpoint: str,
        api_version: str = DEFAULT_API_VERSION,
        token_provider: Callable[[], str | Awaitable[str]] | None = None,
        api_key: str | None = None,
        first_token_late_ms: float = 400.0,
        timeout_s: float = 10.0,
        min_pause_chars: int = 24,
    ) -> None:
        if (token_provider is None) == (api_key is None):
            raise ValueError("give exactly one of token_provider and api_key")
        self._client = openai.AsyncAzureOpenAI(
            azure_endpoint=endpoint,
            api_version=api_version,
            api_key=api_key,
            azure_ad_token_provider=token_provider,
            max_retries=0,
            timeout=timeout_s,
        )
        self._first_token_late_ms = first_token_late_ms
        self._min_pause_chars = min_pause_chars

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        await self._client.close()

    async def __aenter__(self) -> AzureOpenAIChat:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]],
        deployment: str,
    ) -> AsyncIterator[ChatEvent]:
        """Stream one completion of ``messages`` by ``deployment`` as events.

        Raises:
            ProviderError: The request failed or the stream broke off; ``retryable``
                says whether sending it again may help.
        """
        started = time.perf_counter()
        chunks = self._chunks(messages, tools=tools, deployment=deployment)
        assembly = _Assembly(ClauseCutter(min_pause_chars=self._min_pause_chars))
        pending: asyncio.Task[object] | None = None
        try:
            # Until the first token, each chunk is awaited in a task so the late bound
            # can fire while the request or the stream is still silent.
            is_late = False
            while assembly.first_token_at is None:
                pending = asyncio.ensure_future(anext(chunks, _END))
                if not is_late:
                    left_s = self._first_token_late_ms / 1000 - (time.perf_counter() - started)
                    await asyncio.wait({pending}, timeout=max(left_s, 0))
                    if not pending.done():
                        is_late = True
                        yield FirstTokenLate(after_ms=(time.perf_counter() - started) * 1000)
                chunk, pending = await pending, None
                if chunk is _END:
                    break
                for event in assembly.take(cast(ChatCompletionChunk, chunk)):
                    yield event
            async for chunk in chunks:
                for event in assembly.take(chunk):
                    yield event
            for event in assembly.finish():
                yield event
            first_ms = None
            if assembly.first_token_at is not None:
                first_ms = (assembly.first_token_at - started) * 1000
            yield Finished(assembly.reason, assembly.usage, first_ms)
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, ProviderError):
                    await pending
            await chunks.aclose()

    async def _chunks(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]],
        deployment: str,
    ) -> AsyncGenerator[ChatCompletionChunk, None]:
        try:
            stream = await self._client.chat.completions.create(
                model=deployment,  # Azure: the deployment name, put in the path by the SDK
                messages=cast(Any, list(messages)),
                tools=cast(Any, list(tools)),
                stream=True,
                stream_options={"include_usage": True},
            )
            async with stream:
                async for chunk in stream:
                    yield chunk
        except openai.OpenAIError as error:
            raise provider_error(error) from None


class _Assembly:
    """Chunks → events: text cut into clauses, tool-call fragments joined by index."""

    def __init__(self, cutter: ClauseCutter) -> None:
        self._cutter = cutter
        self._calls: dict[int, list[str]] = {}  # index → [id, name, arguments so far]
        self.first_token_at: float | None = None
        self.reason = "unknown"
        self.usage: Usage | None = None

    def take(self, chunk: ChatCompletionChunk) -> list[ChatEvent]:
        events: list[ChatEvent] = []
        if chunk.usage is not None:
            details = chunk.usage.prompt_tokens_details
            cached = (details.cached_tokens or 0) if details is not None else 0
            self.usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens, cached)
        for choice in chunk.choices[:1]:  # n is 1; Azure may add choices-less filter chunks
            delta = choice.delta
            if delta.content:
                self._note_first_token()
                events.append(TextDelta(delta.content))
                events.extend(Clause(text) for text in self._cutter.feed(delta.content))
            for fragment in delta.tool_calls or ():
                self._note_first_token()
                call = self._calls.setdefault(fragment.index, ["", "", ""])
                call[0] = fragment.id or call[0]
                if fragment.function is not None:
                    call[1] = fragment.function.name or call[1]
                    call[2] += fragment.function.arguments or ""
            if choice.finish_reason is not None:
                self.reason = choice.finish_reason
                events.extend(self.finish())
        return events

    def finish(self) -> list[ChatEvent]:
        """What is left at the end: the last clause, then the tool calls in order."""
        events: list[ChatEvent] = []
        rest = self._cutter.flush()
        if rest is not None:
            events.append(Clause(rest))
        for index in sorted(self._calls):
            events.append(_tool_call(*self._calls[index]))
        self._calls.clear()
        return events

    def _note_first_token(self) -> None:
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()


def _tool_call(call_id: str, name: str, arguments: str) -> ChatEvent:
    """A complete tool call; its arguments must be a JSON object (``{}`` when empty)."""
    try:
        parsed = json.loads(arguments or "{}")
    except json.JSONDecodeError as error:
        return InvalidToolCall(call_id, name, f"arguments are not JSON (at {error.pos})")
    if not isinstance(parsed, dict):
        return InvalidToolCall(call_id, name, "arguments are not a JSON object")
    return ToolCallRequest(call_id, name, parsed)
