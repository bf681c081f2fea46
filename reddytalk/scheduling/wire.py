"""Scheduling records as JSON data: workflow inputs and results, tools API bodies.

Times keep their UTC offset (ISO 8601); dates are ``YYYY-MM-DD``. Each
``*_from_dict`` raises ``KeyError``, ``TypeError`` or ``ValueError`` on data its
``*_to_dict`` could not have written.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from reddytalk.scheduling.model import Appointment, Patient, Slot

__all__ = [
    "appointment_from_dict",
    "appointment_to_dict",
    "patient_from_dict",
    "patient_to_dict",
    "slot_from_dict",
    "slot_to_dict",
]


def _text(data: dict[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str):
        raise TypeError(f"{name} is not a string")
    return value


def _aware(data: dict[str, Any], name: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(_text(data, name))
    if value.tzinfo is None:
        raise ValueError(f"{name} has no UTC offset")
    return value


def appointment_to_dict(appointment: Appointment) -> dict[str, Any]:
    """An appointment as JSON data."""
    return {
        "appointment_id": appointment.appointment_id,
        "patient_id": appointment.patient_id,
        "provider_id": appointment.provider_id,
        "appointment_type": appointment.appointment_type,
        "slot_id": appointment.slot_id,
        "start": appointment.start.isoformat(),
        "status": appointment.status,
    }


def appointment_from_dict(data: dict[str, Any]) -> Appointment:
    """The appointment :func:`appointment_to_dict` wrote."""
    return Appointment(
        appointment_id=_text(data, "appointment_id"),
        patient_id=_text(data, "patient_id"),
        provider_id=_text(data, "provider_id"),
        appointment_type=_text(data, "appointment_type"),
        slot_id=_text(data, "slot_id"),
        start=_aware(data, "start"),
        status=_text(data, "status"),
    )


def slot_to_dict(slot: Slot) -> dict[str, Any]:
    """A slot as JSON data."""
    return {
        "slot_id": slot.slot_id,
        "provider_id": slot.provider_id,
        "start": slot.start.isoformat(),
        "end": slot.end.isoformat(),
    }


def slot_from_dict(data: dict[str, Any]) -> Slot:
    """The slot :func:`slot_to_dict` wrote."""
    return Slot(
        slot_id=_text(data, "slot_id"),
        provider_id=_text(data, "provider_id"),
        start=_aware(data, "start"),
        end=_aware(data, "end"),
    )


def patient_to_dict(patient: Patient) -> dict[str, Any]:
    """A patient as JSON data (PHI: only ever sent to the call that identified them)."""
    return {
        "patient_id": patient.patient_id,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "birth_date": patient.birth_date.isoformat(),
        "phone": patient.phone,
    }


def patient_from_dict(data: dict[str, Any]) -> Patient:
    """The patient :func:`patient_to_dict` wrote."""
    return Patient(
        patient_id=_text(data, "patient_id"),
        given_name=_text(data, "given_name"),
        family_name=_text(data, "family_name"),
        birth_date=dt.date.fromisoformat(_text(data, "birth_date")),
        phone=_text(data, "phone"),
    )
