"""Stt package."""
