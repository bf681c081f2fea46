"""The tiered receptionist against a loopback Azure OpenAI (the real ``openai`` SDK) with
real tools over a seeded SQLite back office: which tier answers each turn, and what the
model was sent."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reddytalk.dialogue.tiered import (
    ACKNOWLEDGEMENTS,
    HOLDING_PHRASE,
    Tier,
    TieredPolicy,
    acknowledgement,
)
from reddytalk.frames import EndCall, PolicyOutput, Say, ToolCall, Transcript, TransferToStaff
from reddytalk.providers.llm.azure_openai import AzureOpenAIChat
from reddytalk.providers.llm.tool_schemas import receptionist_tools
from reddytalk.providers.tts.phrase_cache import DEFAULT_PHRASES
from tests.dialogue.test_policy import BOOK_UNTIL_CONFIRM, Call, _call
from tests.providers.test_azure_openai_chat import (
    KEY,
    ROLE,
    LocalAzureOpenAI,
    Pause,
    Step,
    _chunk,
    _text,
)
from tests.providers.test_azure_openai_chat import (
    _call as _tool_chunk,
)

FAST, COMPLEX = "gpt-4o-mini-fast", "gpt-4o-complex"


class Scripted(LocalAzureOpenAI):
    """Answers each request with the next script (a list of steps, or an HTTP status)."""

    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[list[Step] | int] = []

    async def _answer(self, request: Any) -> Any:
        script = self.scripts.pop(0) if self.scripts else [ROLE, _text("Okay."), _chunk({}, "stop")]
        if isinstance(script, int):
            self.status, self.steps = (script, {"code": "InternalServerError", "message": "x"}), []
        else:
            self.status, self.steps = None, script
        return await super()._answer(request)

    def deployments(self) -> list[str]:
        return [r.path.split("/")[3] for r in self.requests]


def _answer(*clauses: str) -> list[Step]:
    return [ROLE, *(_text(c) for c in clauses), _chunk({}, "stop")]


def _asks(name: str, arguments: dict[str, Any], call_id: str = "call_1") -> list[Step]:
    return [ROLE, _tool_chunk(0, "", call_id=call_id, name=name),
            _tool_chunk(0, json.dumps(arguments)), _chunk({}, "tool_calls")]  # fmt: skip


Turns = Callable[[TieredPolicy], Awaitable[list[list[PolicyOutput]]]]


@pytest.fixture
def call(tmp_path: Path) -> Iterator[Call]:
    with _call(tmp_path) as call:
        yield call


def _run(
    call: Call,
    scripts: list[list[Step] | int],
    *turns: str,
    late_ms: float = 1000,
    acknowledge: bool = False,
) -> tuple[Scripted, TieredPolicy, list[list[PolicyOutput]]]:
    """The turns on a tiered policy over the scripted model; without acknowledgements
    unless asked (their own tests below), so each test sees only the model's words."""

    async def main() -> tuple[Scripted, TieredPolicy, list[list[PolicyOutput]]]:
        async with Scripted() as server:
            server.scripts = list(scripts)
            chat = AzureOpenAIChat(endpoint=server.endpoint, api_key=KEY,
                                   first_token_late_ms=late_ms)  # fmt: skip
            async with chat:
                policy = TieredPolicy(tools=call.tools, chat=chat,
                                      tool_schemas=receptionist_tools(),
                                      fast_deployment=FAST, complex_deployment=COMPLEX,
                                      acknowledge=acknowledge)  # fmt: skip
                policy.greeting()
                outputs = []
                for turn in turns:
                    outputs.append([o async for o in policy.respond(Transcript(turn))])
            return server, policy, outputs

    return asyncio.run(main())


def _says(outputs: list[PolicyOutput]) -> list[str]:
    return [o.text for o in outputs if isinstance(o, Say)]


def test_confident_turns_never_reach_the_model(call: Call) -> None:
    server, policy, turns = _run(call, [], *BOOK_UNTIL_CONFIRM, "yes please")
    assert server.requests == []
    assert policy.last_tier is Tier.DETERMINISTIC
    assert [o.name for o in turns[-1] if isinstance(o, ToolCall)] == ["book"]


def test_a_turn_without_words_is_asked_again_by_code_not_the_model(call: Call) -> None:
    server, policy, [turn] = _run(call, [], "")
    assert server.requests == []
    assert policy.last_tier is Tier.DETERMINISTIC
    assert "didn't catch that" in _says(turn)[0]


