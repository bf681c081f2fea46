"""Scripted conversations with the deterministic receptionist, real tools and a seeded SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pocketsphinx import Decoder

from reddytalk.calls.back_office import LocalBackOffice
from reddytalk.composition import open_embedded_records
from reddytalk.dialogue import grammar
from reddytalk.dialogue.policy import ReceptionistPolicy
from reddytalk.dialogue.spoken import say_time
from reddytalk.dialogue.tools import ReceptionistTools
from reddytalk.errors import BookingRefused, ProviderError
from reddytalk.frames import EndCall, PolicyOutput, Say, ToolCall, Transcript, TransferToStaff
from reddytalk.ports import CallOffice, Message, OutboxMessage, SmsSender
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic, seed_demo
from reddytalk.providers.sms.outbox import OutboxSmsSender
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.scheduling.model import AfterHours, Appointment, Clinic, Holiday, Patient
from reddytalk.settings import Settings
from reddytalk.workflows.activities import ACTIVITIES, Activity, ActivityDeps
from reddytalk.workflows.booking import WRITE_APPOINTMENT
from reddytalk.workflows.runner import InlineRunner

NOW = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.UTC)  # Wednesday, 9 A M in Chicago
CALLER_NUMBER = "+15555550123"


@dataclass
class Call:
    ehr: EmbeddedEhr
    store: SqliteStore
    tools: ReceptionistTools
    policy: ReceptionistPolicy

    def say(self, text: str) -> list[PolicyOutput]:
        async def collect() -> list[PolicyOutput]:
            return [output async for output in self.policy.respond(Transcript(text))]

        return asyncio.run(collect())

    def script(self, *turns: str) -> list[list[PolicyOutput]]:
        return [self.say(turn) for turn in turns]

    def patient(self, given: str, family: str, born: dt.date) -> Patient | None:
        return asyncio.run(
            self.ehr.find_patient(
                clinic_id=DEMO_CLINIC_ID, given_name=given, family_name=family, birth_date=born
            )
        )

    def upcoming(self, patient: Patient) -> list[Appointment]:
        return asyncio.run(
            self.ehr.upcoming_appointments(
                clinic_id=DEMO_CLINIC_ID, patient_id=patient.patient_id, after=NOW
            )
        )

    def messages(self) -> list[Message]:
        return asyncio.run(self.store.list_messages(DEMO_CLINIC_ID))

    def outbox(self) -> list[OutboxMessage]:
        return asyncio.run(self.store.list_outbox(DEMO_CLINIC_ID))


@contextlib.contextmanager
def _call(
    tmp_path: Path,
    activities: dict[str, Activity] | None = None,
    office: Callable[[CallOffice], CallOffice] = lambda office: office,
    sms: Callable[[SqliteStore], SmsSender] = lambda store: OutboxSmsSender(
        store=store, clock=lambda: NOW
    ),
    caller_number: str | None = CALLER_NUMBER,
    clinic: Clinic | None = None,
    at: dt.datetime = NOW,
) -> Iterator[Call]:
    with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
        store, ehr = records.store, records.ehr
        asyncio.run(seed_demo(store, ehr, today=NOW.date()))
        if caller_number is not None:  # as incoming_call keeps it when it answers
            save = store.save_call_number(
                "c1", DEMO_CLINIC_ID, party="caller", number=caller_number
            )
            asyncio.run(save)

        async def no_wait(seconds: float) -> None:
            pass

        runner = InlineRunner(
            deps=ActivityDeps(ehr=ehr, store=store, control=None, clock=lambda: NOW),
            activities={**ACTIVITIES, **(activities or {})},
            sleep=no_wait,
        )
        back_office = LocalBackOffice(
            ehr=ehr, store=store, runner=runner, clock=lambda: NOW, sms=sms(store)
        )
        call_office = back_office.for_call(call_id="c1", clinic_id=DEMO_CLINIC_ID, call_token=None)
        tools = ReceptionistTools(
            clinic=clinic or demo_clinic(),
            office=office(call_office),
            call_id="c1",
            clock=lambda: at,
        )
        yield Call(ehr, store, tools, ReceptionistPolicy(tools=tools))


@pytest.fixture
def call(tmp_path: Path) -> Iterator[Call]:
    with _call(tmp_path) as call:
        yield call


def _says(outputs: list[PolicyOutput]) -> str:
    return " ".join(o.text for o in outputs if isinstance(o, Say))


def _tools(outputs: list[PolicyOutput]) -> list[ToolCall]:
    return [o for o in outputs if isinstance(o, ToolCall)]


ROBERT = ("Robert", "Taylor", dt.date(1980, 3, 15))
LINDA = ("Linda", "Wilson", dt.date(1975, 7, 4))
BOOK_UNTIL_CONFIRM = (
    "i would like to book an appointment",
    "my name is robert taylor",
    "march fifteenth nineteen eighty",
    "a checkup",
    "next tuesday morning",
    "the second one",
)


def test_booking_as_an_existing_patient(call: Call) -> None:
    robert = call.patient(*ROBERT)
    assert robert is not None
    assert call.upcoming(robert) == []

    turns = call.script(*BOOK_UNTIL_CONFIRM, "yes please", "no thanks", "no thank you")
    verified = _tools(turns[2])
    assert [(c.name, c.result) for c in verified] == [("verify_identity", {"verified": True})]
    find = _tools(turns[4])
    assert [c.name for c in find] == ["find_slots"]
    assert find[0].arguments["day"] == "2026-12-01"  # next Tuesday
    assert find[0].arguments["part_of_day"] == "morning"
    offered_ids = find[0].result["slots"]
    assert len(offered_ids) == 3
    assert "Tuesday, December first" in _says(turns[4])

    read_back = _says(turns[5])
    assert read_back.startswith("Let me confirm: a check-up with")
    assert _tools(turns[5]) == []  # nothing booked before the yes

    booked = [c for t in turns for c in _tools(t) if c.name == "book"]
    assert len(booked) == 1
    # the caller hears an answer before the booking, which may take a while
    assert turns[6][0] == Say("One moment.", is_filler=True)  # not the answer's content
    assert turns[6].index(booked[0]) > 0
    assert booked[0].arguments == {"slot_id": offered_ids[1], "appointment_type": "checkup"}

    [appointment] = call.upcoming(robert)
    assert appointment.slot_id == offered_ids[1]
    assert appointment.appointment_type == "checkup"
    assert appointment.appointment_id == booked[0].result["appointment_id"]
    local = appointment.start.astimezone(demo_clinic().tz)
    assert local.date() == dt.date(2026, 12, 1)
    assert local.hour < 12

    spoken_time = say_time(local.time())
    assert f"at {spoken_time}" in read_back
    assert spoken_time in _says(turns[4])
    assert "I booked a check-up with" in _says(turns[6])
    assert spoken_time in _says(turns[6])
    # ... and, in the same turn, the question about a text
    assert _says(turns[6]).endswith("Would you like a text message confirmation?")
    assert call.outbox() == []  # the caller said no

    assert turns[-1][-1] == EndCall()
    assert call.policy.state is grammar.DialogueState.ENDED
    assert call.tools.outcome == "booked"


def test_booking_needs_a_yes(call: Call) -> None:
    turns = call.script(*BOOK_UNTIL_CONFIRM, "no")
    assert all(c.name != "book" for t in turns for c in _tools(t))
    robert = call.patient(*ROBERT)
    assert robert is not None
    assert call.upcoming(robert) == []
    assert call.policy.state is grammar.DialogueState.ASK_WHEN
    assert call.tools.outcome == "no_action"


def test_a_checkpoint_puts_the_conversation_and_the_tools_back(call: Call) -> None:
    call.script(*BOOK_UNTIL_CONFIRM)
    read_back = call.tools._read_back
    assert read_back is not None and call.policy.state is grammar.DialogueState.CONFIRM
    restore = call.policy.checkpoint()
    call.say("no")  # an answer on a hypothesis the final then contradicted
    assert call.policy.state is grammar.DialogueState.ASK_WHEN
    restore()
    assert call.policy.state is grammar.DialogueState.CONFIRM
    assert call.tools._read_back == read_back
    booked = [c for c in _tools(call.say("yes please")) if c.name == "book"]
    assert len(booked) == 1  # the read-back stands: the yes books it


def test_an_unclear_answer_at_the_confirm_books_nothing(call: Call) -> None:
    turns = call.script(*BOOK_UNTIL_CONFIRM, "banana")
    assert "didn't catch that" in _says(turns[-1])
    assert call.policy.state is grammar.DialogueState.CONFIRM
    robert = call.patient(*ROBERT)
    assert robert is not None
    assert call.upcoming(robert) == []


def test_new_patient_is_registered(call: Call) -> None:
    born = dt.date(1960, 5, 20)
    assert call.patient("Sarah", "Johnson", born) is None
    turns = call.script(
        "i would like to book an appointment",
        "sarah johnson",
        "may twentieth nineteen sixty",
        "yes please",
    )
    assert [c.result for c in _tools(turns[2])] == [{"verified": False}]
    assert "register you as a new patient" in _says(turns[2])
    assert [c.name for c in _tools(turns[3])] == ["register_patient"]
    assert "registered as a new patient" in _says(turns[3])
    sarah = call.patient("Sarah", "Johnson", born)
    assert sarah is not None
    assert call.tools.patient == sarah
    assert call.policy.state is grammar.DialogueState.ASK_TYPE


def test_cancel_an_appointment(call: Call) -> None:
    linda = call.patient(*LINDA)
    assert linda is not None
    [visit] = call.upcoming(linda)
    turns = call.script(
        "i want to cancel my appointment",
        "linda wilson",
        "july fourth nineteen seventy five",
        "yes",
    )
    assert "Shall I cancel it?" in _says(turns[2])
    assert [c.name for c in _tools(turns[3])] == ["cancel"]
    assert _tools(turns[3])[0].arguments == {"appointment_id": visit.appointment_id}
    assert "is cancelled" in _says(turns[3])
    assert _says(turns[3]).endswith("Would you like a text message confirmation?")
    assert call.upcoming(linda) == []
    cancelled = asyncio.run(call.ehr.get_appointment(visit.appointment_id))
    assert cancelled is not None
    assert cancelled.status == "cancelled"


def test_cancel_refused_keeps_the_appointment(call: Call) -> None:
    linda = call.patient(*LINDA)
    assert linda is not None
    turns = call.script(
        "i want to cancel my appointment",
        "linda wilson",
        "july fourth nineteen seventy five",
        "no",
    )
    assert "have not cancelled" in _says(turns[-1])
    assert len(call.upcoming(linda)) == 1


@pytest.mark.parametrize("before", [0, 1, 3, 5])
def test_emergency_in_any_state_transfers_at_once(call: Call, before: int) -> None:
    call.script(*BOOK_UNTIL_CONFIRM[:before])
    calls_before = len(call.tools.calls)
    outputs = call.say("i have chest pain")
    assert isinstance(outputs[0], Say)
    assert "9 1 1" in outputs[0].text
    assert [type(o) for o in outputs] == [Say, ToolCall, TransferToStaff]
    tool = outputs[1]
    assert isinstance(tool, ToolCall)
    assert tool.name == "transfer_to_staff"
    assert call.tools.calls[calls_before:] == [tool]
    assert call.tools.outcome == "transferred:emergency_medical"
    assert call.policy.state is grammar.DialogueState.ENDED


def test_two_misunderstood_turns_offer_staff(call: Call) -> None:
    first, second, third = call.script("", "banana", "yes")
    assert "didn't catch that" in _says(first)
    assert "connect you with our staff" in _says(second)
    assert call.tools.calls[:-1] == []
    assert third[-1] == TransferToStaff(reason="caller_request")
    assert [c.name for c in _tools(third)] == ["transfer_to_staff"]


def test_a_past_day_is_refused_and_nothing_offered(call: Call) -> None:
    turns = call.script(*BOOK_UNTIL_CONFIRM[:4], "yesterday morning")
    assert "already passed" in _says(turns[-1])
    assert _tools(turns[-1]) == []
    assert call.policy.state is grammar.DialogueState.ASK_WHEN


def test_booking_tool_refuses_without_confirmation(call: Call) -> None:
    call.script(*BOOK_UNTIL_CONFIRM)  # verified and read back, but no yes yet
    tools = call.tools
    slot_id = [c for c in tools.calls if c.name == "find_slots"][0].result["slots"][1]
    free = asyncio.run(
        call.ehr.find_free_slots(
            clinic_id=DEMO_CLINIC_ID,
            start=NOW,
            end=NOW + dt.timedelta(days=14),
            provider_id=None,
        )
    )
    slot = next(s for s in free if s.slot_id == slot_id)
    with pytest.raises(BookingRefused, match="confirm the details"):
        asyncio.run(tools.book(slot=slot, appointment_type="checkup"))
    # A yes to a different slot's read-back does not cover this one.
    other = next(s for s in free if s.slot_id != slot_id)
    tools.note_read_back(other, "book")
    tools.note_caller_confirmed()
    with pytest.raises(BookingRefused):
        asyncio.run(tools.book(slot=slot, appointment_type="checkup"))
    robert = call.patient(*ROBERT)
    assert robert is not None
    assert call.upcoming(robert) == []
    assert all(c.name != "book" for c in tools.calls)


def test_booking_tool_refuses_an_unverified_caller(call: Call) -> None:
    free = asyncio.run(
        call.ehr.find_free_slots(
            clinic_id=DEMO_CLINIC_ID, start=NOW, end=NOW + dt.timedelta(days=2), provider_id=None
        )
    )
    call.tools.note_read_back(free[0], "book")
    call.tools.note_caller_confirmed()
    with pytest.raises(BookingRefused, match="who you are"):
        asyncio.run(call.tools.book(slot=free[0], appointment_type="checkup"))


GRAMMAR_STATES = [s for s in grammar.DialogueState if s is not grammar.DialogueState.ASK_MESSAGE]


@pytest.mark.parametrize("state", GRAMMAR_STATES)
def test_every_state_grammar_compiles_in_pocketsphinx(state: grammar.DialogueState) -> None:
    hints = grammar.hints_for(state, demo_clinic())
    assert hints.state == state.value
    decoder = Decoder(samprate=16000, loglevel="FATAL", lm=None)
    decoder.add_jsgf_string(state.value, hints.jsgf)


def test_the_message_is_dictated_not_constrained_by_a_grammar() -> None:
    hints = grammar.hints_for(grammar.DialogueState.ASK_MESSAGE, demo_clinic())
    assert hints.jsgf == ""
    assert "Doctor Patel" in hints.phrases  # phrase-list recognizers still get the clinic's words


def test_policy_hints_follow_the_state(call: Call) -> None:
    assert call.policy.hints().state == "how_can_i_help"
    call.say("i would like to book an appointment")
    assert call.policy.hints().state == "ask_name"
    assert "robert" in call.policy.hints().jsgf


def test_an_unreachable_schedule_after_the_yes_hands_the_caller_to_staff(tmp_path: Path) -> None:
    async def unreachable(deps: ActivityDeps, data: dict[str, Any]) -> dict[str, Any]:
        raise ProviderError("EHR unavailable", retryable=True)

    with _call(tmp_path, {WRITE_APPOINTMENT: unreachable}) as call:
        turns = call.script(*BOOK_UNTIL_CONFIRM, "yes please")
        answer = turns[-1]
        assert "connect you with our staff" in _says(answer)
        assert answer[-1] == TransferToStaff(reason="schedule_unavailable")
        assert call.tools.outcome == "transferred:schedule_unavailable"
        robert = call.patient(*ROBERT)
        assert robert is not None and call.upcoming(robert) == []


# -- the clinic's own configuration: greeting, hours, after hours ----------------

AFTER_HOURS = dt.datetime(2026, 11, 26, 5, 0, tzinfo=dt.UTC)  # Wednesday, 11 P M in Chicago
ASK_FOR_STAFF = "can i speak to someone at the front desk"


def test_a_configured_greeting_is_said_instead_of_the_standard_one(tmp_path: Path) -> None:
    clinic = dataclasses.replace(demo_clinic(), greeting="Reddy Family Clinic, how can I help?")
    with _call(tmp_path, clinic=clinic) as call:
        assert call.policy.greeting() == "Reddy Family Clinic, how can I help?"
    with _call(tmp_path / "standard") as call:
        assert call.policy.greeting().startswith("Thank you for calling Reddy Family Clinic.")


def test_after_hours_a_caller_asking_for_staff_is_offered_a_message(tmp_path: Path) -> None:
    with _call(tmp_path, at=AFTER_HOURS) as call:  # the default: take a message
        asked = call.say(ASK_FOR_STAFF)
        assert "closed right now" in _says(asked) and "take a message" in _says(asked)
        assert not any(isinstance(o, TransferToStaff) for o in asked) and _tools(asked) == []
        assert call.policy.state is grammar.DialogueState.ASK_MESSAGE
        call.say(MESSAGE)
        name = call.say("my name is sarah johnson")
        assert [c.name for c in _tools(name)] == ["take_message"]
        assert [m.text for m in call.messages()] == [MESSAGE]
        assert call.tools.outcome != "transferred:caller_request"


def test_after_hours_with_an_on_call_number_the_caller_is_transferred(tmp_path: Path) -> None:
    clinic = dataclasses.replace(
        demo_clinic(), after_hours=AfterHours(action="transfer", on_call_number="+15550100298")
    )
    with _call(tmp_path, clinic=clinic, at=AFTER_HOURS) as call:
        (asked,) = call.script(ASK_FOR_STAFF)
        assert asked[-1] == TransferToStaff(reason="caller_request")
        assert clinic.transfer_number_at(AFTER_HOURS) == "+15550100298"
        assert clinic.transfer_number_at(NOW) == clinic.staff_phone_number


def test_a_holiday_is_after_hours(tmp_path: Path) -> None:
    holiday = Holiday(day=dt.date(2026, 11, 25), name="Clinic closed")  # NOW's day
    clinic = dataclasses.replace(demo_clinic(), holidays=(holiday,))
    assert not clinic.is_open_at(NOW) and demo_clinic().is_open_at(NOW)
    with _call(tmp_path, clinic=clinic) as call:
        (asked,) = call.script(ASK_FOR_STAFF)
        assert "closed right now" in _says(asked)
        assert call.policy.state is grammar.DialogueState.ASK_MESSAGE


def test_an_emergency_after_hours_is_still_transferred(tmp_path: Path) -> None:
    with _call(tmp_path, at=AFTER_HOURS) as call:
        (said,) = call.script("i have chest pain")
        assert isinstance(said[-1], TransferToStaff)


# -- messages for staff ---------------------------------------------------------

MESSAGE = "please ask doctor patel to call me back about my test results"


def test_an_unidentified_caller_leaves_a_message(call: Call) -> None:
    request, message, name, done = call.script(
        "i'd like to leave a message", MESSAGE, "my name is sarah johnson", "no thank you"
    )
    assert _says(request) == "Of course. What message would you like me to pass on to our staff?"
    assert _tools(message) == []  # nothing kept before the caller said who they are
    assert "first and last name" in _says(message)
    [taken] = _tools(name)
    assert taken.name == "take_message"
    assert taken.arguments == {"text": "[phi]", "caller_name": "[phi]"}  # the record holds no PHI
    assert "passed your message on to our staff" in _says(name)
    assert _says(name).endswith("Is there anything else I can help you with?")
    [kept] = call.messages()
    assert kept.message_id == taken.result["message_id"]
    assert (kept.text, kept.caller_name, kept.patient_id) == (MESSAGE, "Sarah Johnson", None)
    assert (kept.call_id, kept.taken_at) == ("c1", NOW)
    assert done[-1] == EndCall()
    assert call.tools.outcome == "message_taken"


def test_the_message_is_dictated_and_the_name_heard_with_a_grammar(call: Call) -> None:
    call.say("can you take a message")
    assert call.policy.state is grammar.DialogueState.ASK_MESSAGE
    assert call.policy.hints().jsgf == ""
    call.say(MESSAGE)
    assert call.policy.state is grammar.DialogueState.ASK_MESSAGE_NAME
    assert "johnson" in call.policy.hints().jsgf


def test_a_verified_caller_is_not_asked_their_name_again(call: Call) -> None:
    call.script(*BOOK_UNTIL_CONFIRM, "yes please", "no thanks")
    robert = call.patient(*ROBERT)
    assert robert is not None
    request, message = call.script("i have a message for the doctor", "my knee still hurts")
    assert "What message" in _says(request)
    assert [c.name for c in _tools(message)] == ["take_message"]
    assert "name" not in _says(message)
    [kept] = call.messages()
    assert (kept.text, kept.caller_name, kept.patient_id) == (
        "my knee still hurts", "", robert.patient_id,
    )  # fmt: skip
    assert call.tools.outcome == "booked"  # the message does not hide the booking
    assert call.policy.state is grammar.DialogueState.ANYTHING_ELSE


def test_a_caller_whose_name_is_not_understood_is_offered_staff(call: Call) -> None:
    turns = call.script("i'd like to leave a message", MESSAGE, "banana", "banana")
    assert "didn't catch that" in _says(turns[2])
    assert "connect you with our staff" in _says(turns[3])
    assert call.policy.state is grammar.DialogueState.OFFER_STAFF
    assert call.messages() == []


def test_a_silent_turn_is_not_taken_as_the_message(call: Call) -> None:
    _, silent = call.script("i'd like to leave a message", "")
    assert "didn't catch that" in _says(silent)
    assert "What message would you like" in _says(silent)
    assert call.policy.state is grammar.DialogueState.ASK_MESSAGE


class _MessagesDown:
    """The call's back office, with its message store unreachable."""

    def __init__(self, office: CallOffice) -> None:
        self._office = office

    def __getattr__(self, name: str) -> Any:
        return getattr(self._office, name)

    async def take_message(self, message: Message) -> None:
        raise ProviderError("message store unavailable", retryable=True)


