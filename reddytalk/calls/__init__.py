"""Calls: the live per-call pipeline and the service that opens calls."""
