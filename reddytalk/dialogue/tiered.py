"""The tiered receptionist: code first, a fast model when code did not understand, a
stronger model for the hard turns.

A model's first token costs 400-800 ms on Azure OpenAI, and most turns are predictable
answers, so each caller turn goes to the first tier that can take it:

1. **safety**: an emergency (:mod:`reddytalk.dialogue.safety`) is answered by code before
   any model hears the turn;
2. **deterministic**: :class:`ReceptionistPolicy` answers a turn it understood in its
   current state (a yes to a read-back, a birth date, "the first one");
3. **fast**: otherwise the fast deployment answers, with the call so far and the
   receptionist's tools; text is said clause by clause as it streams;
4. **complex**: the stronger deployment, by :func:`is_complex_turn` and the write rule
   below;
5. **fallback**: the model failed twice (or once, when a retry cannot help): the
   deterministic policy answers that turn, so the caller never hears silence.

Escalation rule (tested): a turn starts on the complex deployment when the caller names
three or more scheduling constraints at once (day, part of day, clock time, clinician,
appointment type); and when the fast deployment asks for a write (``book``,
``reschedule``, ``cancel``), that request is not run: the turn so far goes to the complex
deployment, which decides the write itself. The rest of the turn stays on complex.

Tool calls run through the same :class:`ReceptionistTools` and guardrails; a refusal goes
back to the model as the tool's result, with the reason, and the model goes on. The model
only ever sees what the call's tools returned: whether the caller was verified (never a
record), slots offered to this call, and the verified patient's own appointments; writes
name only those slots and appointments.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from enum import StrEnum
from typing import Any

from reddytalk.dialogue import phrasing, spoken
from reddytalk.dialogue.policy import ReceptionistPolicy
from reddytalk.dialogue.state import snapshot
from reddytalk.dialogue.tools import ReceptionistTools
from reddytalk.dialogue.understanding import find_appointment_type, find_provider
from reddytalk.errors import BookingRefused, ProviderError, SchedulingError, SlotUnavailable
from reddytalk.frames import EndCall, PolicyOutput, Say, Transcript, TransferToStaff
from reddytalk.ports import (
    ChatModel,
    Clause,
    FirstTokenLate,
    InvalidToolCall,
    RecognitionHints,
    ToolCallRequest,
)
from reddytalk.scheduling.model import Appointment, Slot

__all__ = [
    "ACKNOWLEDGEMENTS",
    "HOLDING_PHRASE",
    "INSTRUCTIONS",
    "WRITE_TOOLS",
    "Tier",
    "TieredPolicy",
    "acknowledgement",
]

HOLDING_PHRASE = "One moment."
#: Said the moment a turn goes to a model, from cached audio (the voice's phrase cache
#: keeps them), so the caller hears the receptionist while the model's first token is
#: 450-800 ms away: "Let me check." before a question or a search, "Okay." otherwise.
ACKNOWLEDGEMENTS = ("Let me check.", "Okay.")
_QUESTION_WORDS = frozenset(
    "do does did can could is are was were will would what when where which who whose why "
    "how should may have has".split()
)
WRITE_TOOLS = frozenset({"book", "reschedule", "cancel"})
_READ_BACK = "Read back to the caller, who was asked to confirm; wait for the answer."
_HELD_BACK = WRITE_TOOLS | {"end_call", "send_confirmation"}
_MAX_ROUNDS = 5  # completions per turn: tool rounds and the escalation together
_SEVERAL_CONSTRAINTS = 3
_COLLABORATORS = ("_tools", "_clinic", "_chat", "_schemas", "_deployments", "_instructions")
INSTRUCTIONS = (
    "You are the virtual receptionist of a medical clinic, speaking with a caller on the "
    "phone. Answer in one to three short spoken sentences, without lists or markup. "
    "Use the tools for anything about patients or the schedule; never invent times, "
    "records or appointments. Verify the caller's identity (full name and date of birth) "
    "before anything about their appointments. Before booking, moving or cancelling, read "
    "the details back and wait for the caller's yes. If a tool refuses, tell the caller why "
    "in plain words and offer what can be done. Give no medical advice."
)

_CLOSED_NO_TRANSFER = (
    "the office is closed: offer to take a message for the staff instead"
)


class Tier(StrEnum):
    """Who answered a turn."""

    SAFETY = "safety"
    DETERMINISTIC = "deterministic"
    FAST = "fast"
    COMPLEX = "complex"
    FALLBACK = "fallback"


class _ModelFailed(Exception):
    """The model could not answer this turn; the deterministic policy does."""


@dataclasses.dataclass
class _Round:
    """What one completion said and asked for."""

    clauses: list[str] = dataclasses.field(default_factory=list)
    requests: list[ToolCallRequest | InvalidToolCall] = dataclasses.field(default_factory=list)


class TieredPolicy:
    """One call's conversation, answered by the cheapest tier that can.

    Args:
        tools: The call's tools and guardrails (shared with the deterministic policy).
        chat: The language model.
        tool_schemas: The tools as the model sees them (``tool_schemas.receptionist_tools()``).
        fast_deployment: The deployment for ordinary turns.
        complex_deployment: The deployment the escalation rule picks.
        instructions: The stable part of the system prompt (first, for prompt caching).
        acknowledge: Say a fitting acknowledgement (:data:`ACKNOWLEDGEMENTS`) as a turn
            goes to a model; it then stands in for the holding phrase.
    """

    def __init__(
        self,
        *,
        tools: ReceptionistTools,
        chat: ChatModel,
        tool_schemas: Sequence[Mapping[str, Any]],
        fast_deployment: str,
        complex_deployment: str,
        instructions: str = INSTRUCTIONS,
        acknowledge: bool = True,
    ) -> None:
        self._tools = tools
        self._clinic = tools.clinic
        self._chat = chat
        self._schemas = tool_schemas
        self._deployments = {Tier.FAST: fast_deployment, Tier.COMPLEX: complex_deployment}
        self._instructions = instructions
        self._acknowledge = acknowledge
        self._deterministic = ReceptionistPolicy(tools=tools)
        self._history: list[dict[str, Any]] = []
        self._slots: dict[str, Slot] = {}  # offered to this call
        self._appointments: dict[str, Appointment] = {}  # the verified patient's own
        self.last_tier: Tier | None = None
        self._interrupted = False  # the caller talked over this turn's reply
        self._read_back_said: str | None = None  # code read a write back this turn

    def greeting(self) -> str:
        """The clinic's greeting (kept in the conversation the model sees)."""
        greeting = self._deterministic.greeting()
        if not self._history:
            self._history.append({"role": "assistant", "content": greeting})
        return greeting

    def hints(self) -> RecognitionHints:
        """What the deterministic policy expects next."""
        return self._deterministic.hints()

    def reply_interrupted(self, *, ending_dropped: bool) -> None:
        """The caller talked over this turn's reply: the writes and the end it still asks
        for are not run (the model is told why); an unheard goodbye does not end the call."""
        self._interrupted = True
        self._deterministic.reply_interrupted(ending_dropped=ending_dropped)

    def checkpoint(self) -> Callable[[], None]:
        """Remember the conversation (the model's and code's); the result puts it back."""
        own = snapshot(self, shared=(*_COLLABORATORS, "_deterministic"))
        deterministic = self._deterministic.checkpoint()

        def restore() -> None:
            own()
            deterministic()

        return restore

    async def respond(self, heard: Transcript) -> AsyncIterator[PolicyOutput]:
        """Answer one caller turn by the first tier that can; ``last_tier`` says which."""
        self._interrupted = False
        if (emergency := self._deterministic.answer_emergency(heard.text)) is not None:
            self.last_tier = Tier.SAFETY
            for output in emergency:
                yield output
            return
        said: list[str] = []
        async for output in self._deterministic.respond_if_understood(heard):
            self.last_tier = Tier.DETERMINISTIC
            said += [output.text] if isinstance(output, Say) else []
            yield output
        if said:
            self._remember(heard.text, said)
            return
        if not heard.text.strip():  # no words: code asks again, no model needed
            self.last_tier = Tier.DETERMINISTIC
            async for output in self._deterministic.respond(heard):
                yield output
            return
        is_complex = self.is_complex_turn(heard.text)
        tier = Tier.COMPLEX if is_complex else Tier.FAST
        self.last_tier = tier
        if self._acknowledge:
            yield Say(acknowledgement(heard.text, is_complex=is_complex), is_filler=True)
        try:
            async for output in self._answer_with_model(
                heard.text, tier, acknowledged=self._acknowledge
            ):
                yield output
            if self._read_back_said is None:  # else the read-back's answer is code's
                self._deterministic.hand_back()
        except _ModelFailed:
            self.last_tier = Tier.FALLBACK
            said = []
            async for output in self._deterministic.respond(heard):
                said += [output.text] if isinstance(output, Say) else []
                yield output
            self._remember(heard.text, said)

    def is_complex_turn(self, text: str) -> bool:
        """Whether the caller names several scheduling constraints at once."""
        today = self._tools.now().astimezone(self._clinic.tz).date()
        when = spoken.parse_when(text, today=today)
        found = [
            *((when.day, when.part_of_day, when.clock_time) if when else ()),
            find_provider(text, self._clinic.providers),
            find_appointment_type(text, self._clinic.appointment_types),
        ]
        return sum(item is not None for item in found) >= _SEVERAL_CONSTRAINTS

    def _remember(self, heard: str, said: list[str]) -> None:
        self._history.append({"role": "user", "content": heard})
        self._history.append({"role": "assistant", "content": " ".join(said)})

    def _prefix(self) -> list[dict[str, Any]]:
        """The stable part of the prompt: instructions, then the clinic's facts for today."""
        clinic = self._clinic
        facts = "\n".join([
            f"Clinic: {clinic.name}. {phrasing.say_address(clinic)} {phrasing.say_hours(clinic)}",
            f"Today is {self._tools.now().astimezone(clinic.tz).date():%A, %Y-%m-%d}.",
            "Clinicians (provider_id: name): "
            + "; ".join(f"{p.provider_id}: {p.display_name}" for p in clinic.providers),
            "Appointment types (code: name): "
            + "; ".join(f"{t.code}: {t.display_name}" for t in clinic.appointment_types),
        ])  # fmt: skip
        return [
            {"role": "system", "content": self._instructions},
            {"role": "system", "content": facts},
        ]

    async def _answer_with_model(
        self, text: str, tier: Tier, *, acknowledged: bool
    ) -> AsyncIterator[PolicyOutput]:
        turn: list[dict[str, Any]] = [{"role": "user", "content": text}]
        held = [acknowledged]  # the holding phrase is said once per turn, if at all
        spoken_any = False
        ending: PolicyOutput | None = None
        self._read_back_said = None
        for _ in range(_MAX_ROUNDS):
            done = _Round()
            messages = [*self._prefix(), *self._history, *turn]
            async for output in self._complete(messages, tier, done, held):
                spoken_any = True
                yield output
            asked = {r.name for r in done.requests}
            if tier is Tier.FAST and asked & WRITE_TOOLS:
                # The escalation rule: a write is decided by the complex deployment.
                tier = self.last_tier = Tier.COMPLEX
                if done.clauses:
                    turn.append({"role": "assistant", "content": " ".join(done.clauses)})
                continue
            if not done.requests:
                turn.append({"role": "assistant", "content": " ".join(done.clauses)})
                break
            turn.append(_assistant_calls(done))
            for request in done.requests:
                outputs, result, end = await self._run_tool(request)
                for output in outputs:
                    spoken_any = spoken_any or isinstance(output, Say)
                    yield output
                ending = ending or end
                turn.append({"role": "tool", "tool_call_id": request.id,
                             "content": json.dumps(result)})  # fmt: skip
            if self._read_back_said is not None:
                # Code asked the caller to confirm: the turn ends on that question, and
                # the caller's yes or no is the deterministic policy's to understand.
                turn.append({"role": "assistant", "content": self._read_back_said})
                break
        if not spoken_any and ending is None:
            raise _ModelFailed  # never silence: the deterministic policy answers
        self._history += turn
        if ending is not None:
            yield ending

    async def _complete(
        self, messages: list[dict[str, Any]], tier: Tier, done: _Round, held: list[bool]
    ) -> AsyncIterator[PolicyOutput]:
        """One completion, retried once when nothing was said yet and a retry may help."""
        for attempt in (1, 2):
            done.clauses.clear()
            done.requests.clear()
            try:
                stream = self._chat.stream(
                    messages, tools=self._schemas, deployment=self._deployments[tier]
                )
                async for event in stream:
                    if isinstance(event, FirstTokenLate) and not held[0]:
                        held[0] = True
                        yield Say(HOLDING_PHRASE, is_filler=True)
                    elif isinstance(event, Clause):
                        done.clauses.append(event.text)
                        yield Say(event.text)
                    elif isinstance(event, ToolCallRequest | InvalidToolCall):
                        done.requests.append(event)
                return
            except ProviderError as error:
                if attempt == 2 or done.clauses or not error.retryable:
                    raise _ModelFailed from error

    async def _run_tool(
        self, request: ToolCallRequest | InvalidToolCall
    ) -> tuple[list[PolicyOutput], dict[str, Any], PolicyOutput | None]:
        """Run one of the model's tool calls: what to yield now (the recorded call, a
        read-back), the model's result, and an end or transfer to yield once the turn
        is said."""
        if isinstance(request, InvalidToolCall):
            return [], {"error": request.reason}, None
        if self._interrupted and request.name in _HELD_BACK:
            # The caller talked over this reply before hearing it: its write or its
            # goodbye must not happen on words the caller did not hear.
            return [], {"error": "Not done: the caller interrupted this reply."}, None
        tools, args = self._tools, request.arguments
        try:
            match request.name:
                case "verify_identity" | "register_patient":
                    run = tools.verify_identity
                    if request.name == "register_patient":
                        run = tools.register_patient
                    call = await run(
                        given_name=str(args["given_name"]),
                        family_name=str(args["family_name"]),
                        birth_date=dt.date.fromisoformat(str(args["birth_date"])),
                    )
                    self._appointments = {}
                    return [call], {"verified": tools.patient is not None}, None
                case "find_slots":
                    call, offers = await tools.find_slots(
                        day=_date(args.get("day")),
                        part_of_day=args.get("part_of_day"),
                        clock_time=_time(args.get("clock_time")),
                        provider_id=args.get("provider_id"),
                    )
                    self._slots.update({slot.slot_id: slot for slot in offers})
                    facts = [self._slot_facts(slot) for slot in offers]
                    return [call], {"slots": facts}, None
                case "upcoming_appointments":
                    call, found = await tools.upcoming_appointments()
                    self._appointments = {a.appointment_id: a for a in found}
                    facts = [self._appointment_facts(a) for a in found]
                    return [call], {"appointments": facts}, None
                case "book" | "reschedule" | "cancel":
                    return await self._write(request.name, args)
                case "send_confirmation":
                    return [await tools.send_confirmation()], {"sent": True}, None
                case "take_message":
                    call = await tools.take_message(
                        text=str(args["text"]), caller_name=str(args.get("caller_name") or "")
                    )
                    return [call], {"taken": True}, None
                case "transfer_to_staff":
                    reason = str(args.get("reason") or "caller_request")
                    if tools.clinic.takes_messages_instead_at(tools.now()):
                        # After hours the clinic takes messages instead (its config).
                        return [], {"transferring": False, "closed": _CLOSED_NO_TRANSFER}, None
                    call = tools.transfer_to_staff(reason=reason)
                    return [call], {"transferring": True}, TransferToStaff(reason=reason)
                case "end_call":
                    return [tools.end_call()], {"ending": True}, EndCall()
                case _:
                    return [], {"error": "no such tool"}, None
        except SchedulingError as refusal:  # BookingRefused and the like: the model is told
            return [], {"refused": str(refusal)}, None
        except ProviderError:
            return [], {"error": "The schedule cannot be reached right now."}, None
        except (KeyError, ValueError, TypeError, StopIteration):
            return [], {"error": "invalid arguments"}, None

    async def _write(
        self, action: str, args: Mapping[str, Any]
    ) -> tuple[list[PolicyOutput], dict[str, Any], PolicyOutput | None]:
        """A booking, move or cancel the model asked for.

        Only for the verified patient, only on slots offered to this call and the
        patient's own appointments; and only after code read the change back and the
        caller said yes to it. Without that yes the change is read back here (the
        words are code's, not the model's) and the caller's answer goes to the
        deterministic policy, which runs the write on a clear yes.
        """
        tools, clinic = self._tools, self._clinic
        if tools.patient is None:
            raise BookingRefused("I need to confirm who you are first.")
        appointment = self._own(str(args["appointment_id"])) if action != "book" else None
        if action == "cancel":
            assert appointment is not None
            slot = Slot(appointment.slot_id, appointment.provider_id, appointment.start,
                        appointment.start)  # fmt: skip
        else:
            slot = self._offered(str(args["slot_id"]))
        kind = clinic.appointment_type(
            str(args["appointment_type"]) if appointment is None else appointment.appointment_type
        )
        if not tools.is_confirmed(action, slot.slot_id):
            question = self._deterministic.read_back(
                action=action, slot=slot, appointment_type=kind, appointment=appointment
            )
            self._read_back_said = question.text
            return [question], {"read_back": _READ_BACK}, None
        if action == "book":
            call, booked = await tools.book(slot=slot, appointment_type=kind.code)
            return [call], {"booked": self._appointment_facts(booked)}, None
        assert appointment is not None
        if action == "cancel":
            return [await tools.cancel(appointment=appointment)], {"cancelled": True}, None
        call, moved = await tools.reschedule(appointment=appointment, slot=slot)
        return [call], {"moved": self._appointment_facts(moved)}, None

    def _offered(self, slot_id: str) -> Slot:
        if slot_id not in self._slots:
            raise SlotUnavailable("I couldn't find that time.")
        return self._slots[slot_id]

    def _own(self, appointment_id: str) -> Appointment:
        if appointment_id not in self._appointments:
            raise SlotUnavailable("I couldn't find that appointment.")
        return self._appointments[appointment_id]

    def _slot_facts(self, slot: Slot) -> dict[str, str]:
        return {
            "slot_id": slot.slot_id,
            "start": slot.start.astimezone(self._clinic.tz).isoformat(timespec="minutes"),
            "clinician": self._clinic.provider(slot.provider_id).display_name,
        }

    def _appointment_facts(self, appointment: Appointment) -> dict[str, str]:
        return {
            "appointment_id": appointment.appointment_id,
            "type": appointment.appointment_type,
            "start": appointment.start.astimezone(self._clinic.tz).isoformat(timespec="minutes"),
            "clinician": self._clinic.provider(appointment.provider_id).display_name,
        }


def _assistant_calls(done: _Round) -> dict[str, Any]:
    """The assistant message that asked for ``done``'s tools (chat completions format)."""
    calls = [
        {
            "id": r.id,
            "type": "function",
            "function": {
                "name": r.name,
                "arguments": json.dumps(r.arguments) if isinstance(r, ToolCallRequest) else "{}",
            },
        }
        for r in done.requests
    ]
    return {"role": "assistant", "content": " ".join(done.clauses) or None, "tool_calls": calls}


def _date(value: object) -> dt.date | None:
    return dt.date.fromisoformat(str(value)) if value else None


def _time(value: object) -> dt.time | None:
    return dt.time.fromisoformat(str(value)) if value else None


def acknowledgement(text: str, *, is_complex: bool = False) -> str:
    """The acknowledgement that fits the caller's words: "Let me check." for a question
    or a search with several constraints, else "Okay."."""
    words = text.lower().split()
    if is_complex or (words and words[0] in _QUESTION_WORDS) or text.rstrip().endswith("?"):
        return ACKNOWLEDGEMENTS[0]
    return ACKNOWLEDGEMENTS[1]