def test_a_message_that_cannot_be_kept_goes_to_staff(tmp_path: Path) -> None:
    with _call(tmp_path, office=_MessagesDown) as call:
        *_, answer = call.script("i'd like to leave a message", MESSAGE, "sarah johnson")
        assert "connect you with our staff" in _says(answer)
        assert [c.name for c in _tools(answer)] == ["transfer_to_staff"]
        assert answer[-1] == TransferToStaff(reason="message_unavailable")
        assert call.tools.outcome == "transferred:message_unavailable"
        assert call.policy.state is grammar.DialogueState.ENDED
        assert call.messages() == []


def test_an_emergency_said_as_the_message_is_an_emergency(call: Call) -> None:
    _, answer = call.script("can someone call me back", "i have chest pain")
    assert "9 1 1" in _says(answer)
    assert answer[-1] == TransferToStaff(reason="emergency")
    assert call.tools.outcome == "transferred:emergency_medical"
    assert call.messages() == []


# -- a text confirmation, asked for after the change ----------------------------

TEXT_QUESTION = "Would you like a text message confirmation?"
CANCEL_LINDAS = (
    "i want to cancel my appointment",
    "linda wilson",
    "july fourth nineteen seventy five",
)
MOVE_LINDAS = (
    "i need to reschedule my appointment",
    "linda wilson",
    "july fourth nineteen seventy five",
    "next tuesday morning",
    "the first one",
)


