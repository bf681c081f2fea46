"""Emergencies are detected by code, wherever the call is."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reddytalk.dialogue.safety import (
    CRISIS_PHRASES,
    EMERGENCY_PHRASES,
    EmergencyKind,
    detect_emergency,
)


@pytest.mark.parametrize(
    "text",
    [
        "I have chest pain",
        "i can't breathe",
        "cant breathe",
        "I CAN’T BREATHE!",
        "my father is having a stroke",
        "she passed out",
        "this is an emergency",
        "I think I'm having a heart attack",
    ],
)
def test_medical_emergency(text: str) -> None:
    emergency = detect_emergency(text)
    assert emergency is not None
    assert emergency.kind is EmergencyKind.MEDICAL
    assert "9 1 1" in emergency.instruction
    assert "9 8 8" not in emergency.instruction


@pytest.mark.parametrize(
    "text", ["I want to kill myself", "i feel suicidal", "I want to end my life",
             "i have chest pain and i want to die"],
)
def test_mental_health_crisis_takes_precedence(text: str) -> None:
    emergency = detect_emergency(text)
    assert emergency is not None
    assert emergency.kind is EmergencyKind.MENTAL_HEALTH
    assert "988" in emergency.instruction.replace(" ", "")
    assert "9 1 1" in emergency.instruction


@pytest.mark.parametrize(
    "text",
    [
        "",
        "i would like to book an appointment",
        "my name is robert taylor",
        "next tuesday morning",
        "a checkup",
        "what are your hours",
        "yes please",
        "I breathe fine",
        "the restroom",  # no false match inside longer words
    ],
)
def test_ordinary_sentences(text: str) -> None:
    assert detect_emergency(text) is None


@pytest.mark.parametrize("phrase", [*EMERGENCY_PHRASES, *CRISIS_PHRASES])
def test_every_listed_phrase_is_detected_in_a_sentence(phrase: str) -> None:
    assert detect_emergency(f"Hello, {phrase.upper()}, please help.") is not None


@given(st.text())
def test_never_raises(text: str) -> None:
    result = detect_emergency(text)
    assert result is None or result.instruction
