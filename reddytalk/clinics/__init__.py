"""Clinic files: how a clinic's admin describes the clinic (YAML, checked by a schema).

``clinics/example.yaml`` shows and explains every key.
"""

from reddytalk.clinics.config import ClinicConfigError, clinic_to_yaml, parse_clinic_yaml

__all__ = ["ClinicConfigError", "clinic_to_yaml", "parse_clinic_yaml"]
