"""The Receptionist builds each call from its clinic: the policy the composition chose, the
clinic's languages for the recognizer, the clinic's own voice; and it tells the store which
calls are in progress, without letting that bookkeeping touch the call."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from reddytalk.calls.back_office import LocalBackOffice
from reddytalk.calls.service import Receptionist, call_outcome
from reddytalk.composition import open_embedded_records
from reddytalk.dialogue.policy import ReceptionistPolicy
from reddytalk.dialogue.tools import ReceptionistTools
from reddytalk.errors import ProviderError
from reddytalk.ports import CallRecord, CallStore, DialoguePolicy, SpeechRecognizer, TextToSpeech
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic, seed_demo
from reddytalk.providers.sms.outbox import OutboxSmsSender
from reddytalk.scheduling.model import Clinic
from reddytalk.settings import Settings
from reddytalk.workflows.activities import ActivityDeps
from reddytalk.workflows.runner import InlineRunner
from tests.calls.test_call_session import ScriptedRecognizer, _metadata

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)


class RecordingStt:
    def __init__(self) -> None:
        self.opened: list[tuple[int, tuple[str, ...]]] = []

    async def open(
        self, *, sample_rate_hz: int, languages: Sequence[str] = ("en-US",)
    ) -> SpeechRecognizer:
        self.opened.append((sample_rate_hz, tuple(languages)))
        return ScriptedRecognizer([], progress=lambda: 0)


class Silence:
    """A voice that says each sentence as 100 ms of silence, and counts them."""

    def __init__(self) -> None:
        self.sentences: list[str] = []

    async def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        self.sentences.append(text)
        yield bytes(sample_rate_hz // 10 * 2)


def test_a_call_gets_the_clinic_s_languages_voice_and_the_chosen_policy(tmp_path: Path) -> None:
    clinic = dataclasses.replace(demo_clinic(), languages=("en-US", "es-US"), voice_id="v-2")
    stt, default_voice, own_voice = RecordingStt(), Silence(), Silence()
    chosen: list[Clinic] = []
    built: list[ReceptionistTools] = []

    def voices(for_clinic: Clinic) -> TextToSpeech:
        chosen.append(for_clinic)
        return own_voice if for_clinic.voice_id == "v-2" else default_voice

    def policy(tools: ReceptionistTools) -> DialoguePolicy:
        built.append(tools)
        return ReceptionistPolicy(tools=tools)

    async def main() -> None:
        with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
            await seed_demo(records.store, records.ehr, today=NOW.date())
            deps = ActivityDeps(ehr=records.ehr, store=records.store, control=None,
                                clock=lambda: NOW)  # fmt: skip
            office = LocalBackOffice(ehr=records.ehr, store=records.store, clock=lambda: NOW,
                                     runner=InlineRunner(deps=deps),
                                     sms=OutboxSmsSender(store=records.store))  # fmt: skip
            receptionist = Receptionist(store=records.store, office=office, stt=stt,
                                        tts=default_voice, clock=lambda: NOW,
                                        policy=policy, voices=voices)  # fmt: skip

            async def inbound() -> AsyncIterator[str]:
                yield _metadata()
                await asyncio.sleep(0.3)  # the greeting goes out; then the caller hangs up

            sent: list[str] = []

            async def send(message: str) -> None:
                sent.append(message)

            await receptionist.take_call(call_id="c-1", clinic=clinic, inbound=inbound(),
                                         send=send)  # fmt: skip
            await receptionist.close()

    asyncio.run(main())

    assert stt.opened == [(16_000, ("en-US", "es-US"))]
    assert chosen == [clinic]
    assert [tools.clinic for tools in built] == [clinic]
    assert own_voice.sentences and not default_voice.sentences  # the greeting, in its voice


# -- calls in progress --------------------------------------------------------------------


class _LiveCallsDown:
    """The store, except that recording a call's start or end fails (a store outage)."""

    def __init__(self, store: CallStore) -> None:
        self._store = store

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def call_started(self, call_id: str, clinic_id: str, *, at: dt.datetime) -> None:
        raise ProviderError("Cosmos DB record call start failed: HTTP 403/5301", retryable=False)

    async def call_ended(self, call_id: str) -> None:
        raise RuntimeError("the store is gone")


async def _take_one_call(
    tmp_path: Path, *, wrap: Callable[[CallStore], CallStore] = lambda store: store
) -> tuple[list[int], int, CallRecord | None]:
    """One call that hangs up after the greeting: the calls in progress seen during it and
    after it, and its stored record."""
    with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
        await seed_demo(records.store, records.ehr, today=NOW.date())
        deps = ActivityDeps(ehr=records.ehr, store=records.store, control=None, clock=lambda: NOW)
        office = LocalBackOffice(ehr=records.ehr, store=records.store, clock=lambda: NOW,
                                 runner=InlineRunner(deps=deps),
                                 sms=OutboxSmsSender(store=records.store))  # fmt: skip
        receptionist = Receptionist(store=wrap(records.store), office=office, stt=RecordingStt(),
                                    tts=Silence(), clock=lambda: NOW)  # fmt: skip
        during: list[int] = []

        async def count() -> int:
            return await records.store.calls_in_progress(DEMO_CLINIC_ID, now=NOW)

        async def inbound() -> AsyncIterator[str]:
            yield _metadata()
            for _ in range(50):  # the start is written alongside the greeting: wait for it
                await asyncio.sleep(0.02)
                if await count():
                    break
            during.append(await count())

        async def send(message: str) -> None:
            pass

        await receptionist.take_call(call_id="c-live", clinic=demo_clinic(), inbound=inbound(),
                                     send=send)  # fmt: skip
        await receptionist.close()
        return during, await count(), await records.store.get_call("c-live")


def test_a_call_counts_as_in_progress_while_it_is_taken_and_not_after(tmp_path: Path) -> None:
    during, after, record = asyncio.run(_take_one_call(tmp_path))

    assert during == [1]
    assert after == 0
    assert record is not None and record.started_at == NOW


def test_a_store_that_cannot_count_the_call_neither_breaks_it_nor_logs_phi(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="reddytalk.calls.service"):
        during, after, record = asyncio.run(_take_one_call(tmp_path, wrap=_LiveCallsDown))

    assert (during, after) == ([0], 0)
    assert record is not None  # the call ran to its end and its record was kept
    warnings = [r.getMessage() for r in caplog.records if r.name == "reddytalk.calls.service"]
    assert warnings == [
        "the call's start was not recorded: ProviderError",
        "the call's end was not recorded: RuntimeError",
    ]


@pytest.mark.parametrize(
    ("ending", "done", "outcome"),
    [
        ("completed", "booked", "booked"),  # the receptionist said goodbye
        ("completed", "no_action", "no_action"),
        ("caller_hung_up", "booked", "booked"),  # hung up after "You are all set"
        ("caller_hung_up", "message_taken", "message_taken"),
        ("caller_hung_up", "no_action", "caller_hung_up"),
        ("transfer:caller_asked", "booked", "transfer:caller_asked"),  # the transfer says more
    ],
)
def test_a_call_s_outcome_is_what_was_done_unless_it_was_transferred_or_nothing_was(
    ending: str, done: str, outcome: str
) -> None:
    assert call_outcome(ending, done) == outcome
