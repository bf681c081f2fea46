"""What a caller's words mean: yes/no, intents, names, types, providers and choices."""

from __future__ import annotations

import pytest

from reddytalk.dialogue.understanding import (
    Intent,
    detect_intent,
    find_appointment_type,
    find_choice,
    find_provider,
    is_no,
    is_yes,
    normalize,
    parse_full_name,
    same_words,
    sounds_unfinished,
)
from reddytalk.providers.seed import demo_clinic

CLINIC = demo_clinic()


@pytest.mark.parametrize(
    "text",
    [
        "yes",
        "Yes please",
        "yeah that works",
        "Yep.",
        "sure",
        "that's right",
        "OK",
        "correct",
        "go ahead",
        "Yes, that's right",
    ],
)
def test_is_yes(text: str) -> None:
    assert is_yes(text)
    assert not is_no(text)


@pytest.mark.parametrize(
    "text",
    ["no", "No thank you", "nope", "none of those", "that's all", "Nah.", "no thanks"],
)
def test_is_no(text: str) -> None:
    assert is_no(text)
    assert not is_yes(text)


@pytest.mark.parametrize("text", ["", "banana", "maybe", "i said yes", "tuesday morning"])
def test_neither_yes_nor_no(text: str) -> None:
    assert not is_yes(text)
    assert not is_no(text)


def test_normalize() -> None:
    assert normalize("  It’s  Dr. O-Brien!! ") == "it's dr o brien"


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("i would like to book an appointment", Intent.BOOK),
        ("I need a checkup", Intent.BOOK),
        ("can I see the doctor", Intent.BOOK),
        ("I'd like to schedule a sick visit", Intent.BOOK),
        ("i want to cancel my appointment", Intent.CANCEL),
        ("please cancel it", Intent.CANCEL),
        ("I need to reschedule my appointment", Intent.RESCHEDULE),
        ("can I move my visit", Intent.RESCHEDULE),
        ("what are your hours", Intent.HOURS),
        ("when are you open", Intent.HOURS),
        ("what is your address", Intent.ADDRESS),
        ("where are you located", Intent.ADDRESS),
        ("can i speak to a person", Intent.STAFF),
        ("operator", Intent.STAFF),
        ("goodbye", Intent.GOODBYE),
        ("no thank you", Intent.GOODBYE),
        ("could you repeat that", Intent.REPEAT),
        ("I'd like to leave a message", Intent.MESSAGE),
        ("can you take a message", Intent.MESSAGE),
        ("could I leave a message for Doctor Patel", Intent.MESSAGE),
        ("I have a message for the doctor", Intent.MESSAGE),
        ("I need a prescription refill, can someone call me back?", Intent.MESSAGE),
        ("I need a refill", Intent.MESSAGE),
        ("please have the nurse call me", Intent.MESSAGE),
        ("can you pass a message to my doctor", Intent.MESSAGE),
        # a message about an appointment, or a call back later, is still a message
        ("I want to leave a message about my appointment", Intent.MESSAGE),
        ("can someone call me back in two hours", Intent.MESSAGE),
        # a refill is only a message when no appointment is asked for
        ("I need to book an appointment for a refill", Intent.BOOK),
    ],
)
def test_detect_intent(text: str, intent: Intent) -> None:
    assert detect_intent(text) is intent


@pytest.mark.parametrize(
    "text", ["", "banana", "march fifteenth nineteen eighty", "yes", "my message", "the messenger"]
)
def test_no_intent(text: str) -> None:
    assert detect_intent(text) is None


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("my name is robert taylor", ("Robert", "Taylor")),
        ("Robert Taylor", ("Robert", "Taylor")),
        ("it's linda wilson", ("Linda", "Wilson")),
        ("this is Sarah Johnson", ("Sarah", "Johnson")),
        ("um i am john smith", ("John", "Smith")),
    ],
)
def test_parse_full_name(text: str, name: tuple[str, str]) -> None:
    assert parse_full_name(text) == name


@pytest.mark.parametrize("text", ["", "robert", "my name is robert james taylor", "yes"])
def test_parse_full_name_needs_two_names(text: str) -> None:
    assert parse_full_name(text) is None


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("a checkup", "checkup"),
        ("I need a check-up please", "checkup"),
        ("a sick visit", "sick-visit"),
        ("a follow up", "follow-up"),
        ("new patient visit", "new-patient"),
        ("an annual exam", "checkup"),
    ],
)
def test_find_appointment_type(text: str, code: str) -> None:
    found = find_appointment_type(text, CLINIC.appointment_types)
    assert found is not None
    assert found.code == code


def test_find_appointment_type_none() -> None:
    assert find_appointment_type("tuesday morning", CLINIC.appointment_types) is None
    assert find_appointment_type("sickle", CLINIC.appointment_types) is None


@pytest.mark.parametrize(
    ("text", "provider_id"),
    [("doctor patel", "dr-patel"), ("with Chen please", "dr-chen"), ("Dr. Rivera", "dr-rivera")],
)
def test_find_provider(text: str, provider_id: str) -> None:
    found = find_provider(text, CLINIC.providers)
    assert found is not None
    assert found.provider_id == provider_id


def test_find_provider_none() -> None:
    assert find_provider("any doctor", CLINIC.providers) is None


@pytest.mark.parametrize(
    ("text", "count", "index"),
    [
        ("the first one", 3, 0),
        ("the second one", 3, 1),
        ("the third one please", 3, 2),
        ("the last one", 3, 2),
        ("the last one", 2, 1),
        ("number two", 3, 1),
        ("one", 3, 0),
        ("the third one", 2, None),
        ("the second one", 1, None),
        ("whichever", 3, None),
    ],
)
def test_find_choice(text: str, count: int, index: int | None) -> None:
    assert find_choice(text, count) == index


@pytest.mark.parametrize(
    ("words", "unfinished"),
    [
        ("I'd like to book a", True),
        ("my name is", True),
        ("next tuesday morning um", True),
        ("", True),
        ("I'd like to book a checkup", False),
        ("Yes, please.", False),
        ("march fifteenth nineteen eighty", False),
    ],
)
def test_words_that_stop_mid_sentence_sound_unfinished(words: str, unfinished: bool) -> None:
    assert sounds_unfinished(words) is unfinished


def test_same_words_ignores_case_and_punctuation_only() -> None:
    assert same_words("What are your opening hours?", "what are your opening hours")
    assert not same_words("what are your opening hours", "what are your opening hours on saturday")
