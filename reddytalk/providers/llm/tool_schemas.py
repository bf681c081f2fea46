"""The receptionist's tools as OpenAI function schemas (chat completions ``tools``).

They describe :class:`reddytalk.dialogue.tools.ReceptionistTools` to the model and
nothing more: the guardrails (verified identity, the caller's yes to the read-back,
the yes to a text) stay there and refuse what they forbid whatever the model asks.
Dates and times are ISO 8601 strings (``2026-12-01``, ``09:30``); slots and
appointments are named by the ids that ``find_slots`` and ``upcoming_appointments``
returned, since the model never holds the objects themselves.

``strict: true`` (structured outputs) makes the model's arguments match the schema;
it needs every property listed in ``required`` and ``additionalProperties: false``,
so optional values are nullable instead of absent.
"""

from __future__ import annotations

from typing import Any

__all__ = ["receptionist_tools"]

_NAME = {"type": "string", "description": "As the caller said and spelled it."}
_BIRTH_DATE = {"type": "string", "description": "Date of birth, ISO 8601 (YYYY-MM-DD)."}
_SLOT_ID = {"type": "string", "description": "A slot id that find_slots returned."}
_APPOINTMENT_ID = {
    "type": "string",
    "description": "An appointment id that upcoming_appointments returned.",
}


def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    parameters = {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }
    function = {"name": name, "description": description, "parameters": parameters}
    return {"type": "function", "function": {**function, "strict": True}}


def _nullable(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": [kind, "null"], "description": description, **extra}


def receptionist_tools() -> list[dict[str, Any]]:
    """The OpenAI ``tools`` list of the receptionist, one function per tool."""
    person = {"given_name": _NAME, "family_name": _NAME, "birth_date": _BIRTH_DATE}
    return [
        _tool("verify_identity",
              "Match the caller to a patient of the clinic by full name and date of birth.",
              person),
        _tool("register_patient",
              "Register the caller as a new patient (only after verify_identity found none "
              "and the caller agreed).", person),
        _tool("find_slots", "Find up to three free appointment slots for the caller's request.", {
            "day": _nullable("string", "The day asked for, ISO 8601 (YYYY-MM-DD)."),
            "part_of_day": _nullable("string", "The part of the day asked for.",
                                     enum=["morning", "afternoon", "evening", None]),
            "clock_time": _nullable("string", "The time asked for, ISO 8601 (HH:MM)."),
            "provider_id": _nullable("string", "The clinician asked for, by provider id."),
        }),
        _tool("book",
              "Book a slot, after the caller heard it read back and said yes.",
              {"slot_id": _SLOT_ID,
               "appointment_type": {"type": "string",
                                    "description": "One of the clinic's appointment type codes."}}),
        _tool("upcoming_appointments", "List the verified patient's upcoming appointments.", {}),
        _tool("cancel", "Cancel an appointment, after the caller heard it read back and said yes.",
              {"appointment_id": _APPOINTMENT_ID}),
        _tool("reschedule",
              "Move an appointment to a new slot, after the caller heard the new time read "
              "back and said yes.", {"appointment_id": _APPOINTMENT_ID, "slot_id": _SLOT_ID}),
        _tool("send_confirmation",
              "Text a confirmation of the change just made, after the caller said yes to a text.",
              {}),
        _tool("take_message", "Keep a message for the clinic's staff.", {
            "text": {"type": "string", "description": "What the caller wants passed on."},
            "caller_name": {"type": "string",
                            "description": "The caller's name if not verified, else empty."},
        }),
        _tool("transfer_to_staff", "Transfer the call to a person at the clinic.", {
            "reason": {"type": "string", "description": "Why, in a few words (snake_case).",
                       "enum": ["caller_request", "message_unavailable",
                                "schedule_unavailable", "out_of_scope"]},
        }),
        _tool("end_call", "End the call after saying goodbye.", {}),
    ]  # fmt: skip
