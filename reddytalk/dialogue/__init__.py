"""Dialogue package."""
