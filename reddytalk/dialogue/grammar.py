"""Recognition hints per dialogue state, built from the clinic's own data.

Each state's JSGF grammar is what the caller is likely to say there, plus what a
caller may say in any state: yes, no, asking for staff, goodbye, and every
emergency phrase (a grammar recognizer can only hear what its grammar holds, and
an emergency must be heard wherever the call is). The one exception is the
caller's message for staff, which is free speech (see ``_DICTATION_STATES``).
Azure Speech takes the same hints as a phrase list.
"""

from __future__ import annotations

import functools
import re
from enum import Enum

from reddytalk.dialogue import safety, spoken
from reddytalk.dialogue.understanding import COMMON_FAMILY_NAMES, COMMON_GIVEN_NAMES, normalize
from reddytalk.ports import RecognitionHints
from reddytalk.scheduling.model import Clinic

__all__ = ["DialogueState", "hints_for"]


class DialogueState(Enum):
    """Where the conversation is; each state has its own grammar."""

    HOW_CAN_I_HELP = "how_can_i_help"
    ASK_NAME = "ask_name"
    ASK_BIRTH_DATE = "ask_birth_date"
    CONFIRM_NEW_PATIENT = "confirm_new_patient"
    ASK_TYPE = "ask_type"
    ASK_WHEN = "ask_when"
    OFFER_SLOTS = "offer_slots"
    CONFIRM = "confirm"
    OFFER_TEXT = "offer_text"
    CHOOSE_APPOINTMENT = "choose_appointment"
    ASK_MESSAGE = "ask_message"
    ASK_MESSAGE_NAME = "ask_message_name"
    ANYTHING_ELSE = "anything_else"
    OFFER_STAFF = "offer_staff"
    ENDED = "ended"


_YES = "yes | yeah | yes please | yes that's right | yes that works | that works | correct | sure"
_NO = "no | no thanks | no thank you | nope | none of those | that's all | that's all thank you"
_STAFF = (
    "(can i | i want to | i'd like to | let me) (speak | talk) (to | with) "
    "(someone | a person | a human | the staff | a receptionist | a nurse) | operator"
)
_GOODBYE = "goodbye | bye | thank you goodbye | no thank you goodbye"
_INTENT = (
    "[i'd like to | i would like to | i want to | i need to | can i | i'd like | i need]"
    " (book | make | schedule | cancel | reschedule | change | move) (an | my | a)"
    " [<type>] appointment | what are your [opening] hours | when are you open"
    " | where are you located | what is your address | <message>"
)
_MESSAGE = (
    "[i'd like to | i would like to | i want to | i need to | can i | could i] leave a message"
    " [for <recipient>] | (can | could) you take a message [for <recipient>]"
    " | i have a message for <recipient>"
    " | [i need a (prescription | medication) refill] (can | could) (someone | <recipient>)"
    " call me back | i need a (prescription | medication) refill"
)
_RECIPIENT = "(the | my) (doctor | nurse | staff) | <provider>"


def _phrases(words: tuple[str, ...]) -> str:
    return " | ".join(normalize(w) for w in words)


def _emergency() -> str:
    phrases = []
    for phrase in (*safety.EMERGENCY_PHRASES, *safety.CRISIS_PHRASES):
        phrases.append(re.sub(r"\s+", " ", phrase.lower()))
    return (
        "[i have | i'm having | i am having | my | i feel | i think i'm having | i'm] ("
        + (" | ".join(phrases))
        + ")"
    )


def _clinic_rules(clinic: Clinic) -> str:
    types = sorted({normalize(n) for t in clinic.appointment_types for n in t.spoken_names})
    providers = sorted({normalize(p.family_name) for p in clinic.providers})
    return (
        f"<type> = [a | an] ({' | '.join(types)});\n"
        f"<provider> = [doctor | with doctor] ({' | '.join(providers)});\n"
    )


