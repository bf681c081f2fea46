"""Where each clinic's wrapped data keys are kept: a tiny port, and an in-memory double.

A data key never rests unwrapped: the store holds it as the key-encryption key wrapped
it, next to the id of the key version that did (``kek_id``), so a rotation can tell old
wraps from new. A SQLite table holds them on the embedded profile
(:class:`reddytalk.providers.store.sqlite_keys.SqliteDataKeys`); a Cosmos container
partitioned by clinic can hold the same records in the cloud.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["DataKeyStore", "MemoryDataKeys", "WrappedDataKey"]


@dataclass(frozen=True, slots=True)
class WrappedDataKey:
    """One version of a clinic's data key, as the key-encryption key wrapped it.

    Attributes:
        clinic_id: The clinic whose PHI the key seals.
        version: 1 for the clinic's first key; tokens name the version that sealed them.
        wrapped: The wrapped key (opaque; useless without the key-encryption key).
        kek_id: The key-encryption key version that wrapped it.
    """

    clinic_id: str
    version: int
    wrapped: bytes = field(repr=False)
    kek_id: str


class DataKeyStore(Protocol):
    """Keeps wrapped data keys; every method is atomic on its own."""

    async def data_keys(self, clinic_id: str) -> list[WrappedDataKey]:
        """The clinic's data keys, oldest version first (empty for a new clinic)."""
        ...

    async def add_data_key(self, key: WrappedDataKey) -> bool:
        """Keep ``key`` unless the clinic has that version already (another process
        created it first); whether it was kept."""
        ...

    async def all_data_keys(self) -> list[WrappedDataKey]:
        """Every clinic's data keys (for a rotation of the key-encryption key)."""
        ...

    async def replace_wrap(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Store ``new``'s wrap and ``kek_id`` in place of ``old``'s, if ``old`` is still
        what is stored (compare and swap); whether it was replaced."""
        ...


class MemoryDataKeys:
    """A :class:`DataKeyStore` in a dict: the double for tests of the cipher."""

    def __init__(self) -> None:
        self._keys: dict[tuple[str, int], WrappedDataKey] = {}

    def __repr__(self) -> str:
        return f"MemoryDataKeys(keys={len(self._keys)})"

    async def data_keys(self, clinic_id: str) -> list[WrappedDataKey]:
        """The clinic's data keys, oldest version first."""
        return sorted((k for k in self._keys.values() if k.clinic_id == clinic_id),
                      key=lambda k: k.version)  # fmt: skip

    async def add_data_key(self, key: WrappedDataKey) -> bool:
        """Keep ``key`` unless its version is kept already (the same object twice too)."""
        slot = (key.clinic_id, key.version)
        if slot in self._keys:
            return False
        self._keys[slot] = key
        return True

    async def all_data_keys(self) -> list[WrappedDataKey]:
        """Every data key, by clinic and version."""
        return [self._keys[k] for k in sorted(self._keys)]

    async def replace_wrap(self, old: WrappedDataKey, new: WrappedDataKey) -> bool:
        """Swap ``old``'s wrap for ``new``'s if ``old`` is what is kept."""
        slot = (old.clinic_id, old.version)
        if self._keys.get(slot) != old:
            return False
        self._keys[slot] = dataclasses.replace(old, wrapped=new.wrapped, kek_id=new.kek_id)
        return True
