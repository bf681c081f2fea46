"""End to end: the media worker on loopback, a scripted caller, real audio both ways.

espeak-ng speaks the caller's lines, pocketsphinx hears them in the worker, the
policy books in the embedded EHR, espeak-ng speaks the answers back, and the
caller records them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path

import pytest
from local_caller import load_scenario, place_call
from receptionist_cli import _call_record, _receptionist

from reddytalk.dialogue.spoken import say_time
from reddytalk.settings import Settings

SCENARIOS = Path(__file__).resolve().parents[2] / "scenarios"
pytestmark = pytest.mark.e2e


def _run(scenario: str, tmp_path: Path) -> tuple[dict, object]:
    settings = Settings(data_dir=tmp_path, port=0)

    async def call() -> tuple[dict, object]:
        async with _receptionist(settings) as url:
            report = await place_call(load_scenario(SCENARIOS / scenario), url=url)
            return await _call_record(settings, report), report

    return asyncio.run(call())


def test_booking_call_books_the_read_back_slot(tmp_path: Path) -> None:
    record, report = _run("book-existing-patient.yaml", tmp_path)
    assert record["outcome"] == "booked"
    appointment = record["appointment"]
    assert appointment is not None
    assert appointment["appointment_type"] == "checkup"
    assert appointment["provider"] in {"Doctor Patel", "Doctor Chen", "Doctor Rivera"}
    # the booked time is the one the receptionist read back and the caller confirmed
    said = [text for speaker, text in record["transcript"] if speaker == "receptionist"]
    read_back = next(line for line in said if line.startswith("Let me confirm"))
    start = dt.time.fromisoformat(appointment["time"])
    assert say_time(start) in read_back
    assert f"with {appointment['provider']}" in read_back
    booked_day = dt.date.fromisoformat(appointment["date"])
    assert booked_day.weekday() == 1  # "next Tuesday"
    assert start < dt.time(12, 0)  # "morning"
    tools = [c["name"] for c in record["tool_calls"]]
    assert tools.count("book") == 1 and "verify_identity" in tools
    assert report.hung_up_by == "receptionist"
    with sqlite3.connect(tmp_path / "reddytalk.sqlite3") as db:
        patient = db.execute(
            "SELECT given_name, family_name FROM patients WHERE patient_id = ?",
            (appointment["patient_id"],),
        ).fetchone()
        slot = db.execute(
            "SELECT status FROM slots WHERE slot_id = (SELECT slot_id FROM appointments "
            "WHERE appointment_id = ?)",
            (appointment["appointment_id"],),
        ).fetchone()
    assert patient == ("Robert", "Taylor")
    assert slot == ("busy",)


@pytest.mark.parametrize(
    ("scenario", "outcome"),
    [
        ("emergency.yaml", "transfer:emergency"),
        ("opening-hours.yaml", "no_action"),
        ("cancel.yaml", "cancelled"),
    ],
)
def test_scenarios_end_as_expected(scenario: str, outcome: str, tmp_path: Path) -> None:
    record, _ = _run(scenario, tmp_path)
    assert record["outcome"] == outcome


def test_barge_in_stops_the_greeting(tmp_path: Path) -> None:
    record, report = _run("barge-in.yaml", tmp_path)
    assert report.stop_audio_count >= 1
    greeting = record["transcript"][0]
    assert greeting[0] == "receptionist" and greeting[1].endswith("[interrupted]")
    assert any("We are open" in text for _, text in record["transcript"])
