"""The ports the domain owns. Adapters in ``reddytalk.providers`` implement them.

Each is a small ``typing.Protocol``; the embedded engines are the doubles the
tests use, and the cloud adapters implement the same shapes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

# The chat events are a pure vocabulary (frozen dataclasses, no SDK); they belong with
# the domain and should move here or to frames.py, with the adapter importing them.
from reddytalk.chat_events import ChatEvent as ChatEvent
from reddytalk.chat_events import Clause as Clause
from reddytalk.chat_events import FirstTokenLate as FirstTokenLate
from reddytalk.chat_events import InvalidToolCall as InvalidToolCall
from reddytalk.chat_events import ToolCallRequest as ToolCallRequest
from reddytalk.frames import PolicyOutput, Transcript
from reddytalk.scheduling.model import Appointment, Clinic, Patient, Slot

__all__ = [
    "AuditEvent",
    "BackOffice",
    "CallControl",
    "CallListing",
    "CallOffice",
    "CallRecord",
    "CallStore",
    "ChatModel",
    "DialoguePolicy",
    "Ehr",
    "KeyEncryptionKey",
    "Message",
    "OutboxMessage",
    "Secrets",
    "RecognitionHints",
    "SmsSender",
    "SpeechRecognizer",
    "SpeechToText",
    "TextToSpeech",
]


@dataclass(frozen=True, slots=True)
class RecognitionHints:
    """What the caller is likely to say next, from the dialogue state.

    Attributes:
        state: The dialogue state the hints belong to (also a cache key).
        jsgf: A JSGF grammar (W3C JSpeech Grammar Format) of the expected answers,
            for recognizers that take grammars. Empty means the caller speaks
            freely (a message for staff): a grammar recognizer then uses its
            general language model.
        phrases: Single phrases (names, providers, clinic words) for recognizers
            that take phrase lists.
    """

    state: str
    jsgf: str
    phrases: tuple[str, ...] = ()


class SpeechRecognizer(Protocol):
    """One call's streaming recognizer. ``accept`` never blocks."""

    def set_hints(self, hints: RecognitionHints) -> None:
        """Use ``hints`` from the next turn on."""

    def start_turn(self) -> None:
        """The caller started speaking."""

    def accept(self, pcm: bytes) -> None:
        """Feed one frame of 16-bit mono PCM as it arrives."""

    def hypothesis(self, *, trailing_silence_ms: int) -> str:
        """The current turn's words so far, if the recognizer's latest result already
        reaches the end of the caller's speech, else "".

        ``trailing_silence_ms`` is the silence fed since the last voiced frame, so the
        speech ends that long before the end of the audio fed. Called at the end of a
        turn, before ``finish_turn``, on every silent frame: it must be cheap. A
        recognizer whose final result comes at once may always return "".
        """

    def finish_turn(self) -> Awaitable[Transcript]:
        """The caller stopped: close the turn now, and await its final transcript.

        Called in order on the event loop; the next ``start_turn`` may follow before
        the returned awaitable resolves.
        """

    def close(self) -> None:
        """Release the recognizer."""


class SpeechToText(Protocol):
    """Creates recognizers, one per call."""

    async def open(
        self, *, sample_rate_hz: int, languages: Sequence[str] = ("en-US",)
    ) -> SpeechRecognizer:
        """A recognizer for a stream at ``sample_rate_hz``, ready for the first turn;
        several ``languages``: the one the caller speaks is identified at the start."""


class TextToSpeech(Protocol):
    """Speaks text as 16-bit mono PCM at the stream's rate, streamed in chunks."""

    def synthesize(self, text: str, *, sample_rate_hz: int) -> AsyncIterator[bytes]:
        """Yield PCM chunks of any size for ``text``."""


