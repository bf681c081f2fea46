"""Clinic files: what parses, every problem named by its field, and the way back to YAML."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reddytalk.clinics import ClinicConfigError, clinic_to_yaml, parse_clinic_yaml
from reddytalk.providers.seed import demo_clinic
from reddytalk.scheduling.model import (
    AFTER_HOURS_ACTIONS,
    EHR_KINDS,
    AfterHours,
    AppointmentType,
    Clinic,
    EhrConnection,
    Holiday,
    OpeningHours,
    Provider,
)

EXAMPLE = Path(__file__).resolve().parents[2] / "clinics" / "example.yaml"
KEYS = [
    "id",
    "name",
    "phone_numbers",
    "address",
    "time_zone",
    "hours",
    "holidays",
    "providers",
    "appointment_types",
    "slot_minutes",
    "stream_sample_rate_hz",
    "staff_transfer_number",
    "after_hours",
    "greeting",
    "voice",
    "languages",
    "ehr",
    "admins",
]
ADMIN = "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0"
GROUP = "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"
MISSING = object()  # a mutation that removes the key


def _document() -> dict[str, Any]:
    """A valid clinic file that sets every key."""
    return {
        "id": "reddy-family-clinic",
        "name": "Reddy Family Clinic",
        "phone_numbers": ["+15550100200", "+15550100201"],
        "address": "12 Main Street, Springfield",
        "time_zone": "America/Chicago",
        "hours": {"monday": "08:00-17:00", "saturday": "09:00-12:00"},
        "holidays": [
            {"date": "2026-12-25", "name": "Christmas Day"},
            {"date": "2027-01-01", "name": "New Year's Day"},
        ],
        "providers": [
            {"id": "dr-patel", "name": "Dr. Patel", "family_name": "Patel"},
            {"id": "dr-chen", "name": "Dr. Chen", "family_name": "Chen"},
        ],
        "appointment_types": [
            {
                "code": "checkup",
                "name": "checkup",
                "duration_min": 30,
                "spoken_names": ["check up", "physical"],
            },
            {"code": "sick-visit", "name": "sick visit", "duration_min": 20},
        ],
        "slot_minutes": 15,
        "stream_sample_rate_hz": 24000,
        "staff_transfer_number": "+15550100299",
        "after_hours": {"action": "transfer", "on_call_number": "+15550100298"},
        "greeting": "Thank you for calling Reddy Family Clinic. How can I help you today?",
        "voice": "21m00Tcm4TlvDq8ikWAM",
        "languages": ["en-US", "es-US"],
        "ehr": {
            "kind": "fhir",
            "base_url": "https://fhir.example.org/r4",
            "credentials_secret": "clinic-ehr-secret",
        },
        "admins": [ADMIN, GROUP],
    }


def _parse(document: dict[str, Any]) -> Clinic:
    return parse_clinic_yaml(yaml.safe_dump(document, sort_keys=False))


def _problems(text: str) -> list[tuple[str, str]]:
    with pytest.raises(ClinicConfigError) as error:
        parse_clinic_yaml(text)
    return error.value.problems


def _set(document: dict[str, Any], path: str, value: object) -> None:
    """Sets (or, with MISSING, removes) the value at a problem's path."""
    parts: list[str | int] = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", path)]
    parent: Any = document
    for part in parts[:-1]:
        parent = parent[part]
    if value is MISSING:
        del parent[parts[-1]]
    elif isinstance(parts[-1], int) and parts[-1] == len(parent):
        parent.append(value)
    else:
        parent[parts[-1]] = value