_STATE_RULES: dict[DialogueState, str] = {
    DialogueState.HOW_CAN_I_HELP: "<intent>",
    DialogueState.ASK_NAME: "[my name is | this is | it's | i am] <given> <family>",
    DialogueState.ASK_BIRTH_DATE: "[my date of birth is | my birthday is | i was born on | it's] <dob>",  # noqa: E501
    DialogueState.CONFIRM_NEW_PATIENT: "<given> <family>",
    DialogueState.ASK_MESSAGE_NAME: "[my name is | this is | it's | i am] <given> <family>",
    DialogueState.ASK_TYPE: "[i need | i'd like | i want] <type> [please]",
    DialogueState.ASK_WHEN: "[with <provider>] <when> [with <provider>] | <provider>",
    DialogueState.OFFER_SLOTS: (
        "[the] (first | second | third | last) [one] [please] | [the one] [at] <clock_time>"
        " [please] | [the one] with <provider> | [how about] <when> | something else"
    ),
    DialogueState.CONFIRM: "<when>",
    # A text confirmation: a plain yes or no (both in every grammar), or with the words.
    DialogueState.OFFER_TEXT: (
        "(yes | yeah | sure) [please] [(text | send) (me | it) [please]]"
        " | no [thanks | thank you] [i don't need (a | the) text]"
    ),
    DialogueState.CHOOSE_APPOINTMENT: "[the] (first | second | third | last) [one] | <when>",
    DialogueState.ANYTHING_ELSE: "<intent>",
    DialogueState.OFFER_STAFF: "<intent>",
    DialogueState.ENDED: "<intent>",
}  # fmt: skip

# The caller's message is free speech that no grammar holds, so that state has none:
# an empty ``jsgf`` asks for dictation (pocketsphinx's general n-gram language model).
# Measured 2026-11-25 (pocketsphinx 5.1.1): 12 clinic messages of 141 words in all, spoken
# by espeak-ng at 160 words a minute, cepstral mean converged as in a call; emergencies
# are 10 emergency sentences ("i have chest pain", "my son is having a seizure", ...):
#
#   recognizer                                    word error rate     emergencies heard
#                                                 en-us+f2  en-us+m3  en-us+f2  en-us+m3
#   JSGF loop over 332 clinic-message words       79 %      109 %     3/10      2/10
#   n-gram language model, one pass (chosen)      43 %       79 %     8/10      4/10
#   ... with its second pass                      37 %       78 %     7/10      5/10
#   ASK_NAME's grammar, for comparison            --        --        7/10      6/10
#
# The second pass costs 130 ms (up to 250 ms) at the end of every message turn, so the
# recognizer does without it. What staff read is a rough transcript either way.
# The n-gram search costs about 3 ms of CPU per 20 ms frame (ASK_NAME's grammar 0.3 ms,
# the word loop 2.5 ms), only in that state. The word loop loses most emergencies to
# sequences of its single words.
_DICTATION_STATES = frozenset({DialogueState.ASK_MESSAGE})


@functools.lru_cache(maxsize=256)
def _grammar(state: DialogueState, clinic_rules: str) -> str:
    return (
        "#JSGF V1.0;\ngrammar receptionist;\n"
        f"public <utterance> = <state> | <yes> | <no> | <staff> | <goodbye> | <emergency>;\n"
        f"<state> = {_STATE_RULES[state]};\n"
        f"<intent> = {_INTENT};\n<message> = {_MESSAGE};\n<recipient> = {_RECIPIENT};\n"
        f"<yes> = {_YES};\n<no> = {_NO};\n<staff> = {_STAFF};\n<goodbye> = {_GOODBYE};\n"
        f"<emergency> = {_emergency()};\n"
        f"<given> = {_phrases(COMMON_GIVEN_NAMES)};\n"
        f"<family> = {_phrases(COMMON_FAMILY_NAMES)};\n"
        f"{clinic_rules}{spoken.JSGF_RULES}"
    )


def hints_for(state: DialogueState, clinic: Clinic) -> RecognitionHints:
    """The recognition hints for ``state`` at ``clinic`` (grammars are cached).

    In a state where the caller speaks freely (their message) the grammar is empty:
    a grammar recognizer decodes with its general language model instead.
    """
    phrases = (
        *(p.display_name for p in clinic.providers),
        *(t.display_name for t in clinic.appointment_types),
        clinic.name,
    )
    jsgf = "" if state in _DICTATION_STATES else _grammar(state, _clinic_rules(clinic))
    return RecognitionHints(state=state.value, jsgf=jsgf, phrases=phrases)