class DialoguePolicy(Protocol):
    """Decides what to say and which tools to call; one instance per call."""

    def greeting(self) -> str:
        """The first words of the call."""

    def hints(self) -> RecognitionHints:
        """What the caller is expected to say next."""

    def respond(self, heard: Transcript) -> AsyncIterator[PolicyOutput]:
        """React to one caller turn: text to say, tools called, end or transfer."""

    @property
    def last_tier(self) -> str | None:
        """Who answered the last turn (``safety``, ``deterministic``, ``fast``, ...)."""

    def reply_interrupted(self, *, ending_dropped: bool) -> None:
        """The caller talked over the last reply before all of it was heard: a write or
        an end the policy still holds back must not run; ``ending_dropped``: the call's
        end (the goodbye) was not heard, so the call goes on."""

    def checkpoint(self) -> Callable[[], None]:
        """Remember the conversation's state; calling the result puts it back.

        The session answers a turn on the recognizer's hypothesis before its final
        transcript; when the final says something else, no tool ran in that turn and
        nobody heard the answer, the answer is withdrawn and the state put back.
        """


class ChatModel(Protocol):
    """A language model that streams one chat completion with tools (Azure OpenAI).

    Events come in the order :mod:`reddytalk.chat_events` documents; a failed
    request or a broken stream raises ``ProviderError`` (``retryable`` if a retry may
    help). Stopping the iteration closes the request.
    """

    def stream(
        self,
        messages: Sequence[Mapping[str, Any]],
        *,
        tools: Sequence[Mapping[str, Any]],
        deployment: str,
    ) -> AsyncIterator[ChatEvent]:
        """Stream the completion of ``messages`` by ``deployment``."""
        ...