# (path, bad value, what the message says); each leaves the rest of the file valid.
MUTATIONS = [
    ("id", "Reddy-Clinic", "is not valid; expected 2-63 lowercase letters"),
    ("id", "r", '"r" is not valid'),
    ("id", "-reddy", "is not valid"),
    ("id", MISSING, "is required; expected 2-63 lowercase"),
    ("name", "", "is blank"),
    ("name", 42, "42 is not text; expected the clinic's name"),
    ("name", None, "is empty"),
    ("phone_numbers", [], "is empty; expected E.164 numbers"),
    ("phone_numbers", "+15550100200", '"+15550100200" is not a list'),
    ("phone_numbers[0]", "5550100200", "is not a phone number (E.164, like +15550100200)"),
    ("phone_numbers[0]", "+1555", "is not a possible phone number (E.164"),
    ("phone_numbers[0]", "+1 555-010-0200", 'not written in E.164; expected "+15550100200"'),
    ("phone_numbers[0]", 15550100200, "15550100200 is not text"),
    ("phone_numbers[1]", "+15550100200", '"+15550100200" is listed twice'),
    ("address", "12 Main Street\nSpringfield", "has a line break or tab"),
    ("address", "x" * 201, "is 201 characters long; expected at most 200"),
    ("time_zone", "America/Springfield", "is not a known time zone; expected an IANA name"),
    ("time_zone", "../etc/passwd", "is not a known time zone"),
    ("hours", {}, "no day is open"),
    ("hours", "08:00-17:00", "is not a mapping of fields"),
    ("hours.monday", "17:00-08:00", "opens 17:00 is not before closes 08:00"),
    ("hours.monday", "08:00-08:00", "opens 08:00 is not before closes 08:00"),
    ("hours.monday", "8am-5pm", 'is not a range of hours; expected "HH:MM-HH:MM"'),
    ("hours.monday", "08:00-24:00", "has a time past 23:59"),
    ("hours.monday", 480, "480 is not text"),
    ("hours.funday", "08:00-17:00", "unknown field (did you mean sunday?); expected one of: "),
    ("holidays", {"date": "2026-12-25"}, "is not a list"),
    ("holidays[0].date", "2026-13-01", '"2026-13-01" is not a date; expected a date YYYY-MM-DD'),
    ("holidays[0].date", "25/12/2026", "is not a date"),
    ("holidays[0].date", MISSING, "is required; expected YYYY-MM-DD"),
    ("holidays[1].date", "2026-12-25", "2026-12-25 is listed twice"),
    ("holidays[0].name", " ", "is blank"),
    ("holidays[0].day", "2026-12-24", "unknown field; expected one of: date, name"),
    ("providers", [], "is empty"),
    ("providers[0]", "dr-patel", "is not a mapping of fields"),
    ("providers[1].id", "dr-patel", '"dr-patel" is the id of an earlier provider'),
    ("providers[0].id", "dr patel", "is not valid; expected 1-64 letters, digits"),
    ("providers[0].name", MISSING, "is required; expected what the receptionist calls them"),
    ("providers[0].family_name", "x" * 101, "is 101 characters long; expected at most 100"),
    ("providers[0].title", "Dr.", "unknown field; expected one of: id, name, family_name"),
    ("appointment_types", [], "is empty"),
    ("appointment_types[0].code", "check up", "is not valid"),
    ("appointment_types[1].code", "checkup", '"checkup" is the code of an earlier type'),
    ("appointment_types[0].duration_min", 4, "4 is out of range; expected minutes, 5 to 480"),
    ("appointment_types[0].duration_min", 481, "481 is out of range"),
    ("appointment_types[0].duration_min", "30", '"30" is not a whole number'),
    ("appointment_types[0].duration_min", 30.5, "30.5 is not a whole number"),
    ("appointment_types[1].spoken_names", ["Check-Up"], '"Check-Up" also names another type'),
    ("appointment_types[0].spoken_names[0]", "", "is blank"),
    ("appointment_types[0].spoken_names", "check up", "is not a list"),
    ("slot_minutes", 0, "0 is out of range; expected 5 to 240"),
    ("slot_minutes", 241, "241 is out of range"),
    ("slot_minutes", True, "true is not a whole number"),
    ("stream_sample_rate_hz", 8000, "8000 is not one of the choices; expected 16000 or 24000"),
    ("staff_transfer_number", "+15550100200", "is one of the clinic's phone_numbers"),
    ("staff_transfer_number", "555-0100", "is not a phone number"),
    ("after_hours", "transfer", '"transfer" is not a mapping of fields'),
    ("after_hours.action", "voicemail", "is not one of the choices; expected take_message or"),
    ("after_hours.on_call_number", MISSING, "is required when action is transfer"),
    ("after_hours.on_call_number", "+1555", "is not a possible phone number"),
    ("after_hours.on_call_number", "+15550100201", "is one of the clinic's phone_numbers"),
    ("after_hours.pager", "+15550100297", "unknown field; expected one of: action, on_call_"),
    ("greeting", "x" * 301, "is 301 characters long; expected at most 300"),
    ("greeting", "Hello.\nHow can I help?", "has a line break or tab"),
    ("voice", "my voice!", "is not valid; expected an ElevenLabs voice id"),
    ("languages", [], "is empty"),
    ("languages", ["en-US", "es-US", "fr-CA", "de-DE", "it-IT"], "has 5 items, too many"),
    ("languages[0]", "english", '"english" is not valid; expected 1 to 4 language-REGION'),
    ("languages[0]", "en", "is not valid"),
    ("languages[0]", "en-us", "is not valid"),
    ("languages[1]", "en-US", '"en-US" is listed twice'),
    ("ehr.kind", "epic", '"epic" is not one of the choices; expected embedded or fhir'),
    ("ehr.base_url", "http://fhir.example.org/r4", "is not an https URL; expected an https"),
    ("ehr.base_url", "https://me:pw@fhir.example.org/r4", "holds a user name or password"),
    ("ehr.base_url", "https://fhir.example.org/r4?key=1", "has a query or fragment"),
    ("ehr.base_url", MISSING, "is required when kind is fhir; expected an https URL"),
    ("ehr.credentials_secret", "clinic_ehr secret", "is not valid; expected a Key Vault"),
    ("ehr.credentials_secret", "x" * 128, "is not valid"),
    ("ehr.credentials_secret", MISSING, "is required when kind is fhir"),
    (
        "ehr.client_secret",
        "s3cr3t",
        "unknown field (did you mean credentials_secret?); expected one of: kind,",
    ),
    ("admins", ADMIN, "is not a list; expected Entra ID object ids (GUIDs)"),
    (
        "admins[0]",
        "alice@example.org",
        '"alice@example.org" is not an Entra ID object id; expected',
    ),
    ("admins[0]", ADMIN[:-1], "is not an Entra ID object id; expected a GUID"),
    ("admins[0]", 42, "42 is not text"),
    ("admins[1]", ADMIN.upper(), "is listed twice"),
    ("colour", "red", "unknown field; expected one of: id, name, phone_numbers,"),
    ("provider", [], "unknown field (did you mean providers?)"),
]


