"""Providers package."""
