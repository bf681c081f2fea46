"""Telephony package."""
