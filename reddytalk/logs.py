"""Structured logs: call id and clinic id on every line, PHI-shaped text redacted.

The rule is that nothing spoken or heard is logged at all; the redaction filter on
the root logger is the second line of defence for what slips through (numbers
that look like phone numbers or dates, e-mail addresses).
"""

from __future__ import annotations

import contextvars
import json
import logging
import re

__all__ = ["RedactingFilter", "bind_call", "configure_logging"]

_call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
_clinic_id: contextvars.ContextVar[str] = contextvars.ContextVar("clinic_id", default="-")

_PATTERNS = (
    re.compile(r"\+?\d[\d\s().-]{6,}\d"),  # phone numbers and long digit runs
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),  # ISO dates (dates of birth)
    re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),  # US dates
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),  # e-mail addresses
)


def bind_call(*, call_id: str, clinic_id: str) -> None:
    """Tag every log line of the current task (and its children) with the call."""
    _call_id.set(call_id)
    _clinic_id.set(clinic_id)


def redact(text: str) -> str:
    """``text`` with PHI-shaped substrings replaced by ``[redacted]``."""
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    return text


class RedactingFilter(logging.Filter):
    """Adds call_id/clinic_id to records and redacts PHI-shaped text in messages."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.call_id = _call_id.get()
        record.clinic_id = _clinic_id.get()
        record.msg = redact(record.getMessage())
        record.args = None
        return True


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "at": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
                "level": record.levelname,
                "logger": record.name,
                "call_id": getattr(record, "call_id", "-"),
                "clinic_id": getattr(record, "clinic_id", "-"),
                "message": record.getMessage(),
            }
        )


def configure_logging(level: str = "INFO") -> None:
    """JSON lines on stderr with the redaction filter on the root handler."""
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