@pytest.mark.parametrize(("path", "value", "says"), MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_a_bad_value_is_reported_at_its_field(path: str, value: object, says: str) -> None:
    document = _document()
    _set(document, path, value)
    problems = _problems(yaml.safe_dump(document, sort_keys=False))
    assert len(problems) == 1, problems
    assert problems[0][0] == path
    assert says in problems[0][1]


def test_every_key_has_a_mutation() -> None:
    mutated = {re.split(r"[.\[]", path)[0] for path, _, _ in MUTATIONS}
    assert set(KEYS) <= mutated


def test_a_valid_file_parses_to_the_clinic() -> None:
    clinic = _parse(_document())
    assert clinic == Clinic(
        clinic_id="reddy-family-clinic",
        name="Reddy Family Clinic",
        phone_number="+15550100200",
        other_phone_numbers=("+15550100201",),
        address="12 Main Street, Springfield",
        time_zone="America/Chicago",
        hours=(
            OpeningHours(0, dt.time(8, 0), dt.time(17, 0)),
            OpeningHours(5, dt.time(9, 0), dt.time(12, 0)),
        ),
        holidays=(
            Holiday(dt.date(2026, 12, 25), "Christmas Day"),
            Holiday(dt.date(2027, 1, 1), "New Year's Day"),
        ),
        providers=(
            Provider("dr-patel", "Dr. Patel", "Patel"),
            Provider("dr-chen", "Dr. Chen", "Chen"),
        ),
        appointment_types=(
            AppointmentType("checkup", "checkup", 30, ("check up", "physical")),
            AppointmentType("sick-visit", "sick visit", 20),
        ),
        slot_minutes=15,
        stream_sample_rate_hz=24000,
        staff_phone_number="+15550100299",
        after_hours=AfterHours("transfer", "+15550100298"),
        greeting="Thank you for calling Reddy Family Clinic. How can I help you today?",
        voice_id="21m00Tcm4TlvDq8ikWAM",
        languages=("en-US", "es-US"),
        ehr=EhrConnection("fhir", "https://fhir.example.org/r4", "clinic-ehr-secret"),
        admins=(ADMIN, GROUP),
    )
    assert parse_clinic_yaml(clinic_to_yaml(clinic)) == clinic


def test_admins_are_read_in_lowercase() -> None:
    document = _document()
    document["admins"] = [ADMIN.upper()]
    assert _parse(document).admins == (ADMIN,)


def test_optional_keys_left_out_or_empty_take_the_domain_defaults() -> None:
    document = {key: _document()[key] for key in KEYS[:6] + ["providers", "appointment_types"]}
    minimal = _parse(document)
    assert minimal == Clinic(
        clinic_id="reddy-family-clinic",
        name="Reddy Family Clinic",
        phone_number="+15550100200",
        other_phone_numbers=("+15550100201",),
        address="12 Main Street, Springfield",
        time_zone="America/Chicago",
        hours=minimal.hours,
        providers=minimal.providers,
        appointment_types=minimal.appointment_types,
    )
    empty = dict(document, **{key: None for key in KEYS if key not in document})
    empty["hours"] = {"monday": "08:00-17:00", "tuesday": None, "sunday": "closed"}
    assert _parse(empty) == dataclasses.replace(minimal, hours=minimal.hours[:1])
    assert "slot_minutes" not in clinic_to_yaml(minimal)


def test_several_problems_are_all_reported_one_per_line() -> None:
    document = _document()
    _set(document, "phone_numbers[1]", "+1555")
    _set(document, "hours.monday", "17:00-08:00")
    _set(document, "providers[1].id", "dr-patel")
    _set(document, "ehr.kind", "epic")
    _set(document, "colour", "red")
    with pytest.raises(ClinicConfigError) as error:
        _parse(document)
    assert [path for path, _ in error.value.problems] == [
        "phone_numbers[1]",
        "hours.monday",
        "providers[1].id",
        "ehr.kind",
        "colour",
    ]
    lines = str(error.value).splitlines()
    assert lines[0] == (
        'phone_numbers[1]: "+1555" is not a possible phone number (E.164, like +15550100200)'
    )
    assert lines[1] == "hours.monday: opens 17:00 is not before closes 08:00"
    assert len(lines) == 5
    assert isinstance(error.value, ValueError)


def test_transfer_settings_must_match_their_action() -> None:
    document = _document()
    document["after_hours"]["action"] = "take_message"
    document["ehr"] = {"kind": "embedded", "base_url": "https://fhir.example.org/r4"}
    assert _problems(yaml.safe_dump(document)) == [
        (
            "after_hours.on_call_number",
            "is only used when action is transfer; remove it or set the action",
        ),
        ("ehr.base_url", "is only used when kind is fhir; remove it or set the kind"),
    ]


@pytest.mark.parametrize("action", AFTER_HOURS_ACTIONS)
@pytest.mark.parametrize("kind", EHR_KINDS)
def test_every_action_and_ehr_kind_of_the_domain_is_accepted(action: str, kind: str) -> None:
    document = _document()
    if action != "transfer":
        document["after_hours"] = {"action": action}
    if kind != "fhir":
        document["ehr"] = {"kind": kind}
    clinic = _parse(document)
    assert (clinic.after_hours.action, clinic.ehr.kind) == (action, kind)


def test_unquoted_times_numbers_and_words_stay_text() -> None:
    # PyYAML's YAML 1.1 reads 8:00 and 17:00 as base-60 integers (08:00 escapes only for
    # its leading zero), drops the + of a phone number and reads no as false.
    assert yaml.safe_load("a: 8:00\nb: 17:00\nn: +15550100200\nw: no") == {
        "a": 480,
        "b": 1020,
        "n": 15550100200,
        "w": False,
    }
    text = yaml.safe_dump(_document(), sort_keys=False)
    text = text.replace("monday: 08:00-17:00", "monday: 8:00-17:00\n  tuesday: 07:30-12:00")
    text = text.replace("'+15550100200'", "+15550100200")
    text = text.replace("family_name: Chen", "family_name: No")
    assert "- +15550100200\n" in text and "monday: 8:00-17:00\n" in text
    clinic = parse_clinic_yaml(text)
    assert clinic.hours[:2] == (
        OpeningHours(0, dt.time(8, 0), dt.time(17, 0)),
        OpeningHours(1, dt.time(7, 30), dt.time(12, 0)),
    )
    assert clinic.phone_number == "+15550100200"
    assert clinic.providers[1].family_name == "No"
    [(path, message)] = _problems(text.replace("monday: 8:00-17:00", "monday: 17:00"))
    assert (path, message.split(";")[0]) == ("hours.monday", '"17:00" is not a range of hours')


def test_dates_may_be_text_or_dates_but_not_times() -> None:
    text = yaml.safe_dump(_document(), sort_keys=False)
    dated = text.replace("date: '2026-12-25'", "date: !!timestamp 2026-12-25")
    assert "!!timestamp" in dated
    assert parse_clinic_yaml(dated).holidays[0].day == dt.date(2026, 12, 25)
    timed = text.replace("date: '2026-12-25'", "date: !!timestamp 2026-12-25 10:00:00")
    assert _problems(timed) == [
        (
            "holidays[0].date",
            "2026-12-25T10:00:00 has a time of day; expected a date YYYY-MM-DD, like 2026-12-25",
        )
    ]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("id: [reddy\nname: x\n", "line 2, column 5: "),
        ("id: reddy\n\tname: x\n", "line 2, column 1: found character '\\t'"),
        ("id: reddy\nname: a: b\n", "line 2, column 8: mapping values are not allowed here"),
        ("id: reddy\nid: other\n", "line 2, column 1: id appears twice in this mapping"),
        ("hours:\n  monday: a\n  monday: b\n", "line 3, column 3: monday appears twice"),
        ("id: !!int reddy\n", "line 1, column 5: cannot read this int value"),
        ("id: !!timestamp 2026-02-30\n", "line 1, column 5: cannot read this timestamp value"),
        (
            "id: !!python/object:os.system x\n",
            "line 1, column 5: could not determine a constructor",
        ),
        ("id: a\n---\nid: b\n", "line 2, column 1: "),
    ],
)
def test_a_file_that_is_not_yaml_is_reported_with_its_line(text: str, says: str) -> None:
    problems = _problems(text)
    assert len(problems) == 1 and problems[0][0] == ""
    assert problems[0][1].startswith(says), problems


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("", "the file is empty; expected a mapping of clinic fields"),
        ("# nothing yet\n", "the file is empty"),
        ("- id: reddy\n", "the file holds a list, not a mapping; expected a mapping of clinic"),
        ("reddy-family-clinic\n", 'the file holds "reddy-family-clinic", not a mapping'),
    ],
)
def test_a_document_that_is_not_a_mapping_is_reported(text: str, says: str) -> None:
    [(path, message)] = _problems(text)
    assert path == ""
    assert message.startswith(says)


