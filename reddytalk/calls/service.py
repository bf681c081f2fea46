"""The receptionist service: answers calls, one :class:`CallSession` each.

It owns what outlives a call (the store, the back office, the engines, the greeting audio
cache) and writes each call's record when the call ends, whatever way it ends. It tells the
store which calls are in progress (so a clinic is not removed under one); that
bookkeeping never holds up or ends a call.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict

from reddytalk.calls.session import CallSession, CallSummary, CallTuning
from reddytalk.dialogue.policy import ReceptionistPolicy
from reddytalk.dialogue.tools import ReceptionistTools
from reddytalk.errors import ProviderError
from reddytalk.logs import bind_call
from reddytalk.ports import (
    BackOffice,
    CallOffice,
    CallRecord,
    CallStore,
    DialoguePolicy,
    SpeechToText,
    TextToSpeech,
)
from reddytalk.scheduling.model import Clinic

__all__ = ["PolicyFactory", "Receptionist", "VoiceChooser", "call_outcome"]

PolicyFactory = Callable[[ReceptionistTools], DialoguePolicy]
"""Builds a call's policy on its tools: the deterministic one, or the tiered one."""
VoiceChooser = Callable[[Clinic], TextToSpeech]
"""The voice a clinic's calls speak with."""

log = logging.getLogger(__name__)
_RECOGNIZER_RATE_HZ = 16_000
_DEFAULT_TUNING = CallTuning()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Receptionist:
    """Answers calls for every clinic in the store.

    Args:
        store: ReddyTalk's records (clinics, and each call's record).
        office: Where each call's tools run (the clinic's records and the write
            workflows): in process, or the Functions app's tools API.
        stt: Speech to text.
        tts: Text to speech.
        tuning: Per-call timing knobs.
        clock: Wall-clock time (aware), injectable for tests.
        on_close: Closes what the composition opened for it (the store's clients).
        policy: Builds each call's policy (default: the deterministic receptionist).
        voices: Picks a clinic's voice (its own cloud voice); default: ``tts`` for all.
    """

    def __init__(
        self,
        *,
        store: CallStore,
        office: BackOffice,
        stt: SpeechToText,
        tts: TextToSpeech,
        tuning: CallTuning = _DEFAULT_TUNING,
        clock: Callable[[], dt.datetime] = _utc_now,
        on_close: Callable[[], Awaitable[None]] | None = None,
        policy: PolicyFactory | None = None,
        voices: VoiceChooser | None = None,
    ) -> None:
        self.store = store
        self._policy: PolicyFactory = policy or (lambda tools: ReceptionistPolicy(tools=tools))
        self._voices: VoiceChooser = voices or (lambda _clinic: tts)
        self._on_close = on_close
        self._office = office
        self._stt = stt
        self._tts = tts
        self._tuning = tuning
        self._clock = clock
        self._greetings: dict[tuple[str, int, int], bytes] = {}
        self._greeting_locks: dict[tuple[str, int, int], asyncio.Lock] = {}

    async def find_clinic(
        self, *, clinic_id: str | None = None, dialled_number: str | None = None
    ) -> Clinic | None:
        """The clinic a call is for, by id or by the number the caller dialled."""
        if clinic_id:
            return await self.store.get_clinic(clinic_id)
        if dialled_number:
            return await self.store.find_clinic_by_number(dialled_number)
        return None

    async def close(self) -> None:
        """Release what outlives calls (the tools API's connections)."""
        await self._office.close()
        if self._on_close is not None:
            await self._on_close()

    async def greeting_audio(
        self, text: str, sample_rate_hz: int, *, tts: TextToSpeech | None = None
    ) -> bytes:
        """The greeting's PCM, synthesized once per text, rate and voice and then reused."""
        tts = tts or self._tts
        key = (text, sample_rate_hz, id(tts))
        if key not in self._greetings:
            async with self._greeting_locks.setdefault(key, asyncio.Lock()):
                if key not in self._greetings:
                    speech = tts.synthesize(text, sample_rate_hz=sample_rate_hz)
                    chunks = [chunk async for chunk in speech]
                    self._greetings[key] = b"".join(chunks)
        return self._greetings[key]

    async def prepare(self, clinic: Clinic, *, sample_rate_hz: int = 16_000) -> None:
        """Warm what the first call would otherwise pay for (the greeting audio)."""
        office = self._office.for_call(
            call_id="warm-up", clinic_id=clinic.clinic_id, call_token=None
        )
        policy = self._policy(self._tools(clinic, "warm-up", office))
        await self.greeting_audio(policy.greeting(), sample_rate_hz, tts=self._voices(clinic))

    def _tools(self, clinic: Clinic, call_id: str, office: CallOffice) -> ReceptionistTools:
        return ReceptionistTools(
            clinic=clinic,
            office=office,
            call_id=call_id,
            clock=self._clock,
        )

    async def take_call(
        self,
        *,
        call_id: str,
        clinic: Clinic,
        inbound: AsyncIterator[str],
        send: Callable[[str], Awaitable[None]],
        call_token: str | None = None,
        live_transcript: bool = False,
    ) -> CallSummary:
        """Hold one call until it ends, then store its record.

        The call counts as in progress in the store from its start (``call_started``)
        until its session ends (``call_ended``). Both are written alongside the call, not
        in its way: a slow store delays neither the greeting nor the hang-up. A store
        failure there is logged (its class only) and the call goes on.

        ``call_token`` is the tools token from the media URL (cloud profile).
        ``live_transcript``: send the caller each transcript line as it comes (see
        :class:`~reddytalk.calls.session.CallSession`).
        """
        bind_call(call_id=call_id, clinic_id=clinic.clinic_id)
        started_at = self._clock()
        office = self._office.for_call(
            call_id=call_id, clinic_id=clinic.clinic_id, call_token=call_token
        )
        tools = self._tools(clinic, call_id, office)
        tts = self._voices(clinic)
        session = CallSession(
            policy=self._policy(tools),
            recognizer=self._stt.open(
                sample_rate_hz=_RECOGNIZER_RATE_HZ, languages=clinic.languages
            ),
            tts=tts,
            greeting_audio=functools.partial(self.greeting_audio, tts=tts),
            tuning=self._tuning,
            live_transcript=live_transcript,
        )
        log.info("call started")
        in_progress = asyncio.create_task(
            _note_call_started(self.store, call_id, clinic.clinic_id, started_at),
            name="call_started",
        )
        try:
            summary = await session.run(inbound, send)
        finally:
            # A task: the end is recorded even if what follows is cancelled, and a slow
            # store delays neither the record nor the hang-up.
            ended = asyncio.create_task(
                _note_call_ended(self.store, call_id, in_progress), name="call_ended"
            )
            summary = session.summary
            summary.tool_calls = list(tools.calls)
            record = CallRecord(
                call_id=call_id,
                clinic_id=clinic.clinic_id,
                started_at=started_at,
                ended_at=self._clock(),
                outcome=call_outcome(summary.ending, tools.outcome),
                transcript=tuple(summary.transcript),
                tool_calls=tuple(
                    {"name": c.name, "arguments": c.arguments, "result": c.result}
                    for c in summary.tool_calls
                ),
                turn_timings=tuple(asdict(t) for t in summary.turns),
            )
            await asyncio.shield(_keep_record(office, record))
            await asyncio.shield(_end_call(office, summary.ending))
            log.info(
                "call ended: %s, %d turns, %d barge-ins, %d malformed messages",
                record.outcome,
                len(summary.turns),
                summary.barge_ins,
                summary.malformed_messages,
            )
            await asyncio.shield(ended)
        return summary


