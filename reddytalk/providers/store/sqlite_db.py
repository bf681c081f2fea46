"""One SQLite file shared by the embedded store and the embedded EHR.

The file holds ReddyTalk's own records (clinics, phone numbers, calls, calls in progress,
messages, audit, calls' numbers, the outbox of text messages) and the embedded schedule
(patients, slots, appointments). One connection is opened with
``check_same_thread=False`` and every use of it is serialized by one ``threading.Lock``,
so the adapters can run their SQL in worker threads through :meth:`SqliteDb.run`
without blocking the event loop.

Times are stored as fixed-width UTC ISO 8601 text
(``2026-03-02T14:00:00.000000+00:00``), so text order is time order and range
queries can compare strings.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from reddytalk.errors import ProviderError

__all__ = [
    "PLAINTEXT_SCHEMA_VERSION",
    "SCHEMA_VERSION",
    "SqliteDb",
    "clinic_time_zone",
    "create_schema",
    "from_utc_iso",
    "to_utc_iso",
]

SCHEMA_VERSION = 2
"""Stored in ``PRAGMA user_version``; a file with a newer version is refused.

2: PHI sealed by :class:`reddytalk.phi.PhiCipher`, patients found by a blind index, the
``data_keys`` table. 1 kept PHI in plaintext: such a file opens only for
:func:`reddytalk.providers.store.sqlite_upgrade.seal_plaintext_store`.