def _local_when(appointment: Appointment) -> str:
    """How the text gives the appointment's time: the clinic's zone, its abbreviation."""
    local = appointment.start.astimezone(demo_clinic().tz)
    clock = f"{local.hour % 12 or 12}:{local.minute:02d} {'AM' if local.hour < 12 else 'PM'}"
    return f"{local:%a, %b} {local.day} at {clock} {local.tzname()}"


def test_a_yes_texts_one_confirmation_in_clinic_time_without_name_or_reason(call: Call) -> None:
    turns = call.script(*BOOK_UNTIL_CONFIRM, "yes please", "yes please", "no thank you")
    robert = call.patient(*ROBERT)
    assert robert is not None
    [appointment] = call.upcoming(robert)

    answer = turns[7]
    assert _says(answer) == "Okay, I'm sending it now. Is there anything else I can help you with?"
    [sent] = _tools(answer)
    assert (sent.name, sent.arguments, sent.result) == (
        "send_confirmation", {"appointment_id": appointment.appointment_id}, {"status": "sent"}
    )  # fmt: skip
    [text] = call.outbox()
    assert (text.to_number, text.call_id, text.created_at) == (CALLER_NUMBER, "c1", NOW)
    provider = demo_clinic().provider(appointment.provider_id).display_name
    assert text.text == (
        f"Reddy Family Clinic: your appointment with {provider} on {_local_when(appointment)}"
        " is booked."
    )
    assert " CST " in text.text  # the clinic's time, said as such
    for private in ("Robert", "Taylor", "check", "Check"):  # no name, no visit reason
        assert private not in text.text
    trail = asyncio.run(call.store.audit_trail("c1"))
    assert [(e.action, e.details) for e in trail if e.action == "send"] == [
        ("send", {"appointment": f"Appointment/{appointment.appointment_id}",
                  "change": "booked", "number": "caller_number"}),
    ]  # fmt: skip
    assert turns[-1][-1] == EndCall()


