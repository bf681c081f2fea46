"""The SQLite store's clinics: their documents, the numbers that ring them, calls in progress.

:class:`~reddytalk.providers.store.sqlite.SqliteStore` delegates to
:class:`SqliteClinics`; the tables (``clinics``, ``phone_numbers``, ``live_calls``,
``removed_clinics``) are in :mod:`reddytalk.providers.store.sqlite_db`. Every write is
one transaction taken with the file's write lock (``BEGIN IMMEDIATE``), so a check and
the writes it allows see no other writer in between, and a refused write changes nothing.

A removed clinic keeps its row in ``clinics``, marked in ``removed_clinics``: the
embedded schedule's slots refer to it (a foreign key), and they and the appointments on
them are medical records the removal keeps. Saving the clinic again un-marks it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3

from reddytalk.errors import ClinicBusy
from reddytalk.providers.store.clinics import (
    check_clinic_numbers,
    clinic_from_document,
    clinic_to_document,
    live_since,
)
from reddytalk.providers.store.sqlite_db import SqliteDb, to_utc_iso
from reddytalk.scheduling.model import Clinic

__all__ = ["SqliteClinics"]

# A clinic as the port sees it: saved, and not removed since.
_ACTIVE = "clinic_id NOT IN (SELECT clinic_id FROM removed_clinics)"


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _count_live(conn: sqlite3.Connection, clinic_id: str, now: dt.datetime) -> int:
    """The clinic's calls in progress at ``now``; first deletes, for every clinic, the
    rows of calls too old to be in progress (a crashed worker's)."""
    since = live_since(now)
    conn.execute("DELETE FROM live_calls WHERE started_at < ?", (since,))
    row = conn.execute(
        "SELECT count(*) FROM live_calls WHERE clinic_id = ? AND started_at >= ?",
        (clinic_id, since),
    ).fetchone()
    return int(row[0])


class SqliteClinics:
    """Clinics, their phone numbers and their calls in progress, in one SQLite file.

    Args:
        db: The SQLite file.
    """

    def __init__(self, *, db: SqliteDb) -> None:
        self._db = db

    def __repr__(self) -> str:
        return "SqliteClinics()"

    async def save_clinic(self, clinic: Clinic) -> None:
        """Create or replace a clinic, and map to it exactly ``clinic.phone_numbers``, in
        one transaction (numbers it had and no longer lists are released)."""
        numbers = check_clinic_numbers(clinic)
        document = json.dumps(clinic_to_document(clinic), sort_keys=True)
        clinic_id = clinic.clinic_id

        def work(conn: sqlite3.Connection) -> None:
            for number in numbers:
                owner = conn.execute(
                    "SELECT clinic_id FROM phone_numbers WHERE phone_number = ?", (number,)
                ).fetchone()
                if owner is not None and owner["clinic_id"] != clinic_id:
                    raise ValueError(f"the phone number {number} belongs to another clinic")
            conn.execute(
                "INSERT INTO clinics (clinic_id, document) VALUES (?, ?)"
                " ON CONFLICT (clinic_id) DO UPDATE SET document = excluded.document",
                (clinic_id, document),
            )
            conn.execute("DELETE FROM removed_clinics WHERE clinic_id = ?", (clinic_id,))
            marks = ", ".join("?" * len(numbers))
            conn.execute(
                f"DELETE FROM phone_numbers WHERE clinic_id = ? AND phone_number NOT IN ({marks})",
                (clinic_id, *numbers),
            )
            conn.executemany(
                "INSERT OR IGNORE INTO phone_numbers (phone_number, clinic_id) VALUES (?, ?)",
                [(number, clinic_id) for number in numbers],
            )

        await self._db.run(work)

    async def find_clinic_by_number(self, phone_number: str) -> Clinic | None:
        """The clinic that owns ``phone_number`` (E.164), or None."""

        def work(conn: sqlite3.Connection) -> Clinic | None:
            row = conn.execute(
                "SELECT c.document FROM phone_numbers AS p"
                " JOIN clinics AS c ON c.clinic_id = p.clinic_id WHERE p.phone_number = ?",
                (phone_number,),
            ).fetchone()
            return None if row is None else clinic_from_document(json.loads(row["document"]))

        return await self._db.run(work, write=False)

    async def get_clinic(self, clinic_id: str) -> Clinic | None:
        """The clinic with this id, or None (never saved, or removed)."""

        def work(conn: sqlite3.Connection) -> Clinic | None:
            row = conn.execute(
                f"SELECT document FROM clinics WHERE clinic_id = ? AND {_ACTIVE}", (clinic_id,)
            ).fetchone()
            return None if row is None else clinic_from_document(json.loads(row["document"]))

        return await self._db.run(work, write=False)

    async def list_clinics(self) -> list[Clinic]:
        """Every clinic (removed ones not), by clinic id."""

        def work(conn: sqlite3.Connection) -> list[Clinic]:
            rows = conn.execute(
                f"SELECT document FROM clinics WHERE {_ACTIVE} ORDER BY clinic_id"
            ).fetchall()
            return [clinic_from_document(json.loads(row["document"])) for row in rows]

        return await self._db.run(work, write=False)

    async def remove_clinic(self, clinic_id: str) -> bool:
        """Remove a clinic and release its numbers, in one transaction, unless calls to
        it are in progress (then :class:`ClinicBusy`); whether there was such a clinic."""
        at = _utc_now()
        removed_at = to_utc_iso(at)

        def work(conn: sqlite3.Connection) -> bool:
            found = conn.execute(
                f"SELECT 1 FROM clinics WHERE clinic_id = ? AND {_ACTIVE}", (clinic_id,)
            ).fetchone()
            if found is None:
                return False
            live = _count_live(conn, clinic_id, at)
            if live:
                # Raising rolls the transaction back: the stale rows stay until next time.
                raise ClinicBusy(
                    f"clinic {clinic_id!r} has {live} call(s) in progress",
                    calls_in_progress=live,
                )
            conn.execute("DELETE FROM phone_numbers WHERE clinic_id = ?", (clinic_id,))
            conn.execute(
                "INSERT INTO removed_clinics (clinic_id, removed_at) VALUES (?, ?)",
                (clinic_id, removed_at),
            )
            return True

        return await self._db.run(work)

    async def call_started(self, call_id: str, clinic_id: str, *, at: dt.datetime) -> None:
        """Count the call as in progress from ``at`` (the same call again: from its new
        ``at``)."""
        values = (call_id, clinic_id, to_utc_iso(at))

        def work(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO live_calls (call_id, clinic_id, started_at)"
                " VALUES (?, ?, ?)",
                values,
            )

        await self._db.run(work)

    async def call_ended(self, call_id: str) -> None:
        """The call is no longer in progress (nothing if it was not)."""

        def work(conn: sqlite3.Connection) -> None:
            conn.execute("DELETE FROM live_calls WHERE call_id = ?", (call_id,))

        await self._db.run(work)

    async def calls_in_progress(self, clinic_id: str, *, now: dt.datetime) -> int:
        """How many calls to the clinic started at most the limit before ``now`` and have
        not ended (older rows are deleted on the way)."""
        return await self._db.run(lambda conn: _count_live(conn, clinic_id, now))