def test_a_key_that_is_not_text_is_an_unknown_field() -> None:
    document: dict[Any, Any] = _document()
    document[7] = "x"
    [(path, message)] = _problems(yaml.safe_dump(document, sort_keys=False))
    assert (path, message.split(";")[0]) == ("7", "unknown field")


def test_the_demo_clinic_round_trips() -> None:
    clinic = demo_clinic()
    text = clinic_to_yaml(clinic)
    assert parse_clinic_yaml(text) == clinic
    assert '  monday: "08:00-17:00"\n' in text
    assert '  - "+15550100200"\n' in text
    assert "staff_transfer_number" in text and "ehr" not in text


def test_the_example_file_parses_and_sets_every_key() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    clinic = parse_clinic_yaml(text)
    assert list(yaml.safe_load(text)) == KEYS
    assert parse_clinic_yaml(clinic_to_yaml(clinic)) == clinic
    # Every optional key away from its default, so the example shows each in use.
    defaults = Clinic("", "", "", "", "UTC", (), (), ())
    for field in dataclasses.fields(Clinic):
        if field.name not in {"clinic_id", "name", "phone_number", "address", "time_zone"}:
            assert getattr(clinic, field.name) != getattr(defaults, field.name), field.name
    numbers = [*clinic.phone_numbers, clinic.staff_phone_number, clinic.after_hours.on_call_number]
    assert all(re.fullmatch(r"\+15550100\d{3}", str(n)) for n in numbers), numbers
    assert set(re.findall(r"\+\d+", text)) == set(numbers)