@pytest.mark.parametrize("answer", ["no", "no thanks", "no thank you"])
def test_a_no_texts_nothing(call: Call, answer: str) -> None:
    *_, said_no = call.script(*BOOK_UNTIL_CONFIRM, "yes please", answer)
    assert _says(said_no) == "All right, no text. Is there anything else I can help you with?"
    assert _tools(said_no) == []
    assert call.outbox() == []
    assert call.policy.state is grammar.DialogueState.ANYTHING_ELSE


def test_an_unclear_answer_texts_nothing_and_asks_again(call: Call) -> None:
    *_, unclear = call.script(*BOOK_UNTIL_CONFIRM, "yes please", "banana")
    assert _says(unclear) == f"I'm sorry, I didn't catch that. {TEXT_QUESTION}"
    assert call.policy.state is grammar.DialogueState.OFFER_TEXT
    assert call.outbox() == []
    # Another request is not a yes either; twice not understood offers staff, as anywhere.
    again = call.say("i'd like to leave a message")
    assert "connect you with our staff" in _says(again)
    assert call.outbox() == []
    assert call.tools.outcome == "booked"


def test_a_goodbye_to_the_question_ends_the_call_without_a_text(call: Call) -> None:
    *_, goodbye = call.script(*BOOK_UNTIL_CONFIRM, "yes please", "goodbye")
    assert goodbye[-1] == EndCall()
    assert call.outbox() == []