def test_an_unexpected_question_goes_to_the_fast_model_clause_by_clause(call: Call) -> None:
    script = _answer("We accept most major insurance plans, ", "including Aetna and Cigna. ",
                     "Would you like to book a visit?")  # fmt: skip
    server, policy, [turn] = _run(call, [script], "do you take aetna insurance")
    assert server.deployments() == [FAST]
    assert policy.last_tier is Tier.FAST
    assert _says(turn) == ["We accept most major insurance plans,", "including Aetna and Cigna.",
                           "Would you like to book a visit?"]  # fmt: skip
    sent = server.requests[0].body
    assert sent["tools"] == receptionist_tools()
    roles = [m["role"] for m in sent["messages"]]
    assert roles == ["system", "system", "assistant", "user"]  # stable prefix, greeting, turn
    assert sent["messages"][-1]["content"] == "do you take aetna insurance"


def test_a_read_tool_runs_through_the_tools_and_its_result_goes_back(call: Call) -> None:
    find = {"day": "2026-12-01", "part_of_day": "morning", "clock_time": None, "provider_id": None}
    scripts = [_asks("find_slots", find), _answer("I have three openings that morning.")]
    server, policy, [turn] = _run(call, scripts, "hmm what have you got on december first")
    assert server.deployments() == [FAST, FAST]
    [found] = [o for o in turn if isinstance(o, ToolCall)]
    assert found.name == "find_slots" and len(found.result["slots"]) == 3
    tool_message = server.requests[1].body["messages"][-1]
    assert tool_message["role"] == "tool" and tool_message["tool_call_id"] == "call_1"
    slots = json.loads(tool_message["content"])["slots"]
    assert [s["slot_id"] for s in slots] == found.result["slots"]
    assert _says(turn) == ["I have three openings that morning."]


def test_a_write_escalates_and_a_refused_booking_is_explained_to_the_model(call: Call) -> None:
    book = {"slot_id": "anything", "appointment_type": "checkup"}
    scripts = [_asks("book", book), _asks("book", book, "call_2"),
               _answer("I need to confirm who you are first.")]  # fmt: skip
    server, policy, [turn] = _run(call, scripts, "just put me down for whatever is free")
    assert server.deployments() == [FAST, COMPLEX, COMPLEX]
    assert policy.last_tier is Tier.COMPLEX
    assert [o for o in turn if isinstance(o, ToolCall)] == []  # nothing booked
    answers = [m for m in server.requests[2].body["messages"] if m["role"] == "tool"]
    assert [json.loads(m["content"]) for m in answers] == [
        {"refused": "I need to confirm who you are first."}
    ]
    assert _says(turn) == ["I need to confirm who you are first."]


_VERIFY = {"given_name": "Robert", "family_name": "Taylor", "birth_date": "1980-03-15"}
_FIND = {"day": "2026-12-01", "part_of_day": "morning", "clock_time": None, "provider_id": None}


def test_a_booking_the_model_asks_for_is_read_back_by_code_and_booked_on_a_yes(
    call: Call,
) -> None:
    scripts: list[list[Step] | int] = [
        _asks("verify_identity", _VERIFY), _asks("find_slots", _FIND, "call_2"),
        _answer("I have openings that morning."),
    ]  # fmt: skip
    server, policy, turns = _run(call, scripts, "robert taylor, march 15 1980, what's on dec 1")
    [found] = [o for o in turns[0] if isinstance(o, ToolCall) and o.name == "find_slots"]
    slot_id = found.result["slots"][0]
    book = {"slot_id": slot_id, "appointment_type": "checkup"}

    async def go_on() -> list[list[PolicyOutput]]:
        async with Scripted() as more:
            more.scripts = [_asks("book", book), _asks("book", book, "call_4")]
            chat = AzureOpenAIChat(endpoint=more.endpoint, api_key=KEY)
            async with chat:
                policy._chat = chat  # the same call, a new connection to the model
                asked = [o async for o in policy.respond(Transcript("hmm the first one is ok"))]
                assert more.deployments() == [FAST, COMPLEX]  # the write escalated once
                assert policy.last_tier is Tier.COMPLEX
                yes = [o async for o in policy.respond(Transcript("yes"))]
                assert more.deployments() == [FAST, COMPLEX]  # the yes never reached it
                return [asked, yes]

    asked, yes = asyncio.run(go_on())
    assert [o for o in asked if isinstance(o, ToolCall)] == []  # nothing booked yet
    [question] = _says(asked)
    assert question.startswith("Let me confirm: a check-up with") and "Shall I book it?" in question
    assert policy.last_tier is Tier.DETERMINISTIC
    [booked] = [o for o in yes if isinstance(o, ToolCall)]
    assert booked.name == "book" and booked.arguments["slot_id"] == slot_id
    robert = call.patient("Robert", "Taylor", dt.date(1980, 3, 15))
    assert robert is not None and [a.slot_id for a in call.upcoming(robert)] == [slot_id]


