"""What a caller's words mean in the receptionist's world: pure functions over text.

They work on a grammar recognizer's exact output and on free text alike
(lowercase, fillers ignored), so the same rules serve the embedded recognizer now
and Azure Speech later.
"""

from __future__ import annotations

import re
from enum import Enum

from reddytalk.scheduling.model import AppointmentType, Provider

__all__ = [
    "COMMON_FAMILY_NAMES",
    "COMMON_GIVEN_NAMES",
    "Intent",
    "detect_intent",
    "find_appointment_type",
    "find_choice",
    "find_provider",
    "is_no",
    "is_yes",
    "normalize",
    "parse_full_name",
    "same_words",
    "sounds_unfinished",
]


class Intent(Enum):
    """Why the caller is calling."""

    BOOK = "book"
    RESCHEDULE = "reschedule"
    CANCEL = "cancel"
    HOURS = "hours"
    ADDRESS = "address"
    STAFF = "staff"
    GOODBYE = "goodbye"
    REPEAT = "repeat"
    MESSAGE = "message"


COMMON_GIVEN_NAMES: tuple[str, ...] = (
    "john", "maria", "james", "sarah", "david", "michael", "linda", "robert", "jennifer",
    "william", "elizabeth", "susan", "joseph", "thomas", "karen", "daniel", "lisa", "nancy",
    "emily", "anna", "peter", "paul", "mary", "george", "laura", "kevin", "helen", "carlos",
    "jose", "ana", "wei", "mohammed", "fatima", "aisha", "omar", "grace", "henry",
)  # fmt: skip
COMMON_FAMILY_NAMES: tuple[str, ...] = (
    "smith", "garcia", "brown", "johnson", "williams", "jones", "miller", "davis", "wilson",
    "taylor", "anderson", "thomas", "moore", "martin", "lee", "walker", "hall", "young", "king",
    "wright", "lopez", "hill", "scott", "green", "adams", "baker", "nelson", "carter",
    "mitchell", "roberts", "nguyen", "patel", "chen", "rivera", "kim", "singh", "khan",
)  # fmt: skip

_YES = re.compile(
    r"^(?:(?:yes|yeah|yep|yup|sure|correct|right|ok|okay|absolutely|definitely|please do|"
    r"that works|sounds good|that's right|that is right|go ahead|perfect)\b.*)$"
)
_NO = re.compile(
    r"^(?:(?:no|nope|nah|not really|don't|do not|that's all|that is all|nothing else|"
    r"none of those|neither)\b.*)$"
)
# Asking for a message or a call back comes first: "leave a message about my appointment"
# is a message, and "call me back in two hours" no question about opening hours. A refill
# alone is a message too (staff handle it), unless an appointment is asked for as well.
_INTENTS: tuple[tuple[Intent, re.Pattern[str]], ...] = (
    (Intent.MESSAGE, re.compile(r"\b(leave|take|pass|give|send)\b.*\b(message|voicemail)\b|\b(have|got) a message\b|\bmessage for\b|\b(call|ring) me\b|\bcall (me )?back\b|\breturn my call\b")),  # noqa: E501
    (Intent.RESCHEDULE, re.compile(r"\b(reschedule|move|change)\b.*\b(appointment|visit)\b")),
    (Intent.CANCEL, re.compile(r"\bcancel\b")),
    (Intent.BOOK, re.compile(r"\b(book|make|schedule|set up|need|want|get)\b.*\b(appointment|visit|checkup|check up|physical|follow up|sick visit)\b|\bsee (a|the) doctor\b")),  # noqa: E501
    (Intent.MESSAGE, re.compile(r"\brefills?\b")),
    (Intent.STAFF, re.compile(r"\b(speak|talk)\b.*\b(someone|person|human|staff|receptionist|representative|nurse)\b|\b(operator|representative)\b")),  # noqa: E501
    (Intent.HOURS, re.compile(r"\b(hours|open|close|closing)\b")),
    (Intent.ADDRESS, re.compile(r"\b(address|located|location|where are you|directions)\b")),
    (Intent.REPEAT, re.compile(r"\b(repeat|say that again|come again|pardon)\b")),
    (Intent.GOODBYE, re.compile(r"\b(goodbye|bye|that's all|that is all|no thank you|no thanks|nothing else)\b")),  # noqa: E501
)  # fmt: skip
_ORDINALS = {"first": 0, "one": 0, "second": 1, "two": 1, "third": 2, "three": 2}
_NAME_FILLERS = frozenset(
    "my name is it's its it is this i am i'm the patient's name first last and yes uh um".split()
)


def normalize(text: str) -> str:
    """Lowercase words separated by single spaces, apostrophes kept."""
    text = text.lower().replace("’", "'").replace("-", " ")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


# Words a finished sentence does not end on: a caller who stops after them is pausing
# ("I'd like to book a... um"), so the turn waits for the full end-of-turn silence.
_CONTINUING = frozenset(
    "a an the and or but so because um uh er erm hmm like to for with at on in of from "
    "my your our his her their is are was be i i'm it's that's want need would could "
    "about next this at around before after than then".split()
)


def sounds_unfinished(text: str) -> bool:
    """Whether words heard so far stop where a sentence does not (or are no words)."""
    words = normalize(text).split()
    return not words or words[-1] in _CONTINUING


def same_words(a: str, b: str) -> bool:
    """Whether two transcripts say the same words (case and punctuation aside)."""
    return normalize(a) == normalize(b)


def is_yes(text: str) -> bool:
    """A clear yes (and not a yes-but-no)."""
    words = normalize(text)
    return bool(_YES.match(words)) and not is_no(words)


def is_no(text: str) -> bool:
    """A clear no."""
    return bool(_NO.match(normalize(text)))


def detect_intent(text: str) -> Intent | None:
    """The caller's request, if the words carry one."""
    words = normalize(text)
    for intent, pattern in _INTENTS:
        if pattern.search(words):
            return intent
    return None


def parse_full_name(text: str) -> tuple[str, str] | None:
    """Given and family name from "my name is john smith" and the like."""
    words = normalize(text)
    if " is " in f" {words} ":
        words = words.split(" is ", 1)[1] if " is " in words else words
    kept = [w for w in words.split() if w not in _NAME_FILLERS]
    if len(kept) != 2:
        return None
    return kept[0].title(), kept[1].title()


def find_appointment_type(text: str, types: tuple[AppointmentType, ...]) -> AppointmentType | None:
    """The appointment type the caller named, longest spoken name first."""
    words = f" {normalize(text)} "
    spoken = sorted(
        ((normalize(name), t) for t in types for name in (*t.spoken_names, t.display_name)),
        key=lambda pair: -len(pair[0]),
    )
    return next((t for name, t in spoken if f" {name} " in words), None)


def find_provider(text: str, providers: tuple[Provider, ...]) -> Provider | None:
    """The provider the caller named ("doctor patel", "patel")."""
    words = normalize(text).split()
    return next((p for p in providers if p.family_name.lower() in words), None)


def find_choice(text: str, count: int) -> int | None:
    """Which of ``count`` offers the caller picked by position ("the second one", "the last")."""
    words = normalize(text).split()
    if "last" in words:
        return count - 1 if count else None
    for word in words:
        if word in _ORDINALS:
            index = _ORDINALS[word]
            return index if index < count else None
    return None
