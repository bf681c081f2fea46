"""Turn-taking failures open voice frameworks' users report, each as a scripted call on
the ACS wire (the harness of ``test_call_session``): a tool result is kept when the
caller talks over it, an unheard goodbye does not hang up, and a false interruption
resumes the answer instead of leaving silence."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from reddytalk.frames import EndCall, PolicyOutput, Say, ToolCall, Transcript
from tests.calls.test_call_session import (
    AHEAD_S,
    ASKED_HOURS,
    ASKED_SATURDAY,
    END_OF_TURN_FRAMES,
    GREETING,
    HOURS,
    HOURS_MORE,
    SATURDAY,
    Line,
    ScriptedPolicy,
    ToneSpeech,
    _call,
    _greeted,
    _silence,
    _turn,
    _voice,
)

GOODBYE = "Thank you for calling. Goodbye!"
NOISE_FRAMES = 10  # 200 ms: over the 100 ms barge-in threshold


def _after_stop(line: Line, tts: ToneSpeech) -> list[str]:
    stop = next(n for n, sent in enumerate(line.sent) if sent.pcm is None)
    return [tts.text_of(s.pcm) for s in line.sent[stop + 1 :] if s.pcm is not None]


def test_a_false_interruption_resumes_the_cut_answer_from_its_sentence() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 500, HOURS_MORE: 200})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(HOURS), Say(HOURS_MORE)]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: len(line.frames()) >= 3 + 5)
        # An echo or a cough: long enough to barge in, and the recognizer hears no words.
        await line.stream(_voice(NOISE_FRAMES) + _silence(END_OF_TURN_FRAMES + 2))
        await line.until(lambda: line.has_said(HOURS_MORE))

    summary, line, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ""])

    assert line.stops() == 1 and summary.barge_ins == 1
    after = _after_stop(line, tts)
    assert after.count(HOURS) == tts.frames_in(HOURS)  # the cut sentence, said again whole
    assert after.count(HOURS_MORE) == tts.frames_in(HOURS_MORE)  # and the rest of the answer
    assert policy.heard == [ASKED_HOURS]  # the empty turn never reached the policy
    assert [t.resumed for t in summary.turns] == [False, True]
    assert summary.transcript[-3:] == [
        ("caller", ""),
        ("receptionist", HOURS),
        ("receptionist", HOURS_MORE),
    ]


def test_a_goodbye_the_caller_talks_over_does_not_hang_up() -> None:
    tts = ToneSpeech({GREETING: 60, GOODBYE: 600, SATURDAY: 100})
    policy = ScriptedPolicy(
        {ASKED_HOURS: [Say(GOODBYE), EndCall()], ASKED_SATURDAY: [Say(SATURDAY)]}
    )

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: len(line.frames()) >= 3 + 5)
        await line.stream(_voice(NOISE_FRAMES) + _silence(END_OF_TURN_FRAMES))
        await line.until(lambda: line.has_said(SATURDAY))
        await asyncio.sleep(0.1)  # a hang-up would come within the 20 ms grace
        assert line.call is not None and not line.call.done()

    summary, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ASKED_SATURDAY]
    )

    assert policy.interruptions == [True]  # told: the end was dropped
    assert summary.ending == "caller_hung_up"  # the call went on until the caller left
    assert ("receptionist", f"{GOODBYE} [interrupted]") in summary.transcript
    assert _after_stop(line, tts) == [SATURDAY] * tts.frames_in(SATURDAY)


def test_a_goodbye_cut_by_a_false_interruption_is_said_again_and_ends_the_call() -> None:
    tts = ToneSpeech({GREETING: 60, GOODBYE: 400})
    policy = ScriptedPolicy({ASKED_HOURS: [Say(GOODBYE), EndCall()]})

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)
        await line.until(lambda: len(line.frames()) >= 3 + 5)
        await line.stream(_voice(NOISE_FRAMES) + _silence(END_OF_TURN_FRAMES + 2))
        await line.until(lambda: line.call is not None and line.call.done())

    summary, line, _ = _call(script, policy=policy, tts=tts, transcripts=[ASKED_HOURS, ""])

    assert summary.ending == "completed"
    assert _after_stop(line, tts) == [GOODBYE] * tts.frames_in(GOODBYE)
    assert summary.transcript[-1] == ("receptionist", GOODBYE)


class SlowLookupPolicy(ScriptedPolicy):
    """Looks the caller up (slowly) on the birth date; later turns see the result."""

    def __init__(self) -> None:
        super().__init__({ASKED_SATURDAY: [Say(SATURDAY)]})
        self.verified = False
        self.verified_when_heard: list[bool] = []

    async def respond(self, heard: Transcript) -> AsyncIterator[PolicyOutput]:
        self.verified_when_heard.append(self.verified)
        if heard.text != "my birth date":
            async for output in super().respond(heard):
                yield output
            return
        self.heard.append(heard.text)
        await asyncio.sleep(0.3)  # the EHR is slow: the caller speaks again meanwhile
        self.verified = True
        yield ToolCall("verify_identity", {"birth_date": "[phi]"}, {"verified": True})
        yield Say(HOURS)


def test_a_look_up_the_caller_talks_over_finishes_and_its_result_is_kept() -> None:
    tts = ToneSpeech({GREETING: 60, HOURS: 400, SATURDAY: 100})
    policy = SlowLookupPolicy()

    async def script(line: Line) -> None:
        await _greeted(line)
        await _turn(line)  # "my birth date"; the look-up starts
        await line.stream(_voice(30))  # the caller goes on while it runs (600 ms)
        await line.stream(_silence(END_OF_TURN_FRAMES))
        await line.until(lambda: line.has_said(SATURDAY))

    summary, line, _ = _call(
        script, policy=policy, tts=tts, transcripts=["my birth date", ASKED_SATURDAY]
    )

    # The result arrived while the caller was speaking: kept in the call and the policy.
    assert [(c.name, c.result) for c in summary.tool_calls] == [
        ("verify_identity", {"verified": True})
    ]
    assert policy.verified_when_heard == [False, True]
    # Its answer, queued while the caller spoke, was cut within a frame: at most its
    # first frame and the one sent ahead with it (ACS drops that one on StopAudio).
    heard = [tts.text_of(frame) for frame in line.frames()]
    sent_ahead = round(AHEAD_S / 0.020)
    assert heard.count(HOURS) <= 1 + sent_ahead
    assert heard.count(SATURDAY) == tts.frames_in(SATURDAY)
