"""The embedded recognizer hears espeak-ng speech with the dialogue's own hints, state by state.

The caller speaks as the scripted caller does (``scripts/local_caller.py``: espeak-ng
``en-us+f2`` at 160 words a minute), one call's recognizer hears a whole conversation,
frame by frame as the media worker feeds it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import shutil

import pytest
from pocketsphinx import Decoder

from reddytalk.audio.pcm import frames_of
from reddytalk.dialogue.grammar import DialogueState, hints_for
from reddytalk.dialogue.safety import detect_emergency
from reddytalk.dialogue.understanding import Intent, detect_intent, parse_full_name
from reddytalk.providers.seed import demo_clinic
from reddytalk.providers.stt.pocketsphinx import (
    PocketsphinxRecognizer,
    PocketsphinxSpeechToText,
    _in_vocabulary,
)
from reddytalk.providers.tts.espeak import EspeakTextToSpeech
from reddytalk.scheduling.model import Provider

pytestmark = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")

S = DialogueState
CLINIC = demo_clinic()
_FRAME_BYTES = 640  # 20 ms of 16 kHz 16-bit mono


async def _speak(text: str) -> bytes:
    caller = EspeakTextToSpeech(voice="en-us+f2", words_per_minute=160)
    return b"".join([pcm async for pcm in caller.synthesize(text, sample_rate_hz=16_000)])


async def _hear(recognizer: PocketsphinxRecognizer, state: DialogueState, pcm: bytes) -> str:
    recognizer.set_hints(hints_for(state, CLINIC))
    recognizer.start_turn()
    for frame in frames_of(pcm, _FRAME_BYTES):
        recognizer.accept(frame)
    return (await recognizer.finish_turn()).text


def _conversation(*turns: tuple[DialogueState, str]) -> list[str]:
    """What one call's recognizer heard of each (state, spoken text) turn."""

    async def run() -> list[str]:
        recognizer = await PocketsphinxSpeechToText().open(sample_rate_hz=16_000)
        try:
            return [await _hear(recognizer, state, await _speak(text)) for state, text in turns]
        finally:
            recognizer.close()

    return asyncio.run(run())


@pytest.mark.parametrize(
    "text",
    [
        "I'd like to leave a message",
        "Can you take a message",
        "I have a message for the doctor",
        "I need a prescription refill, can someone call me back",
    ],
)
def test_asking_to_leave_a_message_is_heard_as_that(text: str) -> None:
    [heard] = _conversation((S.HOW_CAN_I_HELP, text))
    assert detect_intent(heard) is Intent.MESSAGE, heard


def test_a_dictated_message_keeps_its_key_words_and_the_name_after_it_is_exact() -> None:
    # Dictation is far from exact (see reddytalk.dialogue.grammar): these words came
    # through for both espeak voices measured, "minutes" did not.
    _, message, name = _conversation(
        (S.HOW_CAN_I_HELP, "I'd like to leave a message"),
        (S.ASK_MESSAGE, "I will be about fifteen minutes late for my appointment tomorrow"),
        (S.ASK_MESSAGE_NAME, "My name is Sarah Johnson"),
    )
    assert {"late", "appointment", "tomorrow"} <= set(message.split()), message
    assert parse_full_name(name) == ("Sarah", "Johnson")


def test_an_emergency_is_heard_while_dictating() -> None:
    _, heard = _conversation(
        (S.HOW_CAN_I_HELP, "Can you take a message"),
        (S.ASK_MESSAGE, "My son is having a seizure"),
    )
    assert detect_emergency(heard) is not None, heard


def test_a_second_message_is_dictated_too() -> None:
    _, first, second = _conversation(
        (S.HOW_CAN_I_HELP, "I'd like to leave a message"),
        (S.ASK_MESSAGE, "I will be about fifteen minutes late for my appointment tomorrow"),
        (S.ASK_MESSAGE, "I will be about fifteen minutes late for my appointment tomorrow"),
    )
    assert "appointment" in first.split() and "appointment" in second.split()


@pytest.mark.parametrize("state", [S.ASK_NAME, S.ASK_MESSAGE])
def test_silence_is_heard_as_nothing(state: DialogueState) -> None:
    # Against a grammar no path reaches its end, and pocketsphinx returns no segments.
    async def run() -> str:
        recognizer = await PocketsphinxSpeechToText().open(sample_rate_hz=16_000)
        return await _hear(recognizer, state, bytes(32_000))

    assert asyncio.run(run()) == ""


def test_a_clinic_whose_words_are_not_in_the_dictionary_is_still_understood() -> None:
    """A provider named "Okafor" is in no dictionary; the grammar loads without it."""
    okafor = Provider(provider_id="dr-okafor", display_name="Doctor Okafor", family_name="Okafor")
    clinic = dataclasses.replace(CLINIC, providers=(*CLINIC.providers, okafor))

    async def run() -> list[str]:
        recognizer = await PocketsphinxSpeechToText().open(sample_rate_hz=16_000)
        try:
            heard = []
            for state, text in ((S.HOW_CAN_I_HELP, "i would like to book an appointment"),
                                (S.HOW_CAN_I_HELP, "i would like to book an appointment"),
                                (S.ASK_WHEN, "with doctor chen next tuesday")):  # fmt: skip
                recognizer.set_hints(hints_for(state, clinic))
                recognizer.start_turn()
                for frame in frames_of(await _speak(text), _FRAME_BYTES):
                    recognizer.accept(frame)
                heard.append((await recognizer.finish_turn()).text)
            return heard
        finally:
            recognizer.close()

    _, request, when = asyncio.run(run())  # the first turn only settles the recognizer
    assert detect_intent(request) is Intent.BOOK, request
    assert when == "with doctor chen next tuesday"  # the known names still are


def test_only_the_words_the_dictionary_lacks_are_left_out_of_a_grammar() -> None:
    decoder = Decoder(samprate=16_000)
    for state in DialogueState:
        jsgf = hints_for(state, CLINIC).jsgf
        assert _in_vocabulary(decoder, jsgf) == (jsgf, 0)  # the demo clinic: every word known
    rule = "#JSGF V1.0;\ngrammar g;\npublic <u> = [doctor] (okafor | chen) [i'd like] /2/ <x>;"
    assert _in_vocabulary(decoder, rule) == (
        "#JSGF V1.0;\ngrammar g;\npublic <u> = [doctor] (<NULL> | chen) [i'd like] /2/ <x>;",
        1,
    )
