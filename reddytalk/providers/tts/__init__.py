"""Tts package."""
