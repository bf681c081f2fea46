"""Ehr package."""