A table added to schema 2 later (``call_numbers``, ``outbox``, ``live_calls``,
``removed_clinics``) needs no new version: it is created ``IF NOT EXISTS`` whenever a
file is opened, nothing existing changes shape, and code that predates it never reads it.
An index added later (``calls_by_clinic``) is the same: built ``IF NOT EXISTS`` when a
file is opened; older code never uses it, and SQLite keeps it current whoever writes.
"""

PLAINTEXT_SCHEMA_VERSION = 1
"""The last schema that kept PHI in plaintext."""

_T = TypeVar("_T")

# Each clinic's data keys, wrapped by the key-encryption key (see ``reddytalk.phi``).
_DATA_KEYS_TABLE = """CREATE TABLE IF NOT EXISTS data_keys (
    clinic_id TEXT NOT NULL,
    key_version INTEGER NOT NULL,
    wrapped BLOB NOT NULL,
    kek_id TEXT NOT NULL,
    PRIMARY KEY (clinic_id, key_version)
)"""

# The same in schemas 1 and 2, though some schema 1 files were made before it existed.
_MESSAGES_TABLE = """CREATE TABLE IF NOT EXISTS messages (
    message_id TEXT PRIMARY KEY,
    call_id TEXT NOT NULL,
    clinic_id TEXT NOT NULL,
    taken_at TEXT NOT NULL,
    text TEXT NOT NULL,
    caller_name TEXT NOT NULL,
    patient_id TEXT,
    status TEXT NOT NULL
)"""

# ``CREATE ... IF NOT EXISTS`` throughout, so opening an existing file is a no-op.
_SCHEMA: tuple[str, ...] = (
    _DATA_KEYS_TABLE,
    """CREATE TABLE IF NOT EXISTS clinics (
        clinic_id TEXT PRIMARY KEY,
        document TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS phone_numbers (
        phone_number TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL REFERENCES clinics (clinic_id)
    )""",
    # ``transcript``, ``tool_calls`` (calls) and ``text``, ``caller_name`` (messages) are
    # sealed PHI tokens; the other columns hold ids, times and codes.
    """CREATE TABLE IF NOT EXISTS calls (
        call_id TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ended_at TEXT NOT NULL,
        outcome TEXT NOT NULL,
        transcript TEXT NOT NULL,
        tool_calls TEXT NOT NULL,
        turn_timings TEXT NOT NULL
    )""",
    # A clinic's calls newest first, a page at a time (the admin console): a backward
    # scan of this index, ties by call id, stopping at the page's end.
    "CREATE INDEX IF NOT EXISTS calls_by_clinic ON calls (clinic_id, started_at, call_id)",
    """CREATE TABLE IF NOT EXISTS audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        call_id TEXT NOT NULL,
        clinic_id TEXT NOT NULL,
        action TEXT NOT NULL,
        resource TEXT NOT NULL,
        at TEXT NOT NULL,
        details TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS audit_by_call ON audit (call_id, seq)",
    # A clinic's appointment changes (the admin console), from a time on.
    "CREATE INDEX IF NOT EXISTS audit_by_clinic ON audit (clinic_id, at)",
    _MESSAGES_TABLE,
    "CREATE INDEX IF NOT EXISTS messages_by_clinic ON messages (clinic_id, taken_at)",
    # A call's phone numbers (the caller's; an identified patient's from the EHR), sealed
    # (``number``), for texting a confirmation the caller asked for during the call.
    """CREATE TABLE IF NOT EXISTS call_numbers (
        call_id TEXT NOT NULL,
        party TEXT NOT NULL,
        clinic_id TEXT NOT NULL,
        number TEXT NOT NULL,
        saved_at TEXT NOT NULL,
        PRIMARY KEY (call_id, party)
    )""",
    # Text messages the embedded profile keeps instead of sending; ``to_number`` and
    # ``text`` are sealed.
    """CREATE TABLE IF NOT EXISTS outbox (
        message_id TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL,
        call_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        to_number TEXT NOT NULL,
        text TEXT NOT NULL,
        status TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS outbox_by_clinic ON outbox (clinic_id, created_at)",
    # Calls in progress, one row from a call's start to its end, so a clinic with calls
    # in progress is not removed. A worker that crashed mid-call leaves its row: rows
    # older than the limit (``clinics.LIVE_CALL_MAX_AGE``) are ignored and deleted lazily.
    """CREATE TABLE IF NOT EXISTS live_calls (
        call_id TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL,
        started_at TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS live_calls_by_clinic ON live_calls (clinic_id, started_at)",
    "CREATE INDEX IF NOT EXISTS live_calls_by_start ON live_calls (started_at)",
    # Clinics removed by an admin. Their row in ``clinics`` stays: the embedded schedule
    # (``slots``, and the appointments on them: medical records) refers to it.
    """CREATE TABLE IF NOT EXISTS removed_clinics (
        clinic_id TEXT PRIMARY KEY REFERENCES clinics (clinic_id),
        removed_at TEXT NOT NULL
    )""",
    # Idempotency: at-least-once deliveries (Event Grid, callbacks) act once per key.
    """CREATE TABLE IF NOT EXISTS claims (
        claim_key TEXT PRIMARY KEY,
        claimed_at TEXT NOT NULL
    )""",
    # The audit trail is append-only: the file itself refuses edits and deletes.
    """CREATE TRIGGER IF NOT EXISTS audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END""",
    """CREATE TRIGGER IF NOT EXISTS audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit is append-only'); END""",
    # Names, birth date and phone are sealed (``v1.<version>.<base64url>``); the identity
    # is found by its blind index: HMAC over the normalized (given, family, birth date).
    """CREATE TABLE IF NOT EXISTS patients (
        patient_id TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL,
        given_name TEXT NOT NULL,
        family_name TEXT NOT NULL,
        birth_date TEXT NOT NULL,
        phone TEXT NOT NULL,
        identity_index TEXT NOT NULL
    )""",
    """CREATE INDEX IF NOT EXISTS patients_by_blind_identity
        ON patients (clinic_id, identity_index)""",
    """CREATE TABLE IF NOT EXISTS slots (
        slot_id TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL REFERENCES clinics (clinic_id),
        provider_id TEXT NOT NULL,
        start_utc TEXT NOT NULL,
        end_utc TEXT NOT NULL,
        time_zone TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('free', 'busy')),
        UNIQUE (clinic_id, provider_id, start_utc)
    )""",
    "CREATE INDEX IF NOT EXISTS slots_by_time ON slots (clinic_id, status, start_utc)",
    """CREATE TABLE IF NOT EXISTS appointments (
        appointment_id TEXT PRIMARY KEY,
        clinic_id TEXT NOT NULL,
        patient_id TEXT NOT NULL REFERENCES patients (patient_id),
        provider_id TEXT NOT NULL,
        appointment_type TEXT NOT NULL,
        slot_id TEXT NOT NULL REFERENCES slots (slot_id),
        start_utc TEXT NOT NULL,
        time_zone TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('booked', 'cancelled')),
        idempotency_key TEXT NOT NULL UNIQUE
    )""",
    """CREATE INDEX IF NOT EXISTS appointments_by_patient
        ON appointments (patient_id, status, start_utc)""",
    # A hold keeps a free slot for one booking while it is written (FHIR: busy-tentative).
    """CREATE TABLE IF NOT EXISTS slot_holds (
        slot_id TEXT PRIMARY KEY REFERENCES slots (slot_id),
        hold_key TEXT NOT NULL,
        expires_utc TEXT NOT NULL
    )""",
)


class SqliteDb:
    """Owns one SQLite file: its connection, its schema and the lock around both.

    Args:
        path: The database file; created with the schema when missing.
        busy_timeout_s: How long to wait for another process holding the file's write lock.
        open_plaintext: Open a schema 1 file (PHI in plaintext) as it is, with only the
            ``data_keys`` table added, for the upgrade to seal it; its
            :attr:`schema_version` stays 1 until then.

    Attributes:
        schema_version: The file's schema: :data:`SCHEMA_VERSION`, or 1 for a file
            opened with ``open_plaintext`` and not upgraded yet.

    Raises:
        ProviderError: The file cannot be opened, was written by a newer schema, or is a
            schema 1 file and ``open_plaintext`` is False (not retryable).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        busy_timeout_s: float = 5.0,
        open_plaintext: bool = False,
    ) -> None:
        self._path = os.fspath(path)
        self._lock = threading.Lock()
        try:
            # isolation_level=None: no implicit transactions; ``transact`` opens them.
            self._conn = sqlite3.connect(
                os.fspath(path),
                isolation_level=None,
                check_same_thread=False,
                timeout=busy_timeout_s,
            )
        except sqlite3.Error as error:
            raise ProviderError("cannot open the SQLite file", retryable=False) from error
        self._conn.row_factory = sqlite3.Row
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA foreign_keys = ON")
            self._conn.execute("PRAGMA synchronous = NORMAL")  # durable enough under WAL
            self.schema_version: int = self.transact(
                lambda conn: _create_schema(conn, self._path, open_plaintext=open_plaintext)
            )
        except BaseException:
            self._conn.close()
            raise

    @property
    def path(self) -> Path:
        """The database file."""
        return Path(self._path)

    def compact(self) -> None:
        """Rewrite the file without free pages, and empty the write-ahead log.

        After PHI is overwritten (the upgrade from plaintext), so no page of the file
        or the log still holds the old values. Blocking; takes the file's write lock.

        Raises:
            ProviderError: SQLite failed; retryable when the file was busy.
        """
        with self._lock:
            try:
                self._conn.execute("VACUUM")
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            except sqlite3.Error as error:
                raise _provider_error(error) from error

    def close(self) -> None:
        """Close the connection; the adapters using this file stop working."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> SqliteDb:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def transact(self, work: Callable[[sqlite3.Connection], _T], *, write: bool = True) -> _T:
        """Run ``work`` in one transaction, committed if it returns, rolled back if it raises.

        Blocks; async code calls :meth:`run` instead.

        Args:
            work: Runs the SQL; gets the connection, returns the result.
            write: Take the write lock at once (``BEGIN IMMEDIATE``), so a
                read-then-write inside ``work`` sees no other writer in between.

        Returns:
            What ``work`` returned.

        Raises:
            ProviderError: SQLite failed; retryable when the file was busy.
        """
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                try:
                    result = work(self._conn)
                    self._conn.commit()
                except BaseException:
                    if self._conn.in_transaction:
                        self._conn.rollback()
                    raise
                return result
            except sqlite3.Error as error:
                raise _provider_error(error) from error

    async def run(self, work: Callable[[sqlite3.Connection], _T], *, write: bool = True) -> _T:
        """:meth:`transact` in a worker thread, so the event loop never waits on the file."""
        return await asyncio.to_thread(self.transact, work, write=write)


def _provider_error(error: sqlite3.Error) -> ProviderError:
    # SQLITE_BUSY / SQLITE_LOCKED (primary codes, low byte of the extended code): another
    # connection held the file past the busy timeout; anything else will fail again.
    code = getattr(error, "sqlite_errorcode", 0) & 0xFF
    if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
        return ProviderError("the SQLite file is busy", retryable=True)
    return ProviderError(f"SQLite failed: {type(error).__name__}", retryable=False)


def _create_schema(conn: sqlite3.Connection, path: str, *, open_plaintext: bool) -> int:
    """Create what is missing; the file's schema version after."""
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version > SCHEMA_VERSION:
        raise ProviderError(
            f"the SQLite file has schema {version}, newer than {SCHEMA_VERSION}",
            retryable=False,
        )
    if 0 < version <= PLAINTEXT_SCHEMA_VERSION:
        if not open_plaintext:
            raise ProviderError(
                f"the SQLite file {path} has schema {version}, which kept PHI unencrypted."
                " Start the embedded receptionist on it once (scripts/demo --serve, or the"
                " media worker) to encrypt it in place, or delete the file and its -wal and"
                " -shm files (the demo clinic is seeded again).",
                retryable=False,
            )
        conn.execute(_DATA_KEYS_TABLE)  # for the upgrade's cipher; nothing else changes
        return version
    create_schema(conn)
    return SCHEMA_VERSION


def create_schema(conn: sqlite3.Connection) -> None:
    """Create every missing table, index and trigger, and mark the file as the current
    schema. Inside a write transaction."""
    for statement in _SCHEMA:
        conn.execute(statement)
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) != SCHEMA_VERSION:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def to_utc_iso(value: dt.datetime) -> str:
    """``value`` as fixed-width UTC ISO 8601 text, whose text order is time order.

    Raises:
        ValueError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("datetimes must be timezone-aware")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def from_utc_iso(text: str, tz: dt.tzinfo = dt.UTC) -> dt.datetime:
    """Text written by :func:`to_utc_iso`, as an aware datetime in ``tz``."""
    return dt.datetime.fromisoformat(text).astimezone(tz)


def clinic_time_zone(conn: sqlite3.Connection, clinic_id: str) -> ZoneInfo:
    """The time zone of a saved clinic, read inside a transaction.

    Raises:
        ValueError: No clinic with this id was saved.
    """
    row = conn.execute("SELECT document FROM clinics WHERE clinic_id = ?", (clinic_id,)).fetchone()
    if row is None:
        raise ValueError(f"unknown clinic {clinic_id!r}")
    return ZoneInfo(str(json.loads(row["document"])["time_zone"]))