def test_clinic_to_yaml_refuses_a_clinic_its_file_could_not_hold() -> None:
    clinic = demo_clinic()
    monday = OpeningHours(0, dt.time(13, 0), dt.time(17, 0))
    with pytest.raises(ClinicConfigError) as error:
        clinic_to_yaml(dataclasses.replace(clinic, hours=(*clinic.hours, monday)))
    assert error.value.problems == [
        ("hours.monday", "has two opening hours; expected one range a day")
    ]
    with pytest.raises(ClinicConfigError) as error:
        clinic_to_yaml(dataclasses.replace(clinic, staff_phone_number="555-0199"))
    assert error.value.problems[0][0] == "staff_transfer_number"


# --- any valid clinic round-trips ------------------------------------------------------

_text = st.text(
    st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1, max_size=40
).filter(str.strip)
_numbers = st.lists(
    st.builds("+1{}55501{:02d}".format, st.integers(200, 999), st.integers(0, 99)),
    min_size=3,
    max_size=6,
    unique=True,
)
_item_id = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,12}", fullmatch=True)


@st.composite
def _opening_hours(draw: st.DrawFn) -> tuple[OpeningHours, ...]:
    days = draw(st.lists(st.integers(0, 6), min_size=1, max_size=7, unique=True))
    hours = []
    for day in sorted(days):
        opens, closes = sorted(
            draw(st.lists(st.integers(0, 1439), min_size=2, max_size=2, unique=True))
        )
        hours.append(OpeningHours(day, dt.time(*divmod(opens, 60)), dt.time(*divmod(closes, 60))))
    return tuple(hours)


