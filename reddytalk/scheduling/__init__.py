"""Scheduling package."""