def test_a_write_the_model_asks_for_without_an_offered_slot_is_refused(call: Call) -> None:
    scripts: list[list[Step] | int] = [
        _asks("verify_identity", _VERIFY), _answer("Thanks, Robert."),
        _asks("book", {"slot_id": "slot_made_up", "appointment_type": "checkup"}),
        _asks("book", {"slot_id": "slot_made_up", "appointment_type": "checkup"}, "call_3"),
        _answer("That time isn't available."),
    ]  # fmt: skip
    server, _, turns = _run(call, scripts, "robert taylor, march 15 1980", "book me at ten")
    result = json.loads(server.requests[-1].body["messages"][-1]["content"])
    assert result == {"refused": "I couldn't find that time."}
    assert all(not isinstance(o, ToolCall) for o in turns[1])


def test_an_end_from_a_reply_the_caller_interrupted_does_not_run(call: Call) -> None:
    script = [ROLE, _text("Alright, have a good day. "),
              _tool_chunk(0, "", call_id="call_1", name="end_call"), _tool_chunk(0, "{}"),
              _chunk({}, "tool_calls")]  # fmt: skip

    async def main() -> tuple[Scripted, list[PolicyOutput]]:
        async with Scripted() as server:
            server.scripts = [script, _answer("Sorry, go ahead.")]
            async with AzureOpenAIChat(endpoint=server.endpoint, api_key=KEY) as chat:
                policy = TieredPolicy(tools=call.tools, chat=chat,
                                      tool_schemas=receptionist_tools(),
                                      fast_deployment=FAST, complex_deployment=COMPLEX)  # fmt: skip
                outputs = []
                async for output in policy.respond(Transcript("ok i think that's it then")):
                    outputs.append(output)
                    if isinstance(output, Say):  # the caller talks over the goodbye
                        policy.reply_interrupted(ending_dropped=True)
            return server, outputs

    server, outputs = asyncio.run(main())
    assert not any(isinstance(o, EndCall | ToolCall) for o in outputs)
    result = json.loads(server.requests[1].body["messages"][-1]["content"])
    assert result == {"error": "Not done: the caller interrupted this reply."}
    assert [c.name for c in call.tools.calls] == []


def test_a_guardrail_refusal_goes_back_to_the_model(call: Call) -> None:
    scripts = [_asks("upcoming_appointments", {}), _answer("First, what is your full name?")]
    server, _, [turn] = _run(call, scripts, "when is my next visit again")
    result = json.loads(server.requests[1].body["messages"][-1]["content"])
    assert result == {"refused": "I need to confirm who you are first."}
    assert _says(turn) == ["First, what is your full name?"]


def test_several_constraints_at_once_start_on_the_complex_model(call: Call) -> None:
    server, policy, _ = _run(
        call, [_answer("Let me look.")], "hmm, dr patel, a checkup, tuesday morning at nine?"
    )
    assert server.deployments() == [COMPLEX]
    assert policy.last_tier is Tier.COMPLEX


def test_a_late_first_token_says_one_moment_once(call: Call) -> None:
    script: list[Step] = [ROLE, Pause(0.25), _text("Sure. "), _text("We are open late."),
                          _chunk({}, "stop")]  # fmt: skip
    _, _, [turn] = _run(call, [script], "are you guys around after work", late_ms=50)
    assert _says(turn) == [HOLDING_PHRASE, "Sure.", "We are open late."]
    assert [o.is_filler for o in turn if isinstance(o, Say)] == [True, False, False]


def test_two_errors_fall_back_to_the_deterministic_policy(call: Call) -> None:
    server, policy, [turn] = _run(call, [500, 500], "uh what about my thing")
    assert server.deployments() == [FAST, FAST]
    assert policy.last_tier is Tier.FALLBACK
    assert _says(turn) and "didn't catch that" in _says(turn)[0]


def test_one_error_is_retried(call: Call) -> None:
    server, policy, [turn] = _run(call, [500, _answer("Happy to help.")], "uh what about it")
    assert server.deployments() == [FAST, FAST]
    assert policy.last_tier is Tier.FAST and _says(turn) == ["Happy to help."]


