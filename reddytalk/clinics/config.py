"""A clinic file (YAML) to the domain's :class:`Clinic` and back.

The format is documented by example in ``clinics/example.yaml``; the schema is
:mod:`reddytalk.clinics.schema`. Every problem in a file is reported at once, each
with the path of its field (``providers[0].id``), what is wrong and what is expected.

Plain scalars resolve to fewer types than under PyYAML's YAML 1.1: an unquoted ``8:00``
stays text (1.1 reads the base-60 integer 480), so does ``+15550100200`` (1.1 reads an
integer and drops the plus), ``no`` and ``on`` (1.1 reads booleans; only true and false
are), and dates (the schema checks them). A key twice in one mapping is an error
rather than the last one silently winning.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Hashable, Sequence
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode

from reddytalk.clinics.schema import DEFAULTS, WEEKDAYS, ClinicDocument, show, validate_document
from reddytalk.scheduling.model import (
    AfterHours,
    AppointmentType,
    Clinic,
    EhrConnection,
    Holiday,
    Provider,
)

__all__ = ["ClinicConfigError", "clinic_to_yaml", "parse_clinic_yaml"]


class ClinicConfigError(ValueError):
    """A clinic file (or clinic) that breaks the format; ``str()`` lists every problem.

    Attributes:
        problems: ``(field path, message)`` pairs in the order of the format's keys
            (that of ``clinics/example.yaml``); the path is dotted
            with ``[i]`` for list items (``holidays[0].date``), and empty for problems
            of the file as a whole (YAML syntax, not a mapping).
    """

    def __init__(self, problems: Sequence[tuple[str, str]]) -> None:
        self.problems = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(
            f"{path}: {message}" if path else message for path, message in self.problems
        )


def parse_clinic_yaml(text: str) -> Clinic:
    """The clinic a clinic file describes.

    Args:
        text: The file's content (see ``clinics/example.yaml``).

    Raises:
        ClinicConfigError: With every problem in the file.
    """
    try:
        data = yaml.load(text, Loader=_ClinicLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as error:
        raise ClinicConfigError([("", _syntax_message(error))]) from None
    except yaml.YAMLError as error:
        raise ClinicConfigError([("", f"the file is not YAML: {error}")]) from None
    if not isinstance(data, dict):
        raise ClinicConfigError([("", _not_a_mapping(data))])
    try:
        document = validate_document(data)
    except ValidationError as error:
        problems = [_problem(details) for details in error.errors(include_url=False)]
        raise ClinicConfigError(problems) from None
    return _clinic_of(document)


def clinic_to_yaml(clinic: Clinic) -> str:
    """``clinic`` as a clinic file, which :func:`parse_clinic_yaml` reads back equal
    (with the opening hours in weekday order).

    Keys are in the order of ``clinics/example.yaml``; optional keys at their
    default are left out; opening hours go in weekday order.

    Raises:
        ClinicConfigError: The clinic breaks a rule of the format (two opening hours
            on one day, a number that is not E.164, ...), so its file would not load.
    """
    days = [h.weekday for h in clinic.hours]
    twice = sorted({WEEKDAYS[d] for d in days if days.count(d) > 1 and d in range(7)})
    unknown = sorted({d for d in days if d not in range(7)})
    problems = [
        (f"hours.{day}", "has two opening hours; expected one range a day") for day in twice
    ]
    problems += [("hours", f"weekday {d} is not 0 (Monday) to 6 (Sunday)") for d in unknown]
    if problems:
        raise ClinicConfigError(problems)
    text = "# A ReddyTalk clinic file; clinics/example.yaml explains each key.\n" + yaml.dump(
        _document(clinic),
        Dumper=_ClinicDumper,
        sort_keys=False,
        allow_unicode=True,
        width=10_000,  # one value per line, as an admin would write it
    )
    parse_clinic_yaml(text)  # what it cannot read back is reported now, not when loaded
    return text


# --- reading --------------------------------------------------------------------------

_CORE = "tag:yaml.org,2002:"


class _ClinicLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 core scalars and no duplicate keys."""

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        # Explicit tags (!!int x, !!timestamp 2026-02-30) make PyYAML's constructors
        # raise ValueError without a line; give it one.
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, TypeError, OverflowError) as error:
            message = f"cannot read this {node.tag.removeprefix(_CORE)} value: {error}"
            raise ConstructorError(None, None, message, node.start_mark) from None

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if isinstance(key_node, ScalarNode) and key_node.tag != f"{_CORE}merge":
                if key_node.value in seen:
                    message = f"{key_node.value} appears twice in this mapping; expected once"
                    raise ConstructorError(None, None, message, key_node.start_mark)
                seen.add(key_node.value)
        return super().construct_mapping(node, deep=deep)


