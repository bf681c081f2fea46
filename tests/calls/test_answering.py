"""Answering a ringing call: the clinic by the dialled number, once per call."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from reddytalk.calls.answering import (
    AlreadyHandled,
    Answered,
    CallLinks,
    Rejected,
    answer_incoming_call,
)
from reddytalk.calls.call_tokens import CallGrant, CallTokens
from reddytalk.composition import open_embedded_records
from reddytalk.errors import ProviderError
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.settings import Settings
from reddytalk.telephony.acs_events import IncomingCall

LINKS = CallLinks(
    callback_url="https://fn.example/api/call_events", media_base_url="wss://media.example"
)


class RecordingCallControl:
    """A CallControl double that records requests and can fail on answer."""

    def __init__(self, *, fail_with: ProviderError | None = None) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.fail_with = fail_with

    async def answer(self, **request: Any) -> str:
        self.requests.append(("answer", request))
        if self.fail_with is not None:
            raise self.fail_with
        return "conn-1"

    async def reject(self, **request: Any) -> None:
        self.requests.append(("reject", request))

    async def play_text(self, **request: Any) -> None:
        self.requests.append(("play_text", request))

    async def transfer(self, **request: Any) -> None:
        self.requests.append(("transfer", request))

    async def hang_up(self, **request: Any) -> None:
        self.requests.append(("hang_up", request))

    async def close(self) -> None:
        self.requests.append(("close", {}))


def _call(to_number: str = "+15550100200", call_id: str = "corr-1") -> IncomingCall:
    return IncomingCall(
        correlation_id=call_id,
        to_number=to_number,
        from_number="+15555550123",
        incoming_call_context="ctx-1",
        server_call_id="server-1",
    )


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    store = open_embedded_records(Settings(data_dir=tmp_path)).store
    asyncio.run(store.save_clinic(demo_clinic()))
    return store


def _answer(
    store: SqliteStore, control: RecordingCallControl, call: IncomingCall, followed: list[str]
) -> Answered | Rejected | AlreadyHandled:
    async def follow(call_id: str, clinic_id: str) -> None:
        # the session must be followed before ACS hears the answer
        assert not [r for r, _ in control.requests if r == "answer"]
        followed.append(f"{call_id}@{clinic_id}")

    return asyncio.run(
        answer_incoming_call(call, store=store, control=control, links=LINKS, follow_call=follow)
    )


def test_a_call_to_a_clinic_number_is_followed_then_answered_with_media(
    store: SqliteStore,
) -> None:
    control, followed = RecordingCallControl(), []
    result = _answer(store, control, _call(), followed)
    assert result == Answered("corr-1", DEMO_CLINIC_ID, "conn-1")
    assert followed == [f"corr-1@{DEMO_CLINIC_ID}"]
    [(name, request)] = control.requests
    assert name == "answer"
    assert request == {
        "incoming_call_context": "ctx-1",
        "callback_url": "https://fn.example/api/call_events",
        "media_url": f"wss://media.example/calls/corr-1?clinic={DEMO_CLINIC_ID}",
        "sample_rate_hz": 16_000,
        "operation_context": "answer:corr-1",
    }
    trail = asyncio.run(store.audit_trail("corr-1"))
    assert [(e.action, e.resource) for e in trail] == [
        ("call.answered", "call"), ("create", "CallNumber/caller")
    ]  # fmt: skip


def test_an_unknown_number_is_rejected_and_nothing_is_followed(store: SqliteStore) -> None:
    control, followed = RecordingCallControl(), []
    result = _answer(store, control, _call(to_number="+15559999999"), followed)
    assert isinstance(result, Rejected)
    assert control.requests == [("reject", {"incoming_call_context": "ctx-1"})]
    assert followed == []


def test_the_same_event_delivered_twice_answers_once(store: SqliteStore) -> None:
    control, followed = RecordingCallControl(), []
    first = _answer(store, control, _call(), followed)
    second = _answer(store, control, _call(), followed)
    assert isinstance(first, Answered)
    assert second == AlreadyHandled("corr-1")
    assert [name for name, _ in control.requests] == ["answer"]
    assert len(followed) == 1


def test_a_retryable_failure_lets_the_redelivery_answer(store: SqliteStore) -> None:
    failing = RecordingCallControl(fail_with=ProviderError("ACS busy", retryable=True))
    with pytest.raises(ProviderError):
        _answer(store, failing, _call(), [])
    control = RecordingCallControl()
    assert isinstance(_answer(store, control, _call(), []), Answered)


def test_a_permanent_failure_is_not_retried(store: SqliteStore) -> None:
    failing = RecordingCallControl(fail_with=ProviderError("call gone", retryable=False))
    with pytest.raises(ProviderError):
        _answer(store, failing, _call(), [])
    control = RecordingCallControl()
    assert _answer(store, control, _call(), []) == AlreadyHandled("corr-1")
    assert control.requests == []


def test_media_url_escapes_the_call_id() -> None:
    url = LINKS.media_url(call_id="a/b?c", clinic_id="x y")
    assert url == "wss://media.example/calls/a%2Fb%3Fc?clinic=x+y"


def test_with_tokens_the_media_url_carries_the_calls_tools_token(store: SqliteStore) -> None:
    tokens = CallTokens(secret=b"k" * 32)
    control = RecordingCallControl()

    async def follow(call_id: str, clinic_id: str) -> None:
        pass

    asyncio.run(
        answer_incoming_call(_call(), store=store, control=control, links=LINKS,
                             follow_call=follow, tokens=tokens)
    )  # fmt: skip
    [(_, request)] = control.requests
    url = urllib.parse.urlsplit(request["media_url"])
    [token] = urllib.parse.parse_qs(url.query)["token"]
    assert tokens.verify(f"Bearer {token}") == CallGrant("corr-1", DEMO_CLINIC_ID)


# -- the caller's number, kept for a text confirmation --------------------------


def _number(store: SqliteStore, call_id: str = "corr-1") -> str | None:
    return asyncio.run(store.get_call_number(call_id, DEMO_CLINIC_ID, party="caller"))


def test_the_callers_number_is_kept_for_the_call_once_answered(store: SqliteStore) -> None:
    assert isinstance(_answer(store, RecordingCallControl(), _call(), []), Answered)
    assert _number(store) == "+15555550123"
    assert asyncio.run(store.get_call_number("corr-2", DEMO_CLINIC_ID, party="caller")) is None


def test_no_number_is_kept_for_a_rejected_call_or_a_caller_without_one(
    store: SqliteStore,
) -> None:
    _answer(store, RecordingCallControl(), _call(to_number="+15559999999"), [])
    assert _number(store) is None
    anonymous = dataclasses.replace(_call(call_id="corr-2"), from_number=None)
    assert isinstance(_answer(store, RecordingCallControl(), anonymous, []), Answered)
    assert _number(store, "corr-2") is None


def test_no_number_is_kept_when_the_answer_fails(store: SqliteStore) -> None:
    failing = RecordingCallControl(fail_with=ProviderError("ACS busy", retryable=True))
    with pytest.raises(ProviderError):
        _answer(store, failing, _call(), [])
    assert _number(store) is None


class _NumbersDown:
    """The store, with the table of calls' numbers unreachable."""

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def save_call_number(self, *args: Any, **kwargs: Any) -> None:
        raise ProviderError("store unavailable", retryable=True)


def test_a_number_that_cannot_be_kept_does_not_fail_the_answered_call(
    store: SqliteStore, caplog: pytest.LogCaptureFixture
) -> None:
    control = RecordingCallControl()
    with caplog.at_level(logging.WARNING):
        result = _answer(_NumbersDown(store), control, _call(), [])  # type: ignore[arg-type]
    assert isinstance(result, Answered)
    assert [name for name, _ in control.requests] == ["answer"]
    assert _number(store) is None
    assert "caller's number was not kept" in caplog.text
    assert "5555550123" not in caplog.text
