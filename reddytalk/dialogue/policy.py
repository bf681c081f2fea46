"""The deterministic receptionist: a dialogue state machine with the same tools an
LLM policy uses.

It produces the same kind of turn a model will: text to say (sentence by sentence,
so speech starts on the first), tool calls, and an end or a transfer. Emergencies
are decided by :mod:`reddytalk.dialogue.safety` before anything else; bookings and
messages for staff go through :class:`ReceptionistTools`, whose guardrails hold
whatever the policy does.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import AsyncIterator, Callable

from reddytalk.dialogue import phrasing, spoken
from reddytalk.dialogue.grammar import DialogueState, hints_for
from reddytalk.dialogue.safety import detect_emergency
from reddytalk.dialogue.state import snapshot
from reddytalk.dialogue.tools import ReceptionistTools
from reddytalk.dialogue.understanding import (
    Intent,
    detect_intent,
    find_appointment_type,
    find_choice,
    find_provider,
    is_no,
    is_yes,
    parse_full_name,
)
from reddytalk.errors import ProviderError, SchedulingError
from reddytalk.frames import EndCall, PolicyOutput, Say, Transcript, TransferToStaff
from reddytalk.ports import RecognitionHints
from reddytalk.scheduling.model import Appointment, AppointmentType, Provider, Slot

__all__ = ["ReceptionistPolicy"]

S = DialogueState
_ANYTHING_ELSE = "Is there anything else I can help you with?"
_CLOSED_TAKE_MESSAGE = (
    "Our office is closed right now, so I can't connect you with our staff. "
    "I can take a message, and someone will call you back. What would you like me to pass on?"
)
_OFFER_TEXT = "Would you like a text message confirmation?"
_MAX_MISUNDERSTOOD = 2


class ReceptionistPolicy:
    """One call's conversation.

    Args:
        tools: The call's tools (they hold the clinic, the EHR and the clock).
    """

    def __init__(self, *, tools: ReceptionistTools) -> None:
        self._tools = tools
        self._clinic = tools.clinic
        self.state = S.HOW_CAN_I_HELP
        self._intent: Intent | None = None
        self._name: tuple[str, str] | None = None
        self._birth_date: dt.date | None = None
        self._type: AppointmentType | None = None
        self._provider: Provider | None = None
        self._when: spoken.When | None = None
        self._offers: list[Slot] = []
        self._chosen: Slot | None = None
        self._appointments: list[Appointment] = []
        self._target: Appointment | None = None
        self._message = ""
        self._texting_a_cancel = False
        self._misunderstood = 0
        self._last_prompt = ""
        self.last_tier: str | None = None

    def greeting(self) -> str:
        """The clinic's greeting: its own (configured) or the standard one."""
        if self._clinic.greeting:
            return self._clinic.greeting
        return (
            f"Thank you for calling {self._clinic.name}. This is the virtual receptionist. "
            "How can I help you today?"
        )

    def hints(self) -> RecognitionHints:
        """The grammar of what the caller may say next, and the phrases to listen for:
        the clinic's words and, once known, the caller's own name (for phrase lists;
        the name never reaches a log)."""
        hints = hints_for(self.state, self._clinic)
        patient = self._tools.patient
        name = (patient.given_name, patient.family_name) if patient else self._name
        if name is None:
            return hints
        return dataclasses.replace(hints, phrases=(*hints.phrases, " ".join(name), *name))

    def _today(self) -> dt.date:
        return self._tools.now().astimezone(self._clinic.tz).date()

    def _ask(self, state: DialogueState, prompt: str) -> Say:
        self.state = state
        self._last_prompt = prompt
        return Say(prompt)

    async def respond(self, heard: Transcript) -> AsyncIterator[PolicyOutput]:
        """React to one caller turn."""
        self.last_tier = "safety" if detect_emergency(heard.text) else "deterministic"
        understood = False
        async for output in self.respond_if_understood(heard):
            understood = True
            yield output
        if not understood:
            for output in self._not_understood():
                yield output

    def answer_emergency(self, text: str) -> list[PolicyOutput] | None:
        """The answer to an emergency in ``text`` (and the call ends), or None."""
        if (emergency := detect_emergency(text)) is None:
            return None
        self.state = S.ENDED
        return [
            Say(emergency.instruction),
            self._tools.transfer_to_staff(reason=f"emergency_{emergency.kind.value}"),
            TransferToStaff(reason="emergency"),
        ]

    def reply_interrupted(self, *, ending_dropped: bool) -> None:
        """The caller talked over the reply. This policy holds nothing back (it writes
        only on the caller's yes, before it answers), but a goodbye that was not heard
        does not end the call: the caller is asked what else they need."""
        if ending_dropped and self.state is S.ENDED:
            self.state, self._last_prompt = S.ANYTHING_ELSE, _ANYTHING_ELSE

    def checkpoint(self) -> Callable[[], None]:
        """Remember the conversation's state (and the tools'); the result puts it back."""
        own = snapshot(self, shared=("_tools", "_clinic"))
        tools = self._tools.checkpoint()

        def restore() -> None:
            own()
            tools()

        return restore

    def read_back(
        self,
        *,
        action: str,
        slot: Slot,
        appointment_type: AppointmentType,
        appointment: Appointment | None = None,
    ) -> Say:
        """Take over a write another policy (the model) asked for: read it back and
        wait in :attr:`DialogueState.CONFIRM`, so the caller's yes is understood here
        and the write runs through the same confirmed path as this policy's own.

        Args:
            action: ``book``, ``reschedule`` or ``cancel``.
            slot: The slot to book or move to (for a cancel, the appointment's slot).
            appointment_type: The visit's type.
            appointment: The verified patient's appointment to move or cancel.
        """
        self._intent = {"book": Intent.BOOK, "reschedule": Intent.RESCHEDULE,
                        "cancel": Intent.CANCEL}[action]  # fmt: skip
        self._type, self._target, self._chosen = appointment_type, appointment, slot
        self._offers = [slot]
        self._tools.note_read_back(slot, action)
        details = phrasing.say_appointment(
            type_name=appointment_type.display_name,
            provider_name=self._clinic.provider(slot.provider_id).display_name,
            start=slot.start,
            clinic=self._clinic,
        )
        question = {
            "book": "Shall I book it?",
            "reschedule": "Shall I move your appointment?",
            "cancel": "Shall I cancel it?",
        }[action]
        return self._ask(S.CONFIRM, f"Let me confirm: {details}. {question}")

    def hand_back(self) -> None:
        """Another policy answered the last turn: the question this one asked is moot,
        so the caller's next words are taken as a new request."""
        if self.state is not S.ENDED:
            self.state, self._last_prompt = S.HOW_CAN_I_HELP, ""

    async def respond_if_understood(self, heard: Transcript) -> AsyncIterator[PolicyOutput]:
        """React to one caller turn it understood in the current state; yields nothing,
        and changes nothing, for a turn it did not understand."""
        text = heard.text
        if (emergency := self.answer_emergency(text)) is not None:
            for output in emergency:
                yield output
            return
        intent = detect_intent(text)
        if intent is Intent.STAFF or (self.state is S.OFFER_STAFF and is_yes(text)):
            if self._clinic.takes_messages_instead_at(self._tools.now()):
                # After hours with no one on call: the clinic asked for a message instead.
                yield self._ask(S.ASK_MESSAGE, _CLOSED_TAKE_MESSAGE)
                return
            self.state = S.ENDED
            yield Say("Of course. I am connecting you with our staff now.")
            yield self._tools.transfer_to_staff(reason="caller_request")
            yield TransferToStaff(reason="caller_request")
            return
        if intent is Intent.REPEAT and self._last_prompt:
            yield Say(self._last_prompt)
            return
        handler = {
            S.HOW_CAN_I_HELP: self._on_request,
            S.ANYTHING_ELSE: self._on_anything_else,
            S.OFFER_STAFF: self._on_request,
            S.ASK_NAME: self._on_name,
            S.ASK_BIRTH_DATE: self._on_birth_date,
            S.CONFIRM_NEW_PATIENT: self._on_new_patient,
            S.ASK_TYPE: self._on_type,
            S.ASK_WHEN: self._on_when,
            S.OFFER_SLOTS: self._on_offer_choice,
            S.CONFIRM: self._on_confirm,
            S.OFFER_TEXT: self._on_offer_text,
            S.CHOOSE_APPOINTMENT: self._on_choose_appointment,
            S.ASK_MESSAGE: self._on_message,
            S.ASK_MESSAGE_NAME: self._on_message_name,
        }.get(self.state)
        if handler is not None and text.strip():
            understood = False
            async for output in handler(text, intent):
                understood = True
                yield output
            if understood:
                self._misunderstood = 0

    def _not_understood(self) -> list[PolicyOutput]:
        self._misunderstood += 1
        if self._misunderstood >= _MAX_MISUNDERSTOOD:
            self._misunderstood = 0
            return [
                Say("I'm sorry, I'm having trouble understanding."),
                self._ask(S.OFFER_STAFF, "Would you like me to connect you with our staff?"),
            ]
        return [Say("I'm sorry, I didn't catch that."), Say(self._last_prompt or "How can I help?")]

    async def _on_request(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        if self.state is S.OFFER_STAFF and is_no(text):
            yield self._ask(S.HOW_CAN_I_HELP, "All right. How can I help you?")
            return
        if intent in (Intent.BOOK, Intent.CANCEL, Intent.RESCHEDULE):
            self._intent = intent
            self._take_details(text)
            if self._tools.patient is None:
                yield Say("I can help with that.")
                yield self._ask(S.ASK_NAME, "May I have your first and last name?")
            else:
                async for output in self._continue():
                    yield output
        elif intent is Intent.MESSAGE:
            yield self._ask(
                S.ASK_MESSAGE, "Of course. What message would you like me to pass on to our staff?"
            )
        elif intent is Intent.HOURS:
            yield Say(phrasing.say_hours(self._clinic))
            yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)
        elif intent is Intent.ADDRESS:
            yield Say(phrasing.say_address(self._clinic))
            yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)
        elif intent is Intent.GOODBYE:
            async for output in self._goodbye():
                yield output

    async def _on_anything_else(
        self, text: str, intent: Intent | None
    ) -> AsyncIterator[PolicyOutput]:
        if intent is None and is_no(text) or intent is Intent.GOODBYE:
            async for output in self._goodbye():
                yield output
        elif intent is None and is_yes(text):
            yield self._ask(S.HOW_CAN_I_HELP, "Sure. What else can I help you with?")
        else:
            async for output in self._on_request(text, intent):
                yield output

    async def _goodbye(self) -> AsyncIterator[PolicyOutput]:
        self.state = S.ENDED
        yield Say(f"Thank you for calling {self._clinic.name}. Goodbye!")
        yield self._tools.end_call()
        yield EndCall()

    async def _on_message(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        self._message = text.strip()
        if self._tools.patient is None and self._name is None:
            yield self._ask(
                S.ASK_MESSAGE_NAME, "Thank you. May I have your first and last name, please?"
            )
        else:
            async for output in self._take_message():
                yield output

    async def _on_message_name(
        self, text: str, intent: Intent | None
    ) -> AsyncIterator[PolicyOutput]:
        if name := parse_full_name(text):
            self._name = name
            async for output in self._take_message():
                yield output

    async def _take_message(self) -> AsyncIterator[PolicyOutput]:
        identified = self._tools.patient is not None
        caller_name = " ".join(self._name) if self._name and not identified else ""
        text, self._message = self._message, ""
        try:
            call = await self._tools.take_message(text=text, caller_name=caller_name)
        except ProviderError:
            # The message could not be kept: the caller tells a person rather than
            # hanging up believing it was passed on.
            self.state = S.ENDED
            yield Say(
                "I'm sorry, I can't pass on messages right now. "
                "Let me connect you with our staff, who can take it for you."
            )
            yield self._tools.transfer_to_staff(reason="message_unavailable")
            yield TransferToStaff(reason="message_unavailable")
            return
        yield call
        yield Say(
            "Thank you. I've passed your message on to our staff, and someone will call you back."
        )
        yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)

    def _take_details(self, text: str) -> None:
        self._type = find_appointment_type(text, self._clinic.appointment_types) or self._type
        self._provider = find_provider(text, self._clinic.providers) or self._provider
        when = spoken.parse_when(text, today=self._today())
        self._when = when or self._when

    async def _on_name(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        if name := parse_full_name(text):
            self._name = name
            yield self._ask(S.ASK_BIRTH_DATE, f"Thank you, {name[0]}. What is your date of birth?")

    async def _on_birth_date(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        birth_date = spoken.parse_date_of_birth(text)
        if birth_date is None or self._name is None:
            return
        if birth_date > self._today():
            yield self._ask(
                S.ASK_BIRTH_DATE, "That date is in the future. What is your date of birth?"
            )
            return
        self._birth_date = birth_date
        given, family = self._name
        yield await self._tools.verify_identity(
            given_name=given, family_name=family, birth_date=birth_date
        )
        if self._tools.patient is not None:
            yield Say("Thank you, I found your record.")
            async for output in self._continue():
                yield output
        elif self._intent is Intent.BOOK:
            yield self._ask(
                S.CONFIRM_NEW_PATIENT,
                "I could not find a record with that name and date of birth. "
                "Shall I register you as a new patient?",
            )
        else:
            yield Say("I could not find a record with that name and date of birth.")
            yield self._ask(S.ASK_NAME, "Let's try again. May I have your first and last name?")

    async def _on_new_patient(
        self, text: str, intent: Intent | None
    ) -> AsyncIterator[PolicyOutput]:
        if is_yes(text) and self._name and self._birth_date:
            yield await self._tools.register_patient(
                given_name=self._name[0], family_name=self._name[1], birth_date=self._birth_date
            )
            yield Say("You are registered as a new patient.")
            async for output in self._continue():
                yield output
        elif is_no(text) or (name := parse_full_name(text)) is None:
            if is_no(text):
                yield self._ask(S.ASK_NAME, "All right. May I have your first and last name?")
        else:
            self._name = name
            yield self._ask(S.ASK_BIRTH_DATE, f"Thank you, {name[0]}. What is your date of birth?")

    async def _continue(self) -> AsyncIterator[PolicyOutput]:
        """Ask for what the request still lacks, or act on it."""
        if self._intent is Intent.BOOK:
            if self._type is None:
                yield self._ask(
                    S.ASK_TYPE, phrasing.say_type_choices(self._clinic.appointment_types)
                )
            elif self._when is None and self._provider is None:
                yield self._ask(S.ASK_WHEN, "What day or time works best for you?")
            else:
                async for output in self._offer():
                    yield output
            return
        call, self._appointments = await self._tools.upcoming_appointments()
        yield call
        if not self._appointments:
            yield Say("I don't see any upcoming appointments for you.")
            yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)
        elif len(self._appointments) == 1:
            async for output in self._pick_appointment(self._appointments[0]):
                yield output
        else:
            listed = "; ".join(
                f"{n}, {phrasing.describe(a, self._clinic)}"
                for n, a in zip(("first", "second", "third"), self._appointments, strict=False)
            )
            yield Say(f"I see these appointments: {listed}.")
            yield self._ask(S.CHOOSE_APPOINTMENT, "Which one do you mean?")

    async def _pick_appointment(self, appointment: Appointment) -> AsyncIterator[PolicyOutput]:
        self._target = appointment
        self._type = self._clinic.appointment_type(appointment.appointment_type)
        described = phrasing.describe(appointment, self._clinic)
        if self._intent is Intent.CANCEL:
            self._chosen = Slot(appointment.slot_id, appointment.provider_id, appointment.start,
                                appointment.start)  # fmt: skip
            self._tools.note_read_back(self._chosen, "cancel")
            yield self._ask(S.CONFIRM, f"I see {described}. Shall I cancel it?")
        else:
            yield Say(f"I see {described}.")
            yield self._ask(S.ASK_WHEN, "What day or time would you like instead?")

    async def _on_choose_appointment(
        self, text: str, intent: Intent | None
    ) -> AsyncIterator[PolicyOutput]:
        index = find_choice(text, len(self._appointments))
        if index is not None:
            async for output in self._pick_appointment(self._appointments[index]):
                yield output

    async def _on_type(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        if find_appointment_type(text, self._clinic.appointment_types) is None:
            return
        self._take_details(text)
        async for output in self._continue():
            yield output

    async def _on_when(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        when = spoken.parse_when(text, today=self._today())
        provider = find_provider(text, self._clinic.providers)
        if when is None and provider is None:
            return
        self._when, self._provider = when or self._when, provider or self._provider
        async for output in self._offer():
            yield output

    async def _offer(self) -> AsyncIterator[PolicyOutput]:
        when = self._when or spoken.When(day=None, part_of_day=None, clock_time=None)
        try:
            call, offers = await self._tools.find_slots(
                day=when.day,
                part_of_day=when.part_of_day,
                clock_time=when.clock_time,
                provider_id=self._provider.provider_id if self._provider else None,
            )
        except SchedulingError as refusal:
            self._when = None
            yield Say(str(refusal))
            yield self._ask(S.ASK_WHEN, "What other day or time works for you?")
            return
        yield call
        if not offers and (when.day or when.part_of_day or when.clock_time):
            yield Say("I don't have an opening then.")
            self._when = None
            call, offers = await self._tools.find_slots(
                day=None, part_of_day=None, clock_time=None,
                provider_id=self._provider.provider_id if self._provider else None,
            )  # fmt: skip
            yield call
        if not offers:
            yield Say("I'm sorry, I don't have any openings in the next two weeks.")
            yield self._ask(S.OFFER_STAFF, "Would you like me to connect you with our staff?")
            return
        self._offers = offers
        yield self._ask(S.OFFER_SLOTS, phrasing.say_offers(offers, self._clinic))

    async def _on_offer_choice(
        self, text: str, intent: Intent | None
    ) -> AsyncIterator[PolicyOutput]:
        chosen = self._match_offer(text)
        if chosen is None:
            if is_no(text) or "something else" in text:
                self._when = None
                yield self._ask(S.ASK_WHEN, "What other day or time would work for you?")
            elif spoken.parse_when(text, today=self._today()) is not None:
                async for output in self._on_when(text, intent):
                    yield output
            return
        self._chosen = chosen
        action = "book" if self._intent is Intent.BOOK else "reschedule"
        self._tools.note_read_back(chosen, action)
        assert self._type is not None
        details = phrasing.say_appointment(
            type_name=self._type.display_name,
            provider_name=self._clinic.provider(chosen.provider_id).display_name,
            start=chosen.start,
            clinic=self._clinic,
        )
        question = "Shall I book it?" if action == "book" else "Shall I move your appointment?"
        yield self._ask(S.CONFIRM, f"Let me confirm: {details}. {question}")

    def _match_offer(self, text: str) -> Slot | None:
        when = spoken.parse_when(text, today=self._today())
        local = [(s, s.start.astimezone(self._clinic.tz)) for s in self._offers]
        if when is not None and when.clock_time is not None:
            matches = [s for s, at in local if at.time() == when.clock_time
                       and (when.day is None or at.date() == when.day)]  # fmt: skip
            return matches[0] if len(matches) == 1 else None
        provider = find_provider(text, self._clinic.providers)
        if provider is not None:
            matches = [s for s in self._offers if s.provider_id == provider.provider_id]
            return matches[0] if len(matches) == 1 else None
        index = find_choice(text, len(self._offers))
        return self._offers[index] if index is not None else None

    async def _on_confirm(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        if is_no(text):
            if self._intent is Intent.CANCEL:
                yield Say("All right, I have not cancelled anything.")
                yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)
            else:
                self._when = None
                yield self._ask(S.ASK_WHEN, "No problem. What day or time would work better?")
            return
        if not is_yes(text) or self._chosen is None:
            return
        self._tools.note_caller_confirmed()
        try:
            async for output in self._act_on_confirmed(self._chosen):
                yield output
        except SchedulingError as refusal:
            yield Say(f"I'm sorry. {refusal}")
            async for output in self._offer():
                yield output
        except ProviderError:
            # The schedule could not be reached: what the caller confirmed goes to a
            # person rather than being lost with the call.
            self.state = S.ENDED
            yield Say(
                "I'm sorry, I can't reach our schedule right now. "
                "Let me connect you with our staff, who can finish this for you."
            )
            yield self._tools.transfer_to_staff(reason="schedule_unavailable")
            yield TransferToStaff(reason="schedule_unavailable")

    async def _act_on_confirmed(self, slot: Slot) -> AsyncIterator[PolicyOutput]:
        assert self._type is not None
        details = phrasing.say_appointment(
            type_name=self._type.display_name,
            provider_name=self._clinic.provider(slot.provider_id).display_name,
            start=slot.start,
            clinic=self._clinic,
        )
        # Said before the write, so the caller hears an answer at once while the EHR
        # works: a booking is a Durable orchestration in the cloud (hundreds of ms).
        yield Say("One moment.", is_filler=True)
        if self._intent is Intent.CANCEL and self._target is not None:
            yield await self._tools.cancel(appointment=self._target)
            yield Say(f"Done. Your appointment, {details}, is cancelled.")
        elif self._intent is Intent.RESCHEDULE and self._target is not None:
            call, _ = await self._tools.reschedule(appointment=self._target, slot=slot)
            yield call
            yield Say(f"Done. Your appointment is now {details}.")
        else:
            call, _ = await self._tools.book(slot=slot, appointment_type=self._type.code)
            yield call
            yield Say(f"You are all set. I booked {details}.")
        self._texting_a_cancel = self._intent is Intent.CANCEL
        self._intent, self._when, self._offers, self._chosen = None, None, [], None
        # Asked in the same turn as the confirmation: the caller answers both at once.
        yield self._ask(S.OFFER_TEXT, _OFFER_TEXT)

    async def _on_offer_text(self, text: str, intent: Intent | None) -> AsyncIterator[PolicyOutput]:
        """Text a confirmation on a clear yes only; anything unclear is asked again."""
        if is_yes(text):
            self._tools.note_text_consent()
            # Said before the send, so the caller hears an answer while the text goes out.
            yield Say("Okay, I'm sending it now.")
            try:
                yield await self._tools.send_confirmation()
            except SchedulingError as refusal:  # no number to text
                yield Say(str(refusal))
            except ProviderError:
                what = "cancellation" if self._texting_a_cancel else "appointment"
                yield Say(f"I'm sorry, I couldn't send the text, but your {what} is confirmed.")
            yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)
        elif is_no(text):
            yield Say("All right, no text.")
            yield self._ask(S.ANYTHING_ELSE, _ANYTHING_ELSE)
        elif intent is Intent.GOODBYE:
            async for output in self._goodbye():
                yield output
