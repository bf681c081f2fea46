"""PHI sealed field by field with per-clinic data keys (envelope encryption).

    key-encryption key (Key Vault key | local key file)
      └─ wraps each clinic's data key (32 random bytes; stored wrapped, cached unwrapped)
           ├─ HKDF-SHA256 "seal"        → AES-256-GCM key: seal / open PHI fields
           └─ HKDF-SHA256 "blind index" → HMAC-SHA256 key: equality lookups on PHI

A sealed field is one line of text::

    v1.<data key version>.<base64url(nonce[12] | ciphertext | tag[16])>

Its additional authenticated data binds the clinic, the field name, the record id
(when the caller gives one) and the key version, so a token copied to another clinic,
field or record, or edited in any byte, fails to open. Rotating the key-encryption
key re-wraps the stored data keys and leaves every token as it is.

The blind index key comes from the clinic's first data key, so lookups keep working
whichever data key version seals new values.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import dataclasses
import hashlib
import hmac
import json
import os
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from reddytalk.errors import ProviderError
from reddytalk.phi.data_keys import DataKeyStore, WrappedDataKey
from reddytalk.ports import KeyEncryptionKey

__all__ = ["DATA_KEY_BYTES", "PhiCipher"]

DATA_KEY_BYTES = 32
_NONCE_BYTES = 12
_TAG_BYTES = 16
_TOKEN = re.compile(r"v1\.([1-9][0-9]{0,8})\.([A-Za-z0-9_-]+)")
_SEAL_INFO = b"reddytalk/phi/v1/seal"
_INDEX_INFO = b"reddytalk/phi/v1/blind-index"
_WRAP_ATTEMPTS = 3


def _derive(data_key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(data_key)


def _aad(clinic_id: str, field: str, record_id: str, version: int) -> bytes:
    # JSON: unambiguous whatever characters the ids hold.
    return json.dumps(["v1", clinic_id, field, record_id, version], separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class _ClinicKeys:
    """One clinic's unwrapped keys, as cached."""

    sealers: dict[int, AESGCM] = field(repr=False)
    current: int
    index_key: bytes = field(repr=False)