def call_outcome(ending: str, done: str) -> str:
    """What the call came to, for its record: what the tools did (``done``: booked,
    cancelled, message_taken, ...) when the receptionist ended the call, or when the
    caller hung up after something was done (a caller who hears "You are all set" and
    hangs up has booked); else how it ended (``caller_hung_up``, ``transfer:<why>``)."""
    if ending == "completed" or (ending == "caller_hung_up" and done != "no_action"):
        return done
    return ending


async def _note_call_started(
    store: CallStore, call_id: str, clinic_id: str, at: dt.datetime
) -> None:
    """Count the call as in progress; if the store cannot, say so (its class only) and go on."""
    try:
        await store.call_started(call_id, clinic_id, at=at)
    except Exception as error:  # any failure: the call matters more than the count
        log.warning("the call's start was not recorded: %s", type(error).__name__)


async def _note_call_ended(store: CallStore, call_id: str, started: asyncio.Task[None]) -> None:
    """The call is over in the store, once its start is written (never before it, or the
    start would outlive the call); a failure is logged (its class only)."""
    await asyncio.wait([started])
    try:
        await store.call_ended(call_id)
    except Exception as error:
        log.warning("the call's end was not recorded: %s", type(error).__name__)


async def _end_call(office: CallOffice, ending: str) -> None:
    """Hang up or transfer through call control when the receptionist ended the call."""
    if ending == "completed":
        reason = None
    elif ending.startswith("transfer:"):
        reason = ending.removeprefix("transfer:")
    else:
        return  # the caller hung up: nothing to end
    try:
        await office.end_call(transfer_reason=reason)
    except ProviderError as error:  # the call may be gone already; the session ends it
        log.warning("could not end the call through call control: %s", error)


async def _keep_record(office: CallOffice, record: CallRecord) -> None:
    """Store the call's record; if the back office cannot, say so (without PHI) and go on."""
    try:
        await office.keep_record(record)
    except ProviderError as error:
        log.error("the call's record could not be stored: %s", error)
