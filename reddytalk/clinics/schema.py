"""The clinic file's schema: pydantic models whose field names are the YAML keys.

Each field's ``description`` is what it expects, in words for a clinic's admin;
:mod:`reddytalk.clinics.config` adds it to pydantic's type and range errors. Checks of
our own raise ValueError with a message that says what is wrong and what is expected.

Checks across items (unique ids, each phone number once, a transfer number that is not
one of the clinic's own) keep what they have seen in the validation context of
:func:`validate_document`. So each duplicate is reported at its own path, together
with whatever else is wrong: a model-level validator would only run once every field
of its model were valid. They rely on pydantic validating a model's fields in the
order they are declared, and each item once.

An empty optional key (``greeting:`` with nothing after it) means its default.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Hashable
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

from reddytalk.scheduling.model import Clinic, OpeningHours

__all__ = ["DEFAULTS", "WEEKDAYS", "ClinicDocument", "show", "validate_document"]

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
"""The ``hours`` keys, in ``OpeningHours.weekday`` order (0 = Monday)."""

DEFAULTS = Clinic("", "", "", "", "UTC", (), (), ())
"""A clinic with nothing set: the domain's defaults, which the optional keys take."""

_E164 = "(E.164, like +15550100200)"
_HOURS = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_GUID = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
# Control characters and the line breaks of YAML and Unicode.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_T = TypeVar("_T", bound=Hashable)


def show(value: object) -> str:
    """``value`` as an admin wrote it: text quoted (and cut short), YAML's words."""
    if isinstance(value, str):
        return json.dumps(value if len(value) <= 40 else value[:37] + "...", ensure_ascii=False)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, dt.date):
        return value.isoformat()
    kinds = {type(None): "an empty value", list: "a list", dict: "a mapping"}
    return kinds.get(type(value), str(value))


# --- checks of one value ------------------------------------------------------------


def _one_line(max_chars: int) -> Callable[[str], str]:
    def check(text: str) -> str:
        if not text.strip():
            raise ValueError("is blank; expected some text")
        if _CONTROL.search(text):
            raise ValueError(f"{show(text)} has a line break or tab; expected one line of text")
        if len(text) > max_chars:
            raise ValueError(f"is {len(text)} characters long; expected at most {max_chars}")
        return text

    return check


def _phone(text: str) -> str:
    # Possible, not valid: is_valid_number checks that the number is assigned, and the
    # fictional 555-01xx numbers of the demo clinic and the tests are reserved, never
    # assigned, so it rejects +15550100200. A possible number has a country code and a
    # length that country's plan allows, which catches typos.
    try:
        number = phonenumbers.parse(text, None)
    except phonenumbers.NumberParseException:
        raise ValueError(f"{show(text)} is not a phone number {_E164}") from None
    if not phonenumbers.is_possible_number(number):
        raise ValueError(f"{show(text)} is not a possible phone number {_E164}")
    canonical = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    if canonical != text:
        raise ValueError(f"{show(text)} is not written in E.164; expected {show(canonical)}")
    return text


def _time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{show(name)} is not a known time zone; expected an IANA name, like America/Chicago"
        ) from None
    return name


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def _https_url(url: str) -> str:
    expected = (
        "expected an https URL, like https://fhir.example.org/r4 (plain http only to this "
        "machine: 127.0.0.1 or localhost)"
    )
    try:
        parts = urlsplit(url)
        has_login = parts.username is not None or parts.password is not None
    except ValueError:
        raise ValueError(f"{show(url)} is not a URL; {expected}") from None
    # Plain http only to this machine (a FHIR server a developer runs locally): PHI
    # never crosses a network unencrypted.
    local = parts.scheme == "http" and parts.hostname in _LOOPBACK_HOSTS
    if (parts.scheme != "https" and not local) or not parts.hostname or " " in url:
        raise ValueError(f"{show(url)} is not an https URL; {expected}")
    if has_login:
        # The client secret lives in Key Vault (credentials_secret), never in this file.
        raise ValueError(f"{show(url)} holds a user name or password; {expected}")
    if parts.query or parts.fragment:
        raise ValueError(f"{show(url)} has a query or fragment; {expected}")
    return url