def test_an_emergency_at_the_question_goes_first(call: Call) -> None:
    *_, emergency = call.script(*BOOK_UNTIL_CONFIRM, "yes please", "i have chest pain")
    assert emergency[-1] == TransferToStaff(reason="emergency")
    assert call.outbox() == []


def test_a_cancel_is_texted_after_a_yes(call: Call) -> None:
    linda = call.patient(*LINDA)
    assert linda is not None
    [visit] = call.upcoming(linda)
    *_, cancelled, texted = call.script(*CANCEL_LINDAS, "yes", "yes")
    assert _says(cancelled).endswith(TEXT_QUESTION)
    assert [c.name for c in _tools(texted)] == ["send_confirmation"]
    [text] = call.outbox()
    assert text.text.endswith(f"on {_local_when(visit)} is cancelled.")
    assert "Linda" not in text.text and "Wilson" not in text.text


def test_a_move_is_texted_with_the_new_time(call: Call) -> None:
    linda = call.patient(*LINDA)
    assert linda is not None
    *_, read_back, moved, texted = call.script(*MOVE_LINDAS, "yes", "yeah")
    assert "Shall I move your appointment?" in _says(read_back)
    assert _says(moved).endswith(TEXT_QUESTION)
    [new] = call.upcoming(linda)
    [text] = call.outbox()
    provider = demo_clinic().provider(new.provider_id).display_name
    assert text.text == (
        f"Reddy Family Clinic: your appointment is moved to {_local_when(new)} with {provider}."
    )
    assert [c.name for c in _tools(texted)] == ["send_confirmation"]