@st.composite
def _appointment_types(draw: st.DrawFn) -> tuple[AppointmentType, ...]:
    codes = draw(st.lists(_item_id, min_size=1, max_size=4, unique=True))
    spoken = draw(
        st.lists(
            _text, max_size=6, unique_by=lambda s: " ".join(s.lower().replace("-", " ").split())
        )
    )
    return tuple(
        AppointmentType(
            code, draw(_text), draw(st.integers(5, 480)), tuple(spoken[i :: len(codes)])
        )
        for i, code in enumerate(codes)
    )


@st.composite
def _clinics(draw: st.DrawFn) -> Clinic:
    numbers = draw(_numbers)
    clinic_numbers = numbers[: draw(st.integers(1, len(numbers) - 2))]
    transfer = draw(st.booleans())
    fhir = draw(st.booleans())
    return Clinic(
        clinic_id=draw(st.from_regex(r"[a-z0-9][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True)),
        name=draw(_text),
        phone_number=clinic_numbers[0],
        other_phone_numbers=tuple(clinic_numbers[1:]),
        address=draw(_text),
        time_zone=draw(
            st.sampled_from(["America/Chicago", "America/Denver", "Europe/Paris", "UTC"])
        ),
        hours=draw(_opening_hours()),
        holidays=tuple(
            Holiday(day, draw(st.just("") | _text))
            for day in draw(st.lists(st.dates(), max_size=3, unique=True))
        ),
        providers=tuple(
            Provider(pid, draw(_text), draw(_text))
            for pid in draw(st.lists(_item_id, min_size=1, max_size=3, unique=True))
        ),
        appointment_types=draw(_appointment_types()),
        slot_minutes=draw(st.integers(5, 240)),
        stream_sample_rate_hz=draw(st.sampled_from([16000, 24000])),
        staff_phone_number=draw(st.none() | st.just(numbers[-1])),
        languages=tuple(
            draw(
                st.lists(
                    st.sampled_from(["en-US", "es-US", "fr-CA", "zh-Hans-CN"]),
                    min_size=1,
                    max_size=4,
                    unique=True,
                )
            )
        ),
        voice_id=draw(st.none() | st.from_regex(r"[A-Za-z0-9]{1,20}", fullmatch=True)),
        greeting=draw(st.none() | _text),
        after_hours=AfterHours("transfer", numbers[-2]) if transfer else AfterHours(),
        ehr=EhrConnection(
            "fhir",
            "https://fhir.example.org/r4",
            draw(st.from_regex(r"[0-9A-Za-z-]{1,20}", fullmatch=True)),
        )
        if fhir
        else EhrConnection(),
        admins=tuple(draw(st.lists(st.uuids().map(str), max_size=3, unique=True))),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_clinics())
def test_any_valid_clinic_round_trips(clinic: Clinic) -> None:
    assert parse_clinic_yaml(clinic_to_yaml(clinic)) == clinic


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(list("ab:-[]{}'\"!&*#|>\n\t 0123456789.+,%@")), max_size=60))
def test_any_text_gives_a_clinic_or_a_clinic_config_error(text: str) -> None:
    try:
        parse_clinic_yaml(text)
    except ClinicConfigError as error:
        assert error.problems and all(message for _, message in error.problems)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080/fhir/R4", "http://localhost/fhir"])
def test_a_fhir_server_on_this_machine_may_be_plain_http(url: str) -> None:
    text = EXAMPLE.read_text().replace("https://fhir.maplegrove.example.org/r4", url)
    assert parse_clinic_yaml(text).ehr.fhir_base_url == url
