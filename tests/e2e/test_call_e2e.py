"""End to end: the media worker on loopback, a scripted caller, real audio both ways.

espeak-ng speaks the caller's lines, pocketsphinx hears them in the worker, the
policy books in the embedded EHR, espeak-ng speaks the answers back, and the
caller records them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from caller_ears import ReadBackEars
from local_acs import LOCAL_CALLER_NUMBER
from local_caller import CallReport, Scenario, load_scenario, place_call
from local_stack import local_stack
from receptionist_cli import _call_record

from reddytalk.clinics.config import clinic_to_yaml, parse_clinic_yaml
from reddytalk.composition import open_embedded_records
from reddytalk.dialogue import phrasing
from reddytalk.dialogue.spoken import say_date, say_time
from reddytalk.dialogue.understanding import normalize
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic
from reddytalk.scheduling.model import Clinic, EhrConnection
from reddytalk.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = ROOT / "scenarios"
pytestmark = pytest.mark.e2e


@dataclass(frozen=True)
class Call:
    """One finished call: the receptionist's record, the caller's report, its store."""

    record: dict[str, Any]
    report: CallReport
    data_dir: Path


async def _call(scenario: str | Scenario, phone_url: str, settings: Settings) -> Call:
    if isinstance(scenario, str):
        scenario = load_scenario(SCENARIOS / scenario)
    report = await place_call(scenario, url=phone_url)
    return Call(await _call_record(settings, report), report, settings.data_dir)


# A clinic an admin adds with scripts/clinic before the stack starts (clinics/example.yaml
# on the embedded EHR, with its own greeting), called on its second number: the hours,
# then a new patient books the first free sick visit of its new schedule.
NEW_CLINIC = "new-clinic (scripts/clinic add)"
NEW_CLINIC_GREETING = "Maple Grove Family Medicine, the virtual receptionist. How can I help?"


def _new_clinic() -> Clinic:
    return dataclasses.replace(
        parse_clinic_yaml((ROOT / "clinics" / "example.yaml").read_text()),
        ehr=EhrConnection(),
        greeting=NEW_CLINIC_GREETING,
    )


def _add_new_clinic(data_dir: Path) -> Scenario:
    """Add the clinic with the admin's one command; the call to place to it."""
    clinic = _new_clinic()
    path = data_dir / "maple.yaml"
    path.write_text(clinic_to_yaml(clinic))
    env = {"PATH": os.environ["PATH"], "REDDYTALK_DATA_DIR": str(data_dir)}
    done = subprocess.run([str(ROOT / "scripts" / "clinic"), "add", str(path)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr
    booking = load_scenario(SCENARIOS / "book-new-patient.yaml")
    hours = load_scenario(SCENARIOS / "opening-hours.yaml")
    return Scenario(name=NEW_CLINIC, dial=clinic.phone_numbers[1],
                    steps=(hours.steps[0], *booking.steps),
                    sample_rate_hz=clinic.stream_sample_rate_hz)  # fmt: skip


async def _sessions_ended(settings: Settings, calls: list[Call]) -> None:
    """Wait (bounded) until every call's session orchestration has recorded its end."""
    with open_embedded_records(settings) as records:
        store = records.store

        async def has_ended(call_id: str) -> bool:
            return any(e.action == "call.ended" for e in await store.audit_trail(call_id))

        async with asyncio.timeout(10):
            for call in calls:
                for _ in range(200):  # polled: the session writes from another task
                    if await has_ended(call.report.call_id):
                        break
                    await asyncio.sleep(0.05)


class _Recorder(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(f"{record.name} {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture(scope="module")
def log_lines() -> Iterator[list[str]]:
    """Every log message of the calls, as raised (redaction at record creation is off
    meanwhile: the test is that nothing logs PHI, not that redaction catches it)."""
    factory = logging.getLogRecordFactory()
    logging.setLogRecordFactory(logging.LogRecord)
    recorder = _Recorder()
    root, ours = logging.getLogger(), [logging.getLogger(n) for n in ("reddytalk", "media_worker")]
    saved = root.level, [logger.level for logger in ours]
    root.addHandler(recorder)
    root.setLevel(logging.INFO)
    for logger in ours:
        logger.setLevel(logging.DEBUG)
    yield recorder.messages
    logging.setLogRecordFactory(factory)
    root.removeHandler(recorder)
    root.setLevel(saved[0])
    for logger, level in zip(ours, saved[1], strict=True):
        logger.setLevel(level)


@pytest.fixture(scope="module")
def calls(
    tmp_path_factory: pytest.TempPathFactory, log_lines: list[str]
) -> dict[str, Call | BaseException]:
    """Every scenario, called at once (each call is real time; together ~1.5 min, not 5).

    The calls take the path a call takes in Azure: the local ACS's phone line, the
    Functions app (incoming_call, call_events, the tools API and the orchestrations
    on the local host) and the media worker, all sharing one store. The scenarios
    touch different patients and slots, so no call sees another's booking.
    """
    names = sorted(p.name for p in SCENARIOS.glob("*.yaml"))
    settings = Settings(data_dir=tmp_path_factory.mktemp("stack"), port=0)
    new_clinic = _add_new_clinic(settings.data_dir)

    async def all_calls() -> list[Call | BaseException]:
        async with local_stack(settings) as stack:
            calls = await asyncio.gather(
                *(_call(name, stack.phone_url, settings) for name in names),
                _call(new_clinic, stack.phone_url, settings),
                return_exceptions=True,
            )
            await _sessions_ended(settings, [c for c in calls if isinstance(c, Call)])
            return calls

    return dict(zip([*names, NEW_CLINIC], asyncio.run(all_calls()), strict=True))


def _finished(calls: dict[str, Call | BaseException], scenario: str) -> Call:
    call = calls[scenario]
    if isinstance(call, BaseException):
        raise call
    return call


def test_a_clinic_added_with_one_command_answers_its_first_call_and_books(
    calls: dict[str, Call | BaseException],
) -> None:
    call = _finished(calls, NEW_CLINIC)
    clinic = _new_clinic()
    said = [text for who, text in call.record["transcript"] if who == "receptionist"]
    assert said[0] == NEW_CLINIC_GREETING
    assert phrasing.say_hours(clinic) in said
    assert call.record["outcome"] == "booked"
    appointment = call.record["appointment"]
    assert appointment["appointment_type"] == "sick-visit"
    assert appointment["provider"] in {p.display_name for p in clinic.providers}
    day = dt.date.fromisoformat(appointment["date"])
    start = dt.time.fromisoformat(appointment["time"])
    hours = clinic.hours_on(day)
    assert hours is not None and hours.opens <= start < hours.closes


def test_every_scenario_file_is_called(calls: dict[str, Call | BaseException]) -> None:
    assert set(calls) >= {
        "book-existing-patient.yaml",
        "book-new-patient.yaml",
        "cancel.yaml",
        "opening-hours.yaml",
        "emergency.yaml",
        "barge-in.yaml",
        "leave-a-message.yaml",
    }
    for name in calls:
        _finished(calls, name)


def test_every_call_went_through_the_functions_app(
    calls: dict[str, Call | BaseException],
) -> None:
    """incoming_call answered it, call_events followed it, call_session recorded its end."""
    for name in calls:
        call = _finished(calls, name)
        with open_embedded_records(Settings(data_dir=call.data_dir)) as records:
            trail = asyncio.run(records.store.audit_trail(call.report.call_id))
        actions = [e.action for e in trail]
        assert actions[0] == "call.answered", (name, actions)
        assert actions[-1] == "call.ended", (name, actions)


def test_no_phi_in_the_logs_of_any_call(
    calls: dict[str, Call | BaseException], log_lines: list[str]
) -> None:
    assert log_lines, "the calls logged nothing at all: the recorder is not attached"
    finished = [_finished(calls, name) for name in calls]
    phi = {"Robert", "Taylor", "Sarah", "Johnson", "Linda", "Wilson", "1980", "1960", "1975"}
    phi |= {"5555550123", "nineteen eighty"}  # the caller's number, a date of birth as said
    for call in finished:
        phi |= {text for _, text in call.record["transcript"] if len(text) > 12}
        phi |= {turn.said for turn in call.report.turns if len(turn.said) > 12}
    patterns = [re.compile(rf"\b{re.escape(word)}\b", re.IGNORECASE) for word in phi]
    leaks = [(line, p.pattern) for line in log_lines for p in patterns if p.search(line)]
    assert not leaks


@pytest.mark.parametrize(
    ("scenario", "patient", "appointment_type", "asked_for"),
    [
        # "Next Tuesday morning"
        ("book-existing-patient.yaml", ("Robert", "Taylor"), "checkup", (1, dt.time(12))),
        # "As soon as possible"
        ("book-new-patient.yaml", ("Sarah", "Johnson"), "sick-visit", None),
    ],
)
def test_booking_call_books_the_slot_the_caller_heard_read_back(
    scenario: str,
    patient: tuple[str, str],
    appointment_type: str,
    asked_for: tuple[int, dt.time] | None,
    calls: dict[str, Call | BaseException],
) -> None:
    call = _finished(calls, scenario)
    record, report = call.record, call.report
    assert record["outcome"] == "booked"
    appointment = record["appointment"]
    assert appointment is not None
    assert appointment["appointment_type"] == appointment_type
    assert appointment["provider"] in {"Doctor Patel", "Doctor Chen", "Doctor Rivera"}
    start = dt.time.fromisoformat(appointment["time"])
    day = dt.date.fromisoformat(appointment["date"])
    if asked_for is not None:
        weekday, before = asked_for
        assert day.weekday() == weekday and start < before
    # What reached the caller as sound: decode every answer the caller recorded.
    clinic = demo_clinic()
    ears = ReadBackEars(clinic, today=dt.datetime.now(clinic.tz).date())
    heard = [ears.hear(turn.answer_pcm, sample_rate_hz=16_000) for turn in report.turns]
    read_backs = [r for r in heard if r is not None]
    assert len(read_backs) == 1, [turn.said for turn in report.turns]
    assert read_backs[0].time == normalize(say_time(start))
    assert read_backs[0].day == normalize(say_date(day))
    assert f"with {normalize(appointment['provider'])} on" in read_backs[0].words
    # ... and the receptionist's own record of the read-back agrees
    said = [text for speaker, text in record["transcript"] if speaker == "receptionist"]
    read_back = next(line for line in said if line.startswith("Let me confirm"))
    assert say_time(start) in read_back
    tools = [c["name"] for c in record["tool_calls"]]
    assert tools.count("book") == 1 and "verify_identity" in tools
    assert report.hung_up_by == "receptionist"
    with open_embedded_records(Settings(data_dir=call.data_dir)) as records:
        found = asyncio.run(records.ehr.get_patient(
            clinic_id=DEMO_CLINIC_ID, patient_id=appointment["patient_id"]))  # fmt: skip
        booked_for = None if found is None else (found.given_name, found.family_name)
    with sqlite3.connect(call.data_dir / "reddytalk.sqlite3") as db:
        slot = db.execute(
            "SELECT status FROM slots WHERE slot_id = (SELECT slot_id FROM appointments "
            "WHERE appointment_id = ?)",
            (appointment["appointment_id"],),
        ).fetchone()
    assert booked_for == patient
    assert slot == ("busy",)


@pytest.mark.parametrize(
    ("scenario", "outcome"),
    [
        ("emergency.yaml", "transfer:emergency"),
        ("opening-hours.yaml", "no_action"),
        ("cancel.yaml", "cancelled"),
        ("leave-a-message.yaml", "message_taken"),
    ],
)
def test_scenarios_end_as_expected(
    scenario: str, outcome: str, calls: dict[str, Call | BaseException]
) -> None:
    assert _finished(calls, scenario).record["outcome"] == outcome


def test_a_message_left_is_kept_for_staff_through_the_tools_api(
    calls: dict[str, Call | BaseException],
) -> None:
    call = _finished(calls, "leave-a-message.yaml")
    with open_embedded_records(Settings(data_dir=call.data_dir)) as records:
        kept = asyncio.run(records.store.list_messages(DEMO_CLINIC_ID))
        trail = asyncio.run(records.store.audit_trail(call.report.call_id))
    [message] = [m for m in kept if m.call_id == call.report.call_id]
    assert message.caller_name == "Michael Brown"
    assert message.patient_id is None
    # dictation is rough, but the gist reaches staff
    assert {"late", "appointment"} <= set(message.text.split())
    assert ("create", f"Message/{message.message_id}") in [(e.action, e.resource) for e in trail]


@pytest.mark.parametrize(
    ("scenario", "ending"),
    [
        ("book-existing-patient.yaml", " is booked."),
        ("cancel.yaml", " is cancelled."),
        ("book-new-patient.yaml", None),  # she said no
    ],
)
def test_a_text_confirmation_goes_out_after_a_yes_only(
    scenario: str, ending: str | None, calls: dict[str, Call | BaseException]
) -> None:
    call = _finished(calls, scenario)
    with open_embedded_records(Settings(data_dir=call.data_dir)) as records:
        outbox = asyncio.run(records.store.list_outbox(DEMO_CLINIC_ID))
    texts = [text for text in outbox if text.call_id == call.report.call_id]
    tools = [c["name"] for c in call.record["tool_calls"]]
    if ending is None:
        assert texts == [] and "send_confirmation" not in tools
        return
    [text] = texts
    assert text.to_number == LOCAL_CALLER_NUMBER  # the EHR has no phone for the demo patients
    assert text.text.startswith("Reddy Family Clinic: your appointment with Doctor ")
    assert text.text.endswith(ending)
    assert tools.count("send_confirmation") == 1


def test_barge_in_stops_the_greeting(calls: dict[str, Call | BaseException]) -> None:
    call = _finished(calls, "barge-in.yaml")
    record, report = call.record, call.report
    assert report.stop_audio_count >= 1
    greeting = record["transcript"][0]
    assert greeting[0] == "receptionist" and greeting[1].endswith("[interrupted]")
    assert any("We are open" in text for _, text in record["transcript"])