_ClinicLoader.yaml_implicit_resolvers = {
    first: [
        (tag, regex)
        for tag, regex in resolvers
        if tag.removeprefix(_CORE) not in ("bool", "int", "float", "timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
# Subsets of YAML 1.1's patterns, so that what PyYAML's dumper leaves unquoted reads back
# as the same type: plain decimal integers (no sign, no leading zero: 030 is 1.1 octal),
# plain decimals, and true/false only.
_ClinicLoader.add_implicit_resolver(
    f"{_CORE}bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_ClinicLoader.add_implicit_resolver(
    f"{_CORE}int", re.compile(r"^-?(?:0|[1-9][0-9]*)$"), list("-0123456789")
)
_ClinicLoader.add_implicit_resolver(
    f"{_CORE}float",
    re.compile(r"^-?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+][0-9]+)?$"),
    list("-.0123456789"),
)


def _syntax_message(error: yaml.MarkedYAMLError) -> str:
    mark = error.problem_mark or error.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
    problem = error.problem or error.context or "unreadable"
    if isinstance(error, ConstructorError):
        return f"{where}: {problem}"
    return f"{where}: {problem} (the file is not valid YAML there)"


def _not_a_mapping(data: object) -> str:
    expected = "expected a mapping of clinic fields, like id: my-clinic and name: My Clinic"
    if data is None:
        return f"the file is empty; {expected}"
    return f"the file holds {show(data)}, not a mapping; {expected}"


# --- problems -------------------------------------------------------------------------

# What is wrong, by pydantic error type; "; expected <the field's description>" follows.
_WRONG = {
    "missing": "is required",
    "string_type": "{value} is not text",
    "int_type": "{value} is not a whole number",
    "list_type": "{value} is not a list",
    "model_type": "{value} is not a mapping of fields",
    "date_type": "{value} is not a date",
    "literal_error": "{value} is not one of the choices",
    "string_pattern_mismatch": "{value} is not valid",
    "greater_than_equal": "{value} is out of range",
    "less_than_equal": "{value} is out of range",
    "too_short": "is empty",  # every min_length is 1
    "too_long": "has {length} items, too many",
}


def _problem(details: ErrorDetails) -> tuple[str, str]:
    loc, kind, value = details["loc"], details["type"], details["input"]
    hint = _describe(loc)
    if kind in ("extra_forbidden", "invalid_key"):  # invalid_key: a key that is not text
        section = _section_at([part for part in loc[:-1] if isinstance(part, str)])
        keys = list(section.model_fields) if section else []
        close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
        guess = f" (did you mean {close[0]}?)" if close else ""
        return _path((*loc[:-1], str(loc[-1]))), f"unknown field{guess}; expected one of: " + (
            ", ".join(keys)
        )
    ctx = details.get("ctx", {})
    if kind == "value_error":  # our own checks, whose messages say it all
        return _path(loc), str(ctx.get("error", details["msg"]))
    wrong = _WRONG.get(kind, details["msg"])  # pydantic's words only for types not met here
    if value is None and "{value}" in wrong:
        wrong = "is empty"
    wrong = wrong.format(value=show(value), length=ctx.get("actual_length"))
    return _path(loc), wrong + (f"; expected {hint}" if hint else "")


def _describe(loc: tuple[int | str, ...]) -> str | None:
    """The description of the field at ``loc`` (of the list, for a list item)."""
    names = [part for part in loc if isinstance(part, str)]
    section = _section_at(names[:-1])
    field = section.model_fields.get(names[-1]) if section and names else None
    return field.description if field else None


def _section_at(names: list[str]) -> type[BaseModel] | None:
    """The model of the section that the keys ``names`` lead to, if they lead to one."""
    section: type[BaseModel] | None = ClinicDocument
    for name in names:
        field = section.model_fields.get(name) if section else None
        section = _section_in(field.annotation) if field else None
    return section


def _section_in(annotation: Any) -> type[BaseModel] | None:
    """The model in a field's annotation (``list[_Provider]``, ``_Ehr | None``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next(filter(None, (_section_in(arg) for arg in get_args(annotation))), None)


def _path(loc: Sequence[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}" if path else part
    return path


def _clinic_of(document: ClinicDocument) -> Clinic:
    """The domain's clinic: the first number is the main one, the rest other numbers."""
    after_hours, ehr = document.after_hours, document.ehr
    return Clinic(
        clinic_id=document.id,
        name=document.name,
        phone_number=document.phone_numbers[0],
        address=document.address,
        time_zone=document.time_zone,
        hours=document.hours.opening_hours(),
        providers=tuple(Provider(p.id, p.name, p.family_name) for p in document.providers),
        appointment_types=tuple(
            AppointmentType(t.code, t.name, t.duration_min, tuple(t.spoken_names))
            for t in document.appointment_types
        ),
        slot_minutes=document.slot_minutes,
        stream_sample_rate_hz=document.stream_sample_rate_hz,
        staff_phone_number=document.staff_transfer_number,
        languages=tuple(document.languages),
        voice_id=document.voice,
        other_phone_numbers=tuple(document.phone_numbers[1:]),
        holidays=tuple(Holiday(h.date, h.name) for h in document.holidays),
        greeting=document.greeting,
        after_hours=AfterHours(after_hours.action, after_hours.on_call_number),
        ehr=EhrConnection(ehr.kind, ehr.base_url, ehr.credentials_secret),
        admins=tuple(document.admins),
    )


# --- writing --------------------------------------------------------------------------


class _Quoted(str):
    """Text written in double quotes (times and phone numbers, as in the example)."""

    __slots__ = ()


class _ClinicDumper(yaml.SafeDumper):
    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        # Indent list items under their key, as people write YAML by hand.
        super().increase_indent(flow, False)


class _Flow(dict[str, Any]):
    """A small mapping written on one line, like ``{id: dr-patel, name: Dr. Patel}``."""


class _FlowList(list[Any]):
    """A list of words written on one line, like ``[en-US, es-US]``."""


_ClinicDumper.add_representer(
    _Quoted, lambda dumper, text: dumper.represent_scalar(f"{_CORE}str", text, style='"')
)
_ClinicDumper.add_representer(
    _Flow, lambda dumper, data: dumper.represent_mapping(f"{_CORE}map", data, flow_style=True)
)
_ClinicDumper.add_representer(
    _FlowList, lambda dumper, data: dumper.represent_sequence(f"{_CORE}seq", data, flow_style=True)
)


def _document(clinic: Clinic) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": clinic.clinic_id,
        "name": clinic.name,
        "phone_numbers": [_Quoted(n) for n in clinic.phone_numbers],
        "address": clinic.address,
        "time_zone": clinic.time_zone,
        "hours": {
            WEEKDAYS[h.weekday]: _Quoted(f"{h.opens:%H:%M}-{h.closes:%H:%M}")
            for h in sorted(clinic.hours, key=lambda h: h.weekday)
        },
    }
    if clinic.holidays:
        document["holidays"] = [
            _Flow({"date": h.day, **({"name": h.name} if h.name else {})}) for h in clinic.holidays
        ]
    document["providers"] = [
        _Flow(id=p.provider_id, name=p.display_name, family_name=p.family_name)
        for p in clinic.providers
    ]
    document["appointment_types"] = [
        {
            "code": t.code,
            "name": t.display_name,
            "duration_min": t.duration_min,
            **({"spoken_names": _FlowList(t.spoken_names)} if t.spoken_names else {}),
        }
        for t in clinic.appointment_types
    ]
    optional: dict[str, Any] = {
        "slot_minutes": clinic.slot_minutes,
        "stream_sample_rate_hz": clinic.stream_sample_rate_hz,
        "staff_transfer_number": _quoted(clinic.staff_phone_number),
        "after_hours": _after_hours(clinic),
        "greeting": clinic.greeting,
        "voice": clinic.voice_id,
        "languages": _FlowList(clinic.languages),
        "ehr": _ehr(clinic),
        "admins": list(clinic.admins),
    }
    defaults: dict[str, Any] = {
        "slot_minutes": DEFAULTS.slot_minutes,
        "stream_sample_rate_hz": DEFAULTS.stream_sample_rate_hz,
        "staff_transfer_number": DEFAULTS.staff_phone_number,
        "after_hours": _after_hours(DEFAULTS),
        "greeting": DEFAULTS.greeting,
        "voice": DEFAULTS.voice_id,
        "languages": list(DEFAULTS.languages),
        "ehr": _ehr(DEFAULTS),
        "admins": list(DEFAULTS.admins),
    }
    document.update((key, value) for key, value in optional.items() if value != defaults[key])
    return document


def _quoted(number: str | None) -> _Quoted | None:
    return None if number is None else _Quoted(number)


def _after_hours(clinic: Clinic) -> dict[str, Any]:
    after_hours: dict[str, Any] = {"action": clinic.after_hours.action}
    if clinic.after_hours.on_call_number is not None:
        after_hours["on_call_number"] = _Quoted(clinic.after_hours.on_call_number)
    return after_hours


def _ehr(clinic: Clinic) -> dict[str, Any]:
    ehr = {
        "kind": clinic.ehr.kind,
        "base_url": clinic.ehr.fhir_base_url,
        "credentials_secret": clinic.ehr.credentials_secret,
    }
    return {key: value for key, value in ehr.items() if value is not None}
