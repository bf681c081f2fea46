"""Structured logs: call id and clinic id on every line, PHI redacted.

The rule is that nothing spoken or heard is logged at all; redaction is the
second line of defence for what slips through: numbers that look like phone
numbers or dates, e-mail addresses, and the names this call has learnt (the
tools :func:`remember_phi` them as soon as the caller says who they are). Credentials
that ride in URLs (a JWT, a ``token=`` parameter) are redacted too.

:func:`install_redaction` redacts every log record when it is made, whichever
logger or handler it goes to, so it also covers the Functions host's own
handler, which ReddyTalk does not configure.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re

__all__ = [
    "RedactingFilter",
    "bind_call",
    "configure_logging",
    "install_redaction",
    "redact",
    "remember_phi",
]

_call_id: contextvars.ContextVar[str] = contextvars.ContextVar("call_id", default="-")
_clinic_id: contextvars.ContextVar[str] = contextvars.ContextVar("clinic_id", default="-")
# One mutable set per call, shared by every task of the call (a child task that
# learns a name adds it where the parent's records will see it too).
_known_phi: contextvars.ContextVar[set[str] | None] = contextvars.ContextVar(
    "known_phi", default=None
)
_MIN_WORD = 2

_PATTERNS = (
    # Credentials, before the rest: a JWT anywhere (a call's tools token, an admin's
    # bearer token), and the value of a token= or code= query parameter (uvicorn logs a
    # WebSocket's whole URL when it accepts it, and ACS's media URL carries the token).
    re.compile(r"\beyJ[\w-]*\.[\w-]+\.[\w-]*"),
    re.compile(r"(?:(?<=[?&]token=)|(?<=[?&]code=)|(?<=[?&]sig=))[^&\s\"']+"),
    re.compile(r"\+?\d[\d\s().-]{6,}\d"),  # phone numbers and long digit runs
    re.compile(r"\b\d{4}-\d{2}-\d{2}\b"),  # ISO dates (dates of birth)
    re.compile(r"\b\d{1,2}/\d{1,2}/\d{2,4}\b"),  # US dates
    re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+"),  # e-mail addresses
)


def bind_call(*, call_id: str, clinic_id: str) -> None:
    """Tag every log line of the current task (and its children) with the call."""
    _call_id.set(call_id)
    _clinic_id.set(clinic_id)
    _known_phi.set(set())


def remember_phi(*values: str) -> None:
    """Redact these (names the caller gave) from every later log line of this call."""
    known = _known_phi.get()
    if known is None:  # outside a call: nothing to remember them for
        return
    for value in values:
        known.update(w for w in re.findall(r"[^\W\d_]+", value) if len(w) >= _MIN_WORD)


def redact(text: str) -> str:
    """``text`` with PHI-shaped substrings and the call's known names replaced."""
    for pattern in _PATTERNS:
        text = pattern.sub("[redacted]", text)
    known = _known_phi.get()
    if known:
        words = "|".join(re.escape(w) for w in sorted(known, key=len, reverse=True))
        text = re.sub(rf"\b(?:{words})\b", "[redacted]", text, flags=re.IGNORECASE)
    return text


_redacting = False


def install_redaction() -> None:
    """Redact every log record of this process as it is made (idempotent), and keep the
    Azure SDKs' request logging (URLs with item ids and search parameters, at INFO) to
    warnings and errors."""
    global _redacting
    if _redacting:
        return
    logging.getLogger("azure").setLevel(logging.WARNING)
    make = logging.getLogRecordFactory()

    def redacted_record(*args: object, **kwargs: object) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            record.msg = redact(record.getMessage())
            record.args = None
        except Exception:  # a malformed format string: keep the record, lose the args
            record.msg = redact(str(record.msg))
            record.args = None
        return record

    logging.setLogRecordFactory(redacted_record)
    _redacting = True


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
    """JSON lines on stderr, every record redacted."""
    install_redaction()
    handler = logging.StreamHandler()
    handler.setFormatter(_JsonFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)