def _day_hours(value: object) -> tuple[dt.time, dt.time] | None:
    expected = 'expected "HH:MM-HH:MM", like "08:00-17:00", or closed'
    if value is None or value == "closed":
        return None
    if not isinstance(value, str):
        raise ValueError(f"{show(value)} is not text; {expected}")
    match = _HOURS.fullmatch(value)
    if match is None:
        raise ValueError(f"{show(value)} is not a range of hours; {expected}")
    oh, om, ch, cm = (int(group) for group in match.groups())
    if oh > 23 or om > 59 or ch > 23 or cm > 59:
        raise ValueError(f"{show(value)} has a time past 23:59; {expected}")
    opens, closes = dt.time(oh, om), dt.time(ch, cm)
    if opens >= closes:
        raise ValueError(f"opens {opens:%H:%M} is not before closes {closes:%H:%M}")
    return opens, closes


def _date(value: object) -> object:
    # The clinic loader gives text; a date object comes from an explicit !!timestamp
    # tag. A datetime is a date too, but a holiday has no time of day.
    expected = "expected a date YYYY-MM-DD, like 2026-12-25"
    if isinstance(value, dt.datetime):
        raise ValueError(f"{value.isoformat()} has a time of day; {expected}")
    if isinstance(value, dt.date):
        return value
    try:
        if not isinstance(value, str) or not _DATE.fullmatch(value):
            raise ValueError
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{show(value)} is not a date; {expected}") from None


def _object_id(text: str) -> str:
    # Entra ID object ids are GUIDs; the token's oid and groups claims are lowercase.
    # Lowercase here too, so that a match never depends on how the admin typed it.
    if not _GUID.fullmatch(text):
        raise ValueError(
            f"{show(text)} is not an Entra ID object id; expected a GUID, like "
            "0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0 (a user's or a group's Object ID)"
        )
    return text.lower()


# --- checks across items, with what validate_document's context has seen --------------


def _seen(info: ValidationInfo, group: str) -> set[Any]:
    if not isinstance(info.context, dict) or "seen" not in info.context:
        raise TypeError("validate clinic documents with validate_document()")
    seen: dict[str, set[Any]] = info.context["seen"]
    return seen.setdefault(group, set())


def _unique(group: str, taken: str) -> Callable[[_T, ValidationInfo], _T]:
    def check(value: _T, info: ValidationInfo) -> _T:
        seen = _seen(info, group)
        if value in seen:
            raise ValueError(f"{show(value)} {taken}; expected each once")
        seen.add(value)
        return value

    return check


def _transfer_number(text: str | None, info: ValidationInfo) -> str | None:
    if text is not None and _phone(text) in _seen(info, "clinic number"):
        raise ValueError(
            f"{show(text)} is one of the clinic's phone_numbers, so a transfer would ring the "
            "receptionist again; expected another number"
        )
    return text


def _spoken_names(names: list[str], info: ValidationInfo) -> list[str]:
    # The receptionist matches words to the first type that has them (lowercased,
    # hyphens as spaces), so a name under two types would always pick the same one.
    # Repeats within one type are harmless (the demo's "checkup" and "check up").
    keys = {" ".join(name.lower().replace("-", " ").split()): name for name in names}
    seen = _seen(info, "spoken name")
    shared = [show(name) for key, name in keys.items() if key in seen]
    seen.update(keys)
    if shared:
        raise ValueError(f"{', '.join(shared)} also names another type; expected each once")
    return names


# --- the models -----------------------------------------------------------------------