def test_the_text_goes_to_the_patients_phone_in_the_ehr(tmp_path: Path) -> None:
    with _call(tmp_path) as call:
        asyncio.run(
            call.ehr.add_patient(
                clinic_id=DEMO_CLINIC_ID, given_name="Maria", family_name="Garcia",
                birth_date=dt.date(1985, 4, 2), phone="(555) 010-0177",
            )
        )  # fmt: skip
        call.script(
            "i would like to book an appointment", "my name is maria garcia",
            "april second nineteen eighty five", *BOOK_UNTIL_CONFIRM[3:], "yes please", "yes",
        )  # fmt: skip
        [text] = call.outbox()
        assert text.to_number == "+15550100177"  # not the number the call came from
        assert "Maria" not in text.text and "Garcia" not in text.text


def test_without_a_number_the_caller_hears_so(tmp_path: Path) -> None:
    with _call(tmp_path, caller_number=None) as call:  # no caller id, no phone in the EHR
        *_, texted = call.script(*BOOK_UNTIL_CONFIRM, "yes please", "yes")
        assert _says(texted) == (
            "Okay, I'm sending it now. I'm sorry, I don't have a number I can text. "
            "Is there anything else I can help you with?"
        )
        assert call.outbox() == []
        assert call.tools.outcome == "booked"


