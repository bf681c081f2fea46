"""Sms package."""