_Line = Annotated[str, AfterValidator(_one_line(100))]
# Provider ids and visit codes may be an EHR's identifiers, which allow capitals and dots.
_ITEM_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
_ITEM_ID_RULE = "1-64 letters, digits, dots, underscores and hyphens"
# Key Vault's secret names, as reddytalk.providers.secrets.env checks them.
_SECRET_NAME = r"^[0-9A-Za-z-]{1,127}$"
# Locales (language and region, maybe script): Azure Speech recognizes en-US, not en.
_LOCALE = r"^[a-z]{2,3}(?:-[A-Z][a-z]{3})?-(?:[A-Z]{2}|[0-9]{3})$"
_Day = Annotated[
    tuple[dt.time, dt.time] | None,
    BeforeValidator(_day_hours),
    Field(default=None, description='"HH:MM-HH:MM", like "08:00-17:00", or closed'),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _empty_means_default(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        optional = {name for name, info in cls.model_fields.items() if not info.is_required()}
        return {k: v for k, v in data.items() if not (v is None and k in optional)}


class _Hours(_Section):
    monday: _Day
    tuesday: _Day
    wednesday: _Day
    thursday: _Day
    friday: _Day
    saturday: _Day
    sunday: _Day

    @model_validator(mode="after")
    def _some_day_is_open(self) -> _Hours:
        if not self.opening_hours():
            raise ValueError('no day is open; expected at least one, like monday: "08:00-17:00"')
        return self

    def opening_hours(self) -> tuple[OpeningHours, ...]:
        days = (getattr(self, name) for name in WEEKDAYS)
        return tuple(OpeningHours(i, *span) for i, span in enumerate(days) if span is not None)


class _Holiday(_Section):
    date: Annotated[
        dt.date, BeforeValidator(_date), AfterValidator(_unique("holiday", "is listed twice"))
    ] = Field(description="YYYY-MM-DD, like 2026-12-25")
    name: _Line = Field(default="", description="what the day is, like Christmas Day")


class _Provider(_Section):
    id: Annotated[
        str,
        StringConstraints(pattern=_ITEM_ID),
        AfterValidator(_unique("provider", "is the id of an earlier provider")),
    ] = Field(description=f"{_ITEM_ID_RULE}, like dr-patel")
    name: _Line = Field(description="what the receptionist calls them, like Dr. Patel")
    family_name: _Line = Field(description="the name callers may ask for, like Patel")


class _AppointmentType(_Section):
    code: Annotated[
        str,
        StringConstraints(pattern=_ITEM_ID),
        AfterValidator(_unique("visit code", "is the code of an earlier type")),
    ] = Field(description=f"{_ITEM_ID_RULE}, like checkup")
    name: _Line = Field(description="what the receptionist calls it, like check-up")
    duration_min: int = Field(ge=5, le=480, description="minutes, 5 to 480")
    spoken_names: Annotated[list[_Line], AfterValidator(_spoken_names)] = Field(
        default=[], description='words callers use for it, like ["check up", "physical"]'
    )


class _AfterHours(_Section):
    action: Literal["take_message", "transfer"] = Field(
        default="take_message", description="take_message or transfer"
    )
    # Forbidden unless action is transfer: a number that is never dialled would mislead
    # whoever reads the file. validate_default: a missing one is reported.
    on_call_number: str | None = Field(default=None, validate_default=True)

    @field_validator("on_call_number")
    @classmethod
    def _number_fits_action(cls, value: str | None, info: ValidationInfo) -> str | None:
        action = info.data.get("action")  # absent when the action itself is wrong
        if action == "transfer" and value is None:
            raise ValueError(f"is required when action is transfer; expected a number {_E164}")
        if action == "take_message" and value is not None:
            raise ValueError("is only used when action is transfer; remove it or set the action")
        return _transfer_number(value, info)


class _Ehr(_Section):
    kind: Literal["embedded", "fhir"] = Field(default="embedded", description="embedded or fhir")
    # Both only for fhir, like on_call_number: settings that do nothing would mislead.
    base_url: str | None = Field(default=None, validate_default=True)
    credentials_secret: Annotated[str, StringConstraints(pattern=_SECRET_NAME)] | None = Field(
        default=None,
        validate_default=True,
        description="a Key Vault secret's name: 1-127 letters, digits and hyphens",
    )

    @field_validator("base_url", "credentials_secret")
    @classmethod
    def _fits_kind(cls, value: str | None, info: ValidationInfo) -> str | None:
        kind = info.data.get("kind")  # absent when the kind itself is wrong
        if kind == "fhir" and value is None:
            expected = "an https URL" if info.field_name == "base_url" else "a secret's name"
            raise ValueError(f"is required when kind is fhir; expected {expected}")
        if kind == "embedded" and value is not None:
            raise ValueError("is only used when kind is fhir; remove it or set the kind")
        return _https_url(value) if value is not None and info.field_name == "base_url" else value


class ClinicDocument(_Section):
    """A clinic file as validated (the keys of ``clinics/example.yaml``)."""

    id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])$")] = Field(
        description="2-63 lowercase letters, digits and hyphens, like reddy-clinic"
    )
    name: _Line = Field(description="the clinic's name, like Reddy Family Clinic")
    phone_numbers: list[
        Annotated[
            str,
            AfterValidator(_phone),
            AfterValidator(_unique("clinic number", "is listed twice")),
        ]
    ] = Field(min_length=1, description='E.164 numbers in quotes, like ["+15550100200"]')
    address: Annotated[str, AfterValidator(_one_line(200))] = Field(
        description="one line, like 12 Main Street, Springfield"
    )
    time_zone: Annotated[str, AfterValidator(_time_zone)] = Field(
        description="an IANA name, like America/Chicago"
    )
    hours: _Hours = Field(description='lines like monday: "08:00-17:00"')
    holidays: list[_Holiday] = Field(default=[], description="items like {date: 2026-12-25}")
    providers: list[_Provider] = Field(
        min_length=1, description="items like {id: dr-patel, name: Dr. Patel, family_name: Patel}"
    )
    appointment_types: list[_AppointmentType] = Field(
        min_length=1, description="items like {code: checkup, name: check-up, duration_min: 30}"
    )
    slot_minutes: int = Field(default=DEFAULTS.slot_minutes, ge=5, le=240, description="5 to 240")
    stream_sample_rate_hz: Literal[16_000, 24_000] = Field(
        default=16_000, description="16000 or 24000"
    )
    staff_transfer_number: Annotated[str, AfterValidator(_transfer_number)] | None = Field(
        default=None, description=f"a phone number {_E164}"
    )
    after_hours: _AfterHours = Field(
        default_factory=_AfterHours, description="a mapping like {action: take_message}"
    )
    greeting: Annotated[str, AfterValidator(_one_line(300))] | None = Field(
        default=None, description="one line of at most 300 characters"
    )
    voice: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9]{1,64}$")] | None = Field(
        default=None, description="an ElevenLabs voice id, like 21m00Tcm4TlvDq8ikWAM"
    )
    # At most four: Azure Speech identifies at most four candidate languages at the start
    # of a call (learn.microsoft.com/azure/ai-services/speech-service/language-identification).
    languages: list[
        Annotated[
            str,
            StringConstraints(pattern=_LOCALE),
            AfterValidator(_unique("language", "is listed twice")),
        ]
    ] = Field(
        default=list(DEFAULTS.languages),
        min_length=1,
        max_length=4,
        description="1 to 4 language-REGION tags, like [en-US, es-US]",
    )
    ehr: _Ehr = Field(default_factory=_Ehr, description="a mapping like {kind: embedded}")
    admins: list[
        Annotated[
            str,
            AfterValidator(_object_id),
            AfterValidator(_unique("admin", "is listed twice")),
        ]
    ] = Field(
        default=[],
        max_length=100,
        description="Entra ID object ids (GUIDs) of users or groups, like "
        "[0b1c2d3e-4f50-6172-8394-a5b6c7d8e9f0]",
    )


def validate_document(data: object) -> ClinicDocument:
    """``data`` (a loaded YAML document) checked against the schema.

    Raises:
        pydantic.ValidationError: With every problem found.
    """
    return ClinicDocument.model_validate(data, context={"seen": {}})