class _SmsDown:
    """An SmsSender whose service is unreachable."""

    async def send(self, to_number: str, text: str, **_: str) -> str:
        raise ProviderError("SMS service unavailable", retryable=True)


@pytest.mark.parametrize(
    ("script", "what"),
    [(BOOK_UNTIL_CONFIRM, "appointment"), (CANCEL_LINDAS, "cancellation")],
)
def test_a_text_that_cannot_be_sent_leaves_the_change_standing(
    tmp_path: Path, script: tuple[str, ...], what: str
) -> None:
    with _call(tmp_path, sms=lambda store: _SmsDown()) as call:
        *_, texted = call.script(*script, "yes", "yes")
        assert _says(texted) == (
            "Okay, I'm sending it now. "
            f"I'm sorry, I couldn't send the text, but your {what} is confirmed. "
            "Is there anything else I can help you with?"
        )
        assert call.tools.outcome in ("booked", "cancelled")
        assert call.policy.state is grammar.DialogueState.ANYTHING_ELSE
        trail = asyncio.run(call.store.audit_trail("c1"))
        assert [e.details for e in trail if e.action == "send_failed"] == [
            {"number": "caller_number", "retryable": "True"}
        ]


def test_the_text_tool_needs_the_callers_yes_to_that_change(call: Call) -> None:
    tools = call.tools
    with pytest.raises(BookingRefused):  # nothing changed yet
        asyncio.run(tools.send_confirmation())
    call.script(*BOOK_UNTIL_CONFIRM, "yes please")
    with pytest.raises(BookingRefused):  # asked, but no yes
        asyncio.run(tools.send_confirmation())
    tools.note_text_consent()
    assert asyncio.run(tools.send_confirmation()).result == {"status": "sent"}
    with pytest.raises(BookingRefused):  # one text per yes
        asyncio.run(tools.send_confirmation())
    assert len(call.outbox()) == 1


def test_the_clinic_number_is_the_sender(tmp_path: Path) -> None:
    sent: list[dict[str, str]] = []

    class Recording:
        async def send(self, to_number: str, text: str, **kwargs: str) -> str:
            sent.append(kwargs)
            return "msg-1"

    with _call(tmp_path, sms=lambda store: Recording()) as call:
        call.script(*BOOK_UNTIL_CONFIRM, "yes please", "yes")
    [kwargs] = sent
    assert kwargs["from_number"] == DEMO_PHONE_NUMBER
    assert (kwargs["clinic_id"], kwargs["call_id"]) == (DEMO_CLINIC_ID, "c1")
    assert kwargs["idempotency_key"].startswith("sms-confirmation:c1:book_appointment:")


def test_the_caller_s_name_joins_the_phrases_to_listen_for_once_known(call: Call) -> None:
    before = call.policy.hints().phrases
    assert "Robert" not in before and "Doctor Patel" in before
    call.script("i would like to book an appointment", "my name is robert taylor")
    assert call.policy.hints().phrases[-3:] == ("Robert Taylor", "Robert", "Taylor")