def test_an_emergency_never_reaches_the_model(call: Call) -> None:
    server, policy, [turn] = _run(call, [], "i have crushing chest pain and can't breathe")
    assert server.requests == []
    assert policy.last_tier is Tier.SAFETY
    assert turn[-1] == TransferToStaff(reason="emergency")


def test_a_checkpoint_takes_a_model_turn_out_of_the_conversation(call: Call) -> None:
    async def main() -> Scripted:
        async with Scripted() as server:
            server.scripts = [_answer("We accept Aetna."), _answer("There is a car park.")]
            async with AzureOpenAIChat(endpoint=server.endpoint, api_key=KEY) as chat:
                policy = TieredPolicy(tools=call.tools, chat=chat,
                                      tool_schemas=receptionist_tools(),
                                      fast_deployment=FAST, complex_deployment=COMPLEX)  # fmt: skip
                policy.greeting()
                restore = policy.checkpoint()
                [o async for o in policy.respond(Transcript("do you take aetna", is_final=False))]
                restore()  # the final said something else, and nobody heard the answer
                [o async for o in policy.respond(Transcript("is there parking by the clinic"))]
            return server

    server = asyncio.run(main())
    second = server.requests[1].body["messages"]
    assert [m["role"] for m in second] == ["system", "system", "assistant", "user"]
    assert second[-1]["content"] == "is there parking by the clinic"
    assert all("aetna" not in str(m.get("content", "")).lower() for m in second)


def test_a_turn_for_the_model_is_acknowledged_at_once_with_a_fitting_cached_phrase(
    call: Call,
) -> None:
    question = _answer("We accept most major insurance plans.")
    statement = _answer("I can pass that on to our billing team.")
    server, _, turns = _run(call, [question, statement], "do you take aetna insurance",
                            "i have a problem with my bill", acknowledge=True)  # fmt: skip
    assert _says(turns[0]) == ["Let me check.", "We accept most major insurance plans."]
    assert _says(turns[1]) == ["Okay.", "I can pass that on to our billing team."]
    # Marked as fillers, so the call's first content is the model's first sentence.
    fillers = [[o.is_filler for o in turn if isinstance(o, Say)] for turn in turns]
    assert fillers == [[True, False], [True, False]]
    assert set(ACKNOWLEDGEMENTS) <= set(DEFAULT_PHRASES)  # replayed from the voice's cache
    # The acknowledgement is not the model's: it never sees it in the conversation.
    sent = server.requests[1].body["messages"]
    assert all(message.get("content") not in ACKNOWLEDGEMENTS for message in sent)


def test_an_acknowledged_turn_says_no_holding_phrase_and_code_turns_no_acknowledgement(
    call: Call,
) -> None:
    late = [Pause(0.2), *_answer("We accept Aetna.")]
    _, _, turns = _run(call, [late], "do you take aetna insurance", BOOK_UNTIL_CONFIRM[0],
                       late_ms=50, acknowledge=True)  # fmt: skip
    assert _says(turns[0]) == ["Let me check.", "We accept Aetna."]
    assert not set(_says(turns[1])) & {*ACKNOWLEDGEMENTS, HOLDING_PHRASE}


def test_the_acknowledgement_fits_the_words() -> None:
    assert acknowledgement("Can I come in on Friday") == "Let me check."
    assert acknowledgement("tuesday morning with doctor okafor", is_complex=True) == "Let me check."
    assert acknowledgement("my knee still hurts") == "Okay."


def test_after_hours_the_models_transfer_is_declined_and_it_is_told_why(tmp_path: Path) -> None:
    from tests.dialogue.test_policy import AFTER_HOURS

    with _call(tmp_path, at=AFTER_HOURS) as call:  # the clinic takes messages after hours
        scripts: list[list[Step] | int] = [
            _asks("transfer_to_staff", {"reason": "caller_request"}),
            _answer("Our office is closed, but I can take a message."),
        ]
        server, _, [turn] = _run(call, scripts, "could you put me through to the billing folks")
    assert not any(isinstance(o, TransferToStaff) for o in turn)
    assert call.tools.calls == [] and call.tools.outcome != "transferred:caller_request"
    result = server.requests[1].body["messages"][-1]
    assert result["role"] == "tool" and json.loads(result["content"])["transferring"] is False
    assert _says(turn) == ["Our office is closed, but I can take a message."]
