"""Text confirmations: the words (clinic time, nothing private), the key, EHR phone numbers."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reddytalk.calls.confirmations import (
    as_e164,
    confirmation_key,
    confirmation_text,
)
from reddytalk.providers.seed import DEMO_PHONE_NUMBER, demo_clinic
from reddytalk.scheduling.model import Appointment
from reddytalk.workflows.booking import (
    BOOK_APPOINTMENT,
    CANCEL_APPOINTMENT,
    RESCHEDULE_APPOINTMENT,
)

CLINIC = demo_clinic()  # America/Chicago
VISIT = Appointment(
    appointment_id="appt-1",
    patient_id="pat-1",
    provider_id="dr-patel",
    appointment_type="checkup",
    slot_id="slot-1",
    start=dt.datetime(2026, 12, 1, 15, 30, tzinfo=dt.UTC),  # 9:30 in Chicago (CST)
)


@pytest.mark.parametrize(
    ("workflow", "text"),
    [
        (BOOK_APPOINTMENT, "Reddy Family Clinic: your appointment with Doctor Patel on"
                           " Tue, Dec 1 at 9:30 AM CST is booked."),
        (CANCEL_APPOINTMENT, "Reddy Family Clinic: your appointment with Doctor Patel on"
                             " Tue, Dec 1 at 9:30 AM CST is cancelled."),
        (RESCHEDULE_APPOINTMENT, "Reddy Family Clinic: your appointment is moved to"
                                 " Tue, Dec 1 at 9:30 AM CST with Doctor Patel."),
    ],
)  # fmt: skip
def test_the_text_gives_the_clinic_the_provider_and_the_clinics_time(
    workflow: str, text: str
) -> None:
    assert confirmation_text(workflow, VISIT, CLINIC) == text


def test_the_text_never_names_the_visit_type() -> None:
    for code in ("checkup", "sick-visit"):
        visit = dataclasses.replace(VISIT, appointment_type=code)
        said = confirmation_text(BOOK_APPOINTMENT, visit, CLINIC).lower()
        assert "check" not in said and "sick" not in said and "visit" not in said


@pytest.mark.parametrize(
    ("start", "when"),
    [
        (dt.datetime(2026, 7, 6, 17, 0, tzinfo=dt.UTC), "Mon, Jul 6 at 12:00 PM CDT"),
        (dt.datetime(2026, 12, 2, 5, 5, tzinfo=dt.UTC), "Tue, Dec 1 at 11:05 PM CST"),
        (dt.datetime(2026, 12, 1, 6, 0, tzinfo=dt.UTC), "Tue, Dec 1 at 12:00 AM CST"),
    ],
)
def test_times_are_the_clinics_local_time_with_its_zone(start: dt.datetime, when: str) -> None:
    text = confirmation_text(BOOK_APPOINTMENT, dataclasses.replace(VISIT, start=start), CLINIC)
    assert f" on {when} " in text


def test_a_provider_the_clinic_no_longer_lists_is_left_out() -> None:
    visit = dataclasses.replace(VISIT, provider_id="dr-gone")
    assert confirmation_text(BOOK_APPOINTMENT, visit, CLINIC) == (
        "Reddy Family Clinic: your appointment on Tue, Dec 1 at 9:30 AM CST is booked."
    )


def test_each_change_of_each_call_has_its_own_key() -> None:
    keys = {
        confirmation_key(call, workflow, appointment)
        for call in ("c1", "c2")
        for workflow in (BOOK_APPOINTMENT, CANCEL_APPOINTMENT)
        for appointment in ("a1", "a2")
    }
    assert len(keys) == 8


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("+15550100177", "+15550100177"),
        ("+1 (555) 010-0177", "+15550100177"),
        ("(555) 010-0177", "+15550100177"),
        ("555.010.0177", "+15550100177"),
        ("1-555-010-0177", "+15550100177"),
        ("+44 20 7946 0958", "+442079460958"),
        ("", None),
        ("010-0177", None),
        ("ask at the desk", None),
        ("+0 555 010 0177", None),
    ],
)
def test_ehr_phones_are_read_as_e164(raw: str, number: str | None) -> None:
    assert as_e164(raw, clinic_number=DEMO_PHONE_NUMBER) == number


def test_ten_digits_are_north_american_only_for_a_north_american_clinic() -> None:
    assert as_e164("020 7946 0958", clinic_number="+442079460000") is None


@given(st.text(max_size=30))
def test_whatever_the_ehr_holds_the_result_is_e164_or_nothing(raw: str) -> None:
    number = as_e164(raw, clinic_number=DEMO_PHONE_NUMBER)
    assert number is None or re.fullmatch(r"\+[1-9][0-9]{1,14}", number)


@given(st.from_regex(r"[2-9][0-9]{2}[2-9][0-9]{6}", fullmatch=True), st.sampled_from(
    ["{a}{b}{c}", "({a}) {b}-{c}", "{a}-{b}-{c}", "{a}.{b}.{c}", "+1 {a} {b} {c}", "1{a}{b}{c}"]
))  # fmt: skip
def test_a_north_american_number_in_any_usual_spelling(digits: str, spelling: str) -> None:
    raw = spelling.format(a=digits[:3], b=digits[3:6], c=digits[6:])
    assert as_e164(raw, clinic_number=DEMO_PHONE_NUMBER) == f"+1{digits}"
