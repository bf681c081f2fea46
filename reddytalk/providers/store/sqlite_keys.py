"""The embedded :class:`~reddytalk.phi.DataKeyStore`: wrapped data keys in the SQLite file.

One row per clinic and key version in ``data_keys``, in the same file as the PHI they
seal; the key-encryption key that wrapped them lives elsewhere (a key folder, Key Vault).
"""

from __future__ import annotations

import sqlite3

from reddytalk.phi.data_keys import WrappedDataKey
from reddytalk.providers.store.sqlite_db import SqliteDb

__all__ = ["SqliteDataKeys"]


def _key_from_row(row: sqlite3.Row) -> WrappedDataKey:
    return WrappedDataKey(
        clinic_id=row["clinic_id"],
        version=int(row["key_version"]),
        wrapped=bytes(row["wrapped"]),
        kek_id=row["kek_id"],
    )


class SqliteDataKeys:
    """Wrapped data keys in the ``data_keys`` table.

    Args:
        db: The SQLite file (the one whose PHI the keys seal).
    """

    def __init__(self, *, db: SqliteDb) -> None:
        self._db = db

    def __repr__(self) -> str:
        return "SqliteDataKeys()"

    async def data_keys(self, clinic_id: str) -> list[WrappedDataKey]:
        """The clinic's data keys, oldest version first."""

        def work(conn: sqlite3.Connection) -> list[WrappedDataKey]:
            rows = conn.execute(
                "SELECT * FROM data_keys WHERE clinic_id = ? ORDER BY key_version", (clinic_id,)
            )
            return [_key_from_row(row) for row in rows]

        return await self._db.run(work, write=False)

    async def add_data_key(self, key: WrappedDataKey) -> bool:
        """Keep ``key`` unless the clinic has that version already (the primary key decides)."""

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO data_keys (clinic_id, key_version, wrapped, kek_id)"
                " VALUES (?, ?, ?, ?)",
                (key.clinic_id, key.version, key.wrapped, key.kek_id),
            )
            return cursor.rowcount == 1

        return await self._db.run(work)

    async def all_data_keys(self) -> list[WrappedDataKey]:
        """Every clinic's data keys, by clinic and version."""

        def work(conn: sqlite3.Connection) -> list[WrappedDataKey]:
            rows = conn.execute("SELECT * FROM data_keys ORDER BY clinic_id, key_version")
            return [_key_from_row(row) for row in rows]

        return await self._db.run(work, write=False)

    async def replace_wrap(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Store ``new``'s wrap in place of ``old``'s if ``old``'s is still the stored one."""

        def work(conn: sqlite3.Connection) -> bool:
            cursor = conn.execute(
                "UPDATE data_keys SET wrapped = ?, kek_id = ?"
                " WHERE clinic_id = ? AND key_version = ? AND wrapped = ? AND kek_id = ?",
                (new.wrapped, new.kek_id, old.clinic_id, old.version, old.wrapped, old.kek_id),
            )
            return cursor.rowcount == 1

        return await self._db.run(work)