class PhiCipher:
    """Seals and opens PHI fields, and computes blind indexes, per clinic.

    A clinic's first data key is made on first use, wrapped by ``kek`` and kept in
    ``keys``; two processes racing to make it agree on the one the store kept.
    Unwrapped keys stay in memory for the ``cache_size`` clinics used last. Nothing
    secret reaches ``repr`` or an error message.

    Args:
        kek: The key-encryption key.
        keys: Where the wrapped data keys are kept.
        cache_size: How many clinics' unwrapped keys to keep in memory.
    """

    def __init__(self, *, kek: KeyEncryptionKey, keys: DataKeyStore, cache_size: int = 256) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._kek = kek
        self._store = keys
        self._cache_size = cache_size
        self._cache: OrderedDict[str, _ClinicKeys] = OrderedDict()

    def __repr__(self) -> str:
        return f"PhiCipher(kek={self._kek!r}, cached_clinics={len(self._cache)})"

    async def seal(self, clinic_id: str, field: str, plaintext: str, *, record_id: str = "") -> str:
        """``plaintext`` sealed for one field of one clinic (and record) with its current key.

        Args:
            clinic_id: The clinic the value belongs to.
            field: The field's name, such as ``patient.birth_date``.
            plaintext: The value (any text, empty included).
            record_id: The record the value belongs to, if the caller binds it.

        Returns:
            ``v1.<version>.<base64url>``: ASCII, no padding, safe in any text column.

        Raises:
            ProviderError: The data key could not be made or unwrapped.
        """
        keys = await self._keys_for(clinic_id)
        nonce = os.urandom(_NONCE_BYTES)  # random 96-bit nonces: far below 2^32 per key
        sealed = keys.sealers[keys.current].encrypt(
            nonce, plaintext.encode(), _aad(clinic_id, field, record_id, keys.current)
        )
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"v1.{keys.current}.{body}"

    async def open(self, clinic_id: str, field: str, token: str, *, record_id: str = "") -> str:
        """The plaintext of a token :meth:`seal` made for this clinic, field and record.

        Raises:
            ProviderError: The token is malformed, was altered, or was sealed for another
                clinic, field or record (not retryable); or the key is unreachable.
        """
        match = _TOKEN.fullmatch(token)
        if match is None:
            raise ProviderError(f"a sealed {field} value is malformed", retryable=False)
        version = int(match.group(1))
        try:
            blob = base64.urlsafe_b64decode(match.group(2) + "=" * (-len(match.group(2)) % 4))
        except (binascii.Error, ValueError):
            blob = b""
        if len(blob) < _NONCE_BYTES + _TAG_BYTES:
            raise ProviderError(f"a sealed {field} value is malformed", retryable=False)
        keys = await self._keys_for(clinic_id, version=version)
        sealer = keys.sealers.get(version)
        if sealer is None:
            raise ProviderError(f"a sealed {field} value names no data key of its clinic",
                                retryable=False)  # fmt: skip
        aad = _aad(clinic_id, field, record_id, version)
        try:
            plaintext = sealer.decrypt(blob[:_NONCE_BYTES], blob[_NONCE_BYTES:], aad)
        except InvalidTag:
            raise ProviderError(
                f"a sealed {field} value failed its integrity check: altered, or sealed for"
                " another clinic, field or record",
                retryable=False,
            ) from None
        return plaintext.decode()

    async def blind_index(self, clinic_id: str, field: str, value: str) -> str:
        """A keyed hash of ``value`` for equality lookups: HMAC-SHA256, 64 hex digits.

        Equal for equal ``(clinic_id, field, value)``, unrelated across clinics and
        fields. The caller normalizes ``value`` first (case, spacing), as lookups need.
        """
        keys = await self._keys_for(clinic_id)
        message = json.dumps([field, value], separators=(",", ":")).encode()
        return hmac.new(keys.index_key, message, hashlib.sha256).hexdigest()

    async def rotate_kek(self) -> int:
        """Re-wrap every stored data key not wrapped by the key-encryption key's current
        version; how many were re-wrapped. Sealed data is not touched.

        Run after rotating the key-encryption key. A data key changed meanwhile by another
        process (compare and swap) is left to it.
        """
        rewrapped = 0
        for stored in await self._store.all_data_keys():
            if stored.kek_id == await self._kek_id():
                continue
            data_key = await self._kek.unwrap(stored.wrapped, key_id=stored.kek_id)
            wrapped, kek_id = await self._wrap(data_key)
            new = dataclasses.replace(stored, wrapped=wrapped, kek_id=kek_id)
            rewrapped += await self._store.replace_wrap(stored, new)
        return rewrapped

    async def _wrap(self, data_key: bytes) -> tuple[bytes, str]:
        """``data_key`` wrapped, and the id of the key version that wrapped it."""
        for _ in range(_WRAP_ATTEMPTS):
            before = await self._kek_id()
            wrapped = await self._kek.wrap(data_key)
            if await self._kek_id() == before:  # versions only move forward: this one wrapped
                return wrapped, before
        raise ProviderError("the key-encryption key kept rotating during a wrap", retryable=True)

    async def _kek_id(self) -> str:
        # In a worker thread: a local key file reads its folder on first use.
        return await asyncio.to_thread(lambda: self._kek.key_id)

    async def _keys_for(self, clinic_id: str, *, version: int | None = None) -> _ClinicKeys:
        """The clinic's unwrapped keys, from the cache or the store (made on first use).

        ``version``: a data key version the caller needs; missing from the cache, the
        store is read again (another process may have added it).
        """
        cached = self._cache.get(clinic_id)
        if cached is not None and (version is None or version in cached.sealers):
            self._cache.move_to_end(clinic_id)
            return cached
        stored = await self._store.data_keys(clinic_id)
        known: dict[int, bytes] = {}
        if not stored:
            data_key = os.urandom(DATA_KEY_BYTES)
            wrapped, kek_id = await self._wrap(data_key)
            if await self._store.add_data_key(WrappedDataKey(clinic_id, 1, wrapped, kek_id)):
                known[1] = data_key
            stored = await self._store.data_keys(clinic_id)  # ours, or the racer's that won
        if not stored:
            raise ProviderError("the data key store lost a clinic's data key", retryable=True)
        for key in stored:
            if key.version not in known:
                known[key.version] = await self._kek.unwrap(key.wrapped, key_id=key.kek_id)
        keys = _ClinicKeys(
            sealers={v: AESGCM(_derive(k, _SEAL_INFO)) for v, k in known.items()},
            current=max(known),
            index_key=_derive(known[min(known)], _INDEX_INFO),
        )
        self._cache[clinic_id] = keys
        self._cache.move_to_end(clinic_id)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return keys
