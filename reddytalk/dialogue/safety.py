"""Emergencies, decided by code before and regardless of any policy or model.

A caller who describes a medical emergency is told to hang up and dial 911 and is
transferred to staff at once; a caller in a mental-health crisis also hears the
988 Suicide & Crisis Lifeline. The phrase lists are deliberately broad: a false
alarm costs a transfer, a miss can cost a life.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

__all__ = [
    "CRISIS_PHRASES",
    "EMERGENCY_PHRASES",
    "Emergency",
    "EmergencyKind",
    "detect_emergency",
]


class EmergencyKind(Enum):
    """What kind of help the caller needs now."""

    MEDICAL = "medical"
    MENTAL_HEALTH = "mental_health"


EMERGENCY_PHRASES: tuple[str, ...] = (
    "chest pain",
    "chest hurts",
    "pain in my chest",
    "heart attack",
    "can't breathe",
    "cannot breathe",
    "can not breathe",
    "trouble breathing",
    "not breathing",
    "hard to breathe",
    "choking",
    "severe bleeding",
    "bleeding a lot",
    "won't stop bleeding",
    "bleeding badly",
    "stroke",
    "face is drooping",
    "passed out",
    "unconscious",
    "not responsive",
    "seizure",
    "overdose",
    "overdosed",
    "poisoned",
    "allergic reaction",
    "throat is closing",
    "emergency",
)

CRISIS_PHRASES: tuple[str, ...] = (
    "suicidal",
    "suicide",
    "kill myself",
    "end my life",
    "want to die",
    "hurt myself",
    "harm myself",
    "self harm",
)


@dataclass(frozen=True, slots=True)
class Emergency:
    """An emergency detected in what the caller said."""

    kind: EmergencyKind
    instruction: str


_MEDICAL_INSTRUCTION = (
    "If this is a medical emergency, please hang up and dial 9 1 1 now. "
    "I am connecting you to our staff right away."
)
_CRISIS_INSTRUCTION = (
    "You are not alone, and help is available right now. "
    "If you are in danger, please hang up and dial 9 1 1. "
    "You can also call or text the Suicide and Crisis Lifeline at 9 8 8, any time. "
    "I am connecting you to our staff right away."
)


def _pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(p).replace("'", "'?") for p in phrases)
    return re.compile(rf"\b(?:{alternatives})\b")


_MEDICAL = _pattern(EMERGENCY_PHRASES)
_CRISIS = _pattern(CRISIS_PHRASES)


def _normalize(text: str) -> str:
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z' ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def detect_emergency(text: str) -> Emergency | None:
    """The emergency in ``text``, if any; a crisis takes precedence over a medical one."""
    words = _normalize(text)
    if _CRISIS.search(words):
        return Emergency(EmergencyKind.MENTAL_HEALTH, _CRISIS_INSTRUCTION)
    if _MEDICAL.search(words):
        return Emergency(EmergencyKind.MEDICAL, _MEDICAL_INSTRUCTION)
    return None
