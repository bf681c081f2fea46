"""The embedded profile's key-encryption key: numbered key files in one folder.

    <key_dir>/kek-1, kek-2, …    32 random bytes each, mode 0600; the highest is current

:class:`LocalKeyFile` implements :class:`reddytalk.ports.KeyEncryptionKey` with AES key
wrap (RFC 3394, ``cryptography``'s ``aes_key_wrap``). The first use creates ``kek-1``;
:meth:`LocalKeyFile.rotate` adds the next file, and older files stay so the data keys they
wrapped still unwrap until :meth:`reddytalk.phi.cipher.PhiCipher.rotate_kek` re-wraps them.

A key file is created complete or not at all: written to a private temporary file opened
with ``O_CREAT | O_EXCL`` and mode 0600, then published with ``link(2)``, which fails if the
name exists, so two processes starting at once agree on one key and neither reads half a
file. A key file that group or others may access, or a key folder they may write to, is
refused rather than used.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import secrets
import stat
import threading
from pathlib import Path

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from reddytalk.errors import ProviderError

__all__ = ["KEY_BYTES", "LocalKeyFile"]

KEY_BYTES = 32
"""AES-256 key-encryption keys."""

_FILE_NAME = re.compile(r"kek-([1-9][0-9]{0,8})")


def _key_id(key: bytes) -> str:
    # Names the key without revealing it: 32 bits of its SHA-256.
    return f"local:{hashlib.sha256(key).hexdigest()[:8]}"


class LocalKeyFile:
    """AES key wrap with the newest key file in ``key_dir``; unwrap with any of them.

    Args:
        key_dir: The folder of key files; created (mode 0700) with ``kek-1`` on first use.

    Raises (from every method, on first use):
        ProviderError: A key file or the folder is too open, or a key file is not a key
            (not retryable).
    """

    def __init__(self, key_dir: str | os.PathLike[str]) -> None:
        self._dir = Path(key_dir)
        self._lock = threading.Lock()
        self._keys: dict[str, bytes] = {}  # key id -> key, every version read so far
        self._current: tuple[int, str] | None = None  # (file number, key id)

    def __repr__(self) -> str:
        return f"LocalKeyFile(key_dir={os.fspath(self._dir)!r})"

    @property
    def key_id(self) -> str:
        """The id of the key version :meth:`wrap` uses now (``local:`` + 8 hex digits).

        The first use reads (or creates) the key folder, blocking: async callers make it
        in a worker thread.
        """
        with self._lock:
            current = self._current or self._refresh()
        return current[1]

    async def wrap(self, data_key: bytes) -> bytes:
        """``data_key`` wrapped with the newest key file (looked up again on each wrap)."""
        _, key_id = await asyncio.to_thread(self._refresh_locked)
        return aes_key_wrap(self._keys[key_id], data_key)

    async def unwrap(self, wrapped: bytes, *, key_id: str) -> bytes:
        """The data key that the key file ``key_id`` wrapped.

        Raises:
            ProviderError: No key file has this id, or the wrap is not its own (not retryable).
        """
        key = self._keys.get(key_id)
        if key is None:
            await asyncio.to_thread(self._refresh_locked)  # another process may have rotated
            key = self._keys.get(key_id)
        if key is None:
            raise ProviderError(f"no key file in the key folder has id {key_id}", retryable=False)
        try:
            return aes_key_unwrap(key, wrapped)
        except InvalidUnwrap:
            raise ProviderError(
                f"a wrapped data key does not unwrap with key {key_id}", retryable=False
            ) from None

    def rotate(self) -> str:
        """Add the next key file, which wraps from now on; the id of the current key.

        Older files stay, so what they wrapped still unwraps. Two processes rotating at
        once add one file between them. Blocking: an administrator's command.
        """
        with self._lock:
            number, _ = self._refresh()
            _create_key_file(self._dir / f"kek-{number + 1}")
            return self._refresh()[1]

    def _refresh_locked(self) -> tuple[int, str]:
        with self._lock:
            return self._refresh()

    def _refresh(self) -> tuple[int, str]:
        """Read every key file not read yet, creating ``kek-1`` if there is none; the newest.

        Call with the lock held.
        """
        _ensure_private_dir(self._dir)
        numbers = sorted(
            int(match.group(1))
            for name in os.listdir(self._dir)
            if (match := _FILE_NAME.fullmatch(name))
        )
        if not numbers:
            _create_key_file(self._dir / "kek-1")
            numbers = [1]
        newest = numbers[-1]
        if self._current is None or self._current[0] < newest:
            for number in numbers:
                key = _read_key_file(self._dir / f"kek-{number}")
                self._keys[_key_id(key)] = key
            self._current = (newest, _key_id(_read_key_file(self._dir / f"kek-{newest}")))
        return self._current


def _ensure_private_dir(path: Path) -> None:
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = path.stat().st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ProviderError(
            f"the key folder {path} is writable by group or others (mode {mode & 0o777:o});"
            f" run: chmod 700 {path}",
            retryable=False,
        )


def _create_key_file(path: Path) -> None:
    """Publish a new random key at ``path``, unless a file is there already."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(secrets.token_bytes(KEY_BYTES))
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)  # atomic, and fails if another process got there first
        except FileExistsError:
            pass
    finally:
        os.unlink(temporary)


def _read_key_file(path: Path) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ProviderError(f"the key file {path} is not a regular file", retryable=False)
        if info.st_mode & 0o077:
            raise ProviderError(
                f"the key file {path} is open to group or others"
                f" (mode {info.st_mode & 0o777:o}); it must be 600: run chmod 600 {path}",
                retryable=False,
            )
        key = file.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise ProviderError(f"the key file {path} does not hold a {KEY_BYTES}-byte key",
                            retryable=False)  # fmt: skip
    return key