class Ehr(Protocol):
    """The clinic's schedule and patients (FHIR R4 in the cloud, embedded locally)."""

    async def find_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        """The patient with exactly this name and birth date, if any."""

    async def get_patient(self, *, clinic_id: str, patient_id: str) -> Patient | None:
        """The clinic's patient with this id, or None (unknown, or another clinic's)."""

    async def create_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        """Register a patient: the one with exactly this identity if there is one, else a
        new one, atomically (FHIR: a conditional create), so a retry creates nobody twice."""

    async def find_free_slots(
        self, *, clinic_id: str, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        """Free slots starting in ``[start, end)``, earliest first."""

    async def hold(
        self, *, clinic_id: str, slot_id: str, hold_key: str, until: dt.datetime
    ) -> None:
        """Keep a free slot of the clinic for the booking ``hold_key`` until ``until``.

        Holding again with the same key extends the hold. Raises ``SlotUnavailable``
        when the slot is booked or held for another key, and when it is unknown or
        another clinic's (the same refusal: another clinic's slot does not exist here).
        """

    async def release(self, *, clinic_id: str, slot_id: str, hold_key: str) -> None:
        """Drop the hold ``hold_key`` has on the clinic's slot (nothing if it has none, and
        nothing for another clinic's slot)."""

    async def book(
        self,
        *,
        clinic_id: str,
        slot_id: str,
        patient_id: str,
        appointment_type: str,
        idempotency_key: str,
    ) -> Appointment:
        """Book a free slot of the clinic; the same ``idempotency_key`` returns the same
        appointment.

        A slot held for ``idempotency_key`` can be booked by it; one held for another
        key cannot. Another clinic's slot is refused as an unknown one is
        (``SlotUnavailable``), even with the key another clinic booked it with.
        """

    async def cancel(self, *, clinic_id: str, appointment_id: str) -> Appointment:
        """Cancel the clinic's appointment and free its slot.

        Another clinic's appointment is refused as an unknown one is
        (``SlotUnavailable``), and is left as it is.
        """

    async def upcoming_appointments(
        self, *, clinic_id: str, patient_id: str, after: dt.datetime
    ) -> list[Appointment]:
        """A patient's booked appointments at the clinic after ``after``, earliest first
        (none of another clinic's)."""


@dataclass(frozen=True, slots=True)
class CallRecord:
    """What is kept of one call. ``transcript`` is PHI."""

    call_id: str
    clinic_id: str
    started_at: dt.datetime
    ended_at: dt.datetime
    outcome: str
    transcript: tuple[tuple[str, str], ...]
    tool_calls: tuple[dict[str, Any], ...] = ()
    turn_timings: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class CallListing:
    """One call as a clinic's list of calls shows it: what :class:`CallRecord` keeps
    without its PHI (no transcript, no tool calls), so listing opens nothing sealed."""

    call_id: str
    clinic_id: str
    started_at: dt.datetime
    ended_at: dt.datetime
    outcome: str
    turn_timings: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Who touched which PHI record, when and why. Holds ids, never PHI."""

    call_id: str
    clinic_id: str
    action: str
    resource: str
    at: dt.datetime
    details: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Message:
    """A message the receptionist took for the clinic's staff.

    ``text`` and ``caller_name`` are PHI. ``patient_id`` is set when the caller was
    identified in the call.
    """

    message_id: str
    call_id: str
    clinic_id: str
    taken_at: dt.datetime
    text: str
    caller_name: str = ""
    patient_id: str | None = None
    status: str = "open"


@dataclass(frozen=True, slots=True)
class OutboxMessage:
    """A text message the embedded profile keeps instead of sending it.

    ``to_number`` and ``text`` are PHI (kept out of repr); ``message_id`` is the
    sender's idempotency key, so one message is kept once.
    """

    message_id: str
    clinic_id: str
    call_id: str
    created_at: dt.datetime
    to_number: str = field(repr=False)
    text: str = field(repr=False)
    status: str = "queued"


class CallStore(Protocol):
    """ReddyTalk's own records (Cosmos DB in the cloud, SQLite locally)."""

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic, and map exactly ``clinic.phone_numbers`` to it.

        Numbers it had and no longer lists are released (another clinic may then take
        them). A number rings one clinic only.

        Raises:
            ValueError: A number is not E.164, is listed twice, or belongs to another
                clinic (naming it); nothing was changed.
        """

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns this phone number."""

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id."""

    async def list_clinics(self) -> list[Clinic]:
        """Every clinic, sorted by ``clinic_id``."""

    async def remove_clinic(self, clinic_id: str) -> bool:
        """Remove a clinic and release its numbers; False if there is no such clinic.

        The clinic's call records, messages, audit trail and data keys are kept
        (medical-record retention): removing stops its calls, it erases no record.

        Raises:
            ClinicBusy: Calls to the clinic are in progress (nothing was changed).
        """

    async def call_started(self, call_id: str, clinic_id: str, *, at: dt.datetime) -> None:
        """The call is in progress from ``at`` (aware), until :meth:`call_ended`.

        A call that started more than 4 hours ago and never ended (its worker crashed)
        no longer counts.
        """

    async def call_ended(self, call_id: str) -> None:
        """The call is over (nothing if it was never started, or ended already)."""

    async def calls_in_progress(self, clinic_id: str, *, now: dt.datetime) -> int:
        """How many calls to the clinic started (at most 4 hours before ``now``) and have
        not ended."""

    async def save_call(self, record: CallRecord, *, replace: bool = True) -> bool:
        """Store a finished call; whether it was stored.

        The same ``call_id`` again replaces the record, unless ``replace`` is False:
        then a stored record wins (atomically: the conversation's own record and the
        session's stub for a call that never reached the media worker may race).
        """

    async def get_call(self, call_id: str, *, clinic_id: str | None = None) -> CallRecord | None:
        """A stored call; with ``clinic_id``, only if it is that clinic's (another
        clinic's call is None, and none of its PHI is opened)."""

    async def list_calls(
        self, clinic_id: str, *, limit: int = 50, before: dt.datetime | None = None
    ) -> list[CallListing]:
        """The clinic's stored calls, newest ``started_at`` first, without their PHI.

        Opens nothing sealed (no transcript, no tool calls), so it needs no audit record.
        Paging: pass the last listed call's ``started_at`` as ``before`` for the next
        page (calls that started at exactly that instant are not on it).

        Args:
            clinic_id: Whose calls.
            limit: At most this many, 1 to 200.
            before: Only calls that started strictly before this (aware) time.

        Raises:
            ValueError: ``limit`` is out of range, or ``before`` is naive.
        """

    async def record_audit(self, event: AuditEvent) -> None:
        """Append an audit record."""

    async def audit_trail(self, call_id: str) -> list[AuditEvent]:
        """The audit records of one call (``details`` as recorded), in the order they were
        appended: oldest first."""

    async def appointment_changes(self, clinic_id: str, *, since: dt.datetime) -> list[AuditEvent]:
        """The clinic's audit records of appointments its calls booked, moved or cancelled
        (resource ``Appointment/...``, ``details["change"]``) at or after ``since``, newest
        first (ids only, no PHI).

        Raises:
            ValueError: ``since`` is naive.
        """

    async def save_message(self, message: Message) -> bool:
        """Keep a message for staff; False (and nothing changed) if its id is kept already."""

    async def list_messages(self, clinic_id: str) -> list[Message]:
        """The clinic's messages, oldest first."""

    async def set_message_status(self, clinic_id: str, message_id: str, *, status: str) -> bool:
        """Mark the clinic's message ``open`` or ``done``; False (and nothing changed) when
        the clinic has no such message. Setting the status it has is a success. Opens no
        PHI: the text and caller name stay sealed.

        Raises:
            ValueError: ``status`` is neither ``open`` nor ``done`` (nothing changed).
        """

    async def claim(self, key: str) -> bool:
        """Claim ``key`` once: True the first time, False for every later claim.

        The idempotency record behind at-least-once deliveries: the same Event
        Grid event or callback delivered twice acts once. Atomic across processes.
        """

    async def release(self, key: str) -> None:
        """Give up a claim whose work failed, so a redelivery may try again."""

    async def save_call_number(
        self, call_id: str, clinic_id: str, *, party: str, number: str
    ) -> None:
        """Keep a phone number (E.164, PHI: sealed) for one call; again replaces it.

        ``party`` says whose: ``caller`` (the number the call came from). Only the
        call's own tools read it back, to text a confirmation when the EHR has no phone
        for the patient.
        """

    async def get_call_number(self, call_id: str, clinic_id: str, *, party: str) -> str | None:
        """The number :meth:`save_call_number` kept for the call and party, or None."""

    async def add_to_outbox(self, message: OutboxMessage) -> bool:
        """Keep a text message (number and text sealed); False if its id is kept already."""

    async def list_outbox(self, clinic_id: str) -> list[OutboxMessage]:
        """The clinic's outbox, oldest first."""


class CallControl(Protocol):
    """Telephony call control: what ACS Call Automation does for a call.

    Errors are ``ProviderError`` (``retryable`` when the service said so: 429, 5xx,
    timeouts). Phone numbers are E.164; no method logs them.
    """

    async def answer(
        self,
        *,
        incoming_call_context: str,
        callback_url: str,
        media_url: str,
        sample_rate_hz: int,
        operation_context: str,
    ) -> str:
        """Answer with bidirectional PCM media streaming to ``media_url``; the connection id."""
        ...

    async def reject(self, *, incoming_call_context: str) -> None:
        """Decline a call nobody here should answer (an unknown number)."""
        ...

    async def play_text(
        self, *, call_connection_id: str, text: str, voice_name: str, operation_context: str
    ) -> None:
        """Have the telephony service itself say ``text`` (when the media stream failed)."""
        ...

    async def transfer(
        self, *, call_connection_id: str, to_phone_number: str, operation_context: str
    ) -> None:
        """Hand the call to a phone number (the clinic's staff line)."""
        ...

    async def hang_up(self, *, call_connection_id: str) -> None:
        """End the call for everyone."""
        ...

    async def close(self) -> None:
        """Release the connections it holds (at process shutdown)."""
        ...


class CallOffice(Protocol):
    """What one call's tools reach beyond the conversation: the back office.

    Reads answer at once; writes (book, reschedule, cancel) run as workflows to
    their end, and the same ``instance_id`` again returns the first run's result.
    In process on the embedded profile; the Functions app's tools API in the
    cloud, so the media worker holds no EHR or store credentials there. Every
    touch of PHI leaves an audit record where it runs. Errors are
    ``ProviderError``; refusals the caller should hear are ``SchedulingError``.
    """

    async def find_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        """The clinic's patient with exactly this name and birth date, if any."""
        ...

    async def register_patient(
        self, *, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        """The patient with this name and birth date, registered now if new (so a retry
        registers nobody twice)."""
        ...

    async def find_free_slots(
        self, *, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        """The clinic's free slots starting in ``[start, end)``, earliest first."""
        ...

    async def upcoming_appointments(self, *, patient_id: str) -> list[Appointment]:
        """The patient's booked appointments from now on, earliest first.

        Only for the patient this call found or registered.
        """
        ...

    async def take_message(self, message: Message) -> None:
        """Keep a message for the clinic's staff; the same ``message_id`` again keeps one."""
        ...

    async def keep_record(self, record: CallRecord) -> None:
        """Store the finished conversation's record (transcript, tool calls, timings)."""
        ...

    async def run(self, name: str, *, instance_id: str, data: dict[str, Any]) -> dict[str, Any]:
        """Run write workflow ``name`` as ``instance_id`` with input ``data``; its result."""
        ...

    async def send_confirmation(self, name: str, *, instance_id: str, data: dict[str, Any]) -> bool:
        """Text the caller a confirmation of write ``name``, which this call ran as
        ``instance_id`` with ``data`` (the same arguments as :meth:`run`), after the
        caller said yes to a text. Whether this request sent it (False: sent already).

        The back office composes the text from the appointment the write returned and
        picks the number itself (the patient's phone in the EHR, else the number the
        call came from): neither comes from the conversation.

        Raises:
            SchedulingError: This call made no such change, or there is no number to
                text (with a reason the caller can hear).
            ProviderError: The text could not be sent; the appointment stands.
        """
        ...

    async def end_call(self, *, transfer_reason: str | None) -> None:
        """The conversation is over: hang up, or transfer to the clinic's staff.

        Closing the media stream does not end a telephone call; the call's session
        does it through call control.
        """
        ...


class BackOffice(Protocol):
    """Where calls' tools run: in process, or the Functions app's tools API."""

    def for_call(self, *, call_id: str, clinic_id: str, call_token: str | None) -> CallOffice:
        """The back office of one call (``call_token``: the tools token ACS handed over)."""
        ...

    async def close(self) -> None:
        """Release what it holds (at shutdown)."""
        ...


class SmsSender(Protocol):
    """Sends text messages: ACS SMS in the cloud, the store's outbox on the embedded
    profile. Numbers are E.164; no method logs a number or a text.
    """

    async def send(
        self,
        to_number: str,
        text: str,
        *,
        from_number: str,
        clinic_id: str,
        call_id: str,
        idempotency_key: str,
    ) -> str:
        """Send ``text`` to ``to_number`` from ``from_number`` (the clinic's number); the
        message id.

        ``idempotency_key`` names the message: an adapter that can keep one message per
        key does (the outbox does; ACS deduplicates only its SDK's resends of one
        request, see :mod:`reddytalk.providers.sms.acs_sms`). The caller of ``send``
        claims the key first.

        Raises:
            ProviderError: Not sent; ``retryable`` when trying again may help (429,
                5xx, timeouts), not for a number that cannot take the text.
        """
        ...

    async def close(self) -> None:
        """Release the connections it holds (at shutdown)."""
        ...


class KeyEncryptionKey(Protocol):
    """The key that wraps each clinic's data key (envelope encryption of PHI).

    A Key Vault key in the cloud, a local key file on the embedded profile. It
    never leaves its home: data keys go to it to be wrapped and unwrapped.
    """

    @property
    def key_id(self) -> str:
        """The id of the key version that :meth:`wrap` uses now (stored next to each
        wrapped data key, so rotation can tell old wraps from new)."""
        ...

    async def wrap(self, data_key: bytes) -> bytes:
        """``data_key`` wrapped with the current key version."""
        ...

    async def unwrap(self, wrapped: bytes, *, key_id: str) -> bytes:
        """The data key that the key version ``key_id`` wrapped.

        Raises:
            ProviderError: The key is unreachable (retryable) or the wrap is not its
                own (not retryable).
        """
        ...


class Secrets(Protocol):
    """Named secrets: Key Vault through managed identity in the cloud, the environment
    on the embedded profile. Values never reach logs or reprs."""

    async def get(self, name: str) -> str | None:
        """The secret's current value, or None if there is no such secret."""
        ...
