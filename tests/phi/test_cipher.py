"""The PHI cipher: sealing, binding, tampering, data keys, blind indexes, rotation, key files."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from reddytalk.composition import build_phi_cipher
from reddytalk.errors import ProviderError
from reddytalk.phi import DataKeyStore, LocalKeyFile, MemoryDataKeys, PhiCipher, WrappedDataKey
from reddytalk.providers.store.sqlite_db import SqliteDb
from reddytalk.providers.store.sqlite_keys import SqliteDataKeys

CLINIC = "reddy-family-clinic"
OTHER_CLINIC = "other-clinic"
FIELD = "patient.birth_date"


@pytest.fixture(params=["memory", "sqlite"])
def keys(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DataKeyStore]:
    """Where the wrapped data keys are kept: the in-memory double, and the SQLite table."""
    if request.param == "memory":
        yield MemoryDataKeys()
        return
    with SqliteDb(tmp_path / "reddytalk.sqlite3") as db:
        yield SqliteDataKeys(db=db)


@pytest.fixture
def kek(tmp_path: Path) -> LocalKeyFile:
    return LocalKeyFile(tmp_path / "keys")


@pytest.fixture
def cipher(kek: LocalKeyFile, keys: DataKeyStore) -> PhiCipher:
    return PhiCipher(kek=kek, keys=keys)


def _seal(cipher: PhiCipher, value: str, clinic: str = CLINIC, field: str = FIELD) -> str:
    return asyncio.run(cipher.seal(clinic, field, value))


def _open(cipher: PhiCipher, token: str, clinic: str = CLINIC, field: str = FIELD) -> str:
    return asyncio.run(cipher.open(clinic, field, token))


# -- sealing -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["1980-03-15", "", "María José Ñúñez 🙂", "x" * 10_000])
def test_a_sealed_value_opens_to_itself(cipher: PhiCipher, value: str) -> None:
    token = _seal(cipher, value)

    assert token.startswith("v1.1.")
    assert token.isascii() and " " not in token
    assert _open(cipher, token) == value


def test_sealing_twice_gives_different_tokens(cipher: PhiCipher) -> None:
    first, second = _seal(cipher, "Robert Taylor"), _seal(cipher, "Robert Taylor")

    assert first != second  # a fresh nonce each time: equal values do not show as equal


@pytest.mark.parametrize(
    ("clinic", "field", "record_id"),
    [
        (OTHER_CLINIC, FIELD, "pat_1"),  # moved to another clinic
        (CLINIC, "patient.phone", "pat_1"),  # moved to another field
        (CLINIC, FIELD, "pat_2"),  # moved to another record
    ],
)
def test_a_token_moved_elsewhere_does_not_open(
    cipher: PhiCipher, clinic: str, field: str, record_id: str
) -> None:
    token = asyncio.run(cipher.seal(CLINIC, FIELD, "1980-03-15", record_id="pat_1"))
    asyncio.run(cipher.seal(OTHER_CLINIC, FIELD, "made so the other clinic has a key"))

    with pytest.raises(ProviderError, match="integrity check") as caught:
        asyncio.run(cipher.open(clinic, field, token, record_id=record_id))
    assert caught.value.retryable is False
    assert asyncio.run(cipher.open(CLINIC, FIELD, token, record_id="pat_1")) == "1980-03-15"


def _flip(token: str, position: int) -> str:
    prefix, body = token.rsplit(".", 1)
    raw = bytearray(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    raw[position] ^= 0x01
    return f"{prefix}.{base64.urlsafe_b64encode(bytes(raw)).rstrip(b'=').decode()}"


@pytest.mark.parametrize("position", [0, 12, -1], ids=["nonce", "ciphertext", "tag"])
def test_a_tampered_token_does_not_open(cipher: PhiCipher, position: int) -> None:
    token = _seal(cipher, "Robert Taylor")

    with pytest.raises(ProviderError, match="integrity check") as caught:
        _open(cipher, _flip(token, position))
    assert caught.value.retryable is False
    assert "Robert" not in str(caught.value)


@pytest.mark.parametrize(
    "token", ["", "Robert Taylor", "v2.1.AAAA", "v1.1.", "v1.x.AAAA", "v1.1.AA!A", "v1.1.AAAA"]
)
def test_a_malformed_token_is_a_clear_error(cipher: PhiCipher, token: str) -> None:
    with pytest.raises(ProviderError, match=f"sealed {FIELD} value is malformed") as caught:
        _open(cipher, token)
    assert caught.value.retryable is False


def test_a_token_naming_an_unknown_key_version_does_not_open(cipher: PhiCipher) -> None:
    token = _seal(cipher, "Robert Taylor")

    with pytest.raises(ProviderError, match="no data key"):
        _open(cipher, token.replace("v1.1.", "v1.2.", 1))


# -- data keys ---------------------------------------------------------------------------


def test_each_clinic_gets_one_data_key_that_is_reused(
    tmp_path: Path, cipher: PhiCipher, kek: LocalKeyFile, keys: DataKeyStore
) -> None:
    ours = [_seal(cipher, f"value {n}") for n in range(3)]
    theirs = _seal(cipher, "theirs", clinic=OTHER_CLINIC)

    stored = asyncio.run(keys.all_data_keys())
    assert [(k.clinic_id, k.version, k.kek_id) for k in stored] == [
        (OTHER_CLINIC, 1, kek.key_id),
        (CLINIC, 1, kek.key_id),
    ]
    # Another process (a fresh cache) opens everything with the stored keys.
    fresh = PhiCipher(kek=LocalKeyFile(tmp_path / "keys"), keys=keys)
    assert [_open(fresh, token) for token in ours] == ["value 0", "value 1", "value 2"]
    assert _open(fresh, theirs, clinic=OTHER_CLINIC) == "theirs"
    assert len(asyncio.run(keys.all_data_keys())) == 2


def test_ciphers_racing_for_a_new_clinic_agree_on_one_data_key(
    kek: LocalKeyFile, keys: DataKeyStore
) -> None:
    ciphers = [PhiCipher(kek=kek, keys=keys) for _ in range(4)]  # four processes' caches

    async def race() -> list[str]:
        return list(
            await asyncio.gather(*(c.seal(CLINIC, FIELD, f"v{n}") for n, c in enumerate(ciphers)))
        )

    tokens = asyncio.run(race())

    assert len(asyncio.run(keys.data_keys(CLINIC))) == 1
    for cipher in ciphers:
        assert [_open(cipher, t) for t in tokens] == ["v0", "v1", "v2", "v3"]


def test_the_cache_is_bounded_and_reloads_what_it_dropped(
    kek: LocalKeyFile, keys: DataKeyStore
) -> None:
    cipher = PhiCipher(kek=kek, keys=keys, cache_size=2)
    tokens = {clinic: _seal(cipher, clinic, clinic=clinic) for clinic in ("a", "b", "c")}

    assert "cached_clinics=2" in repr(cipher)
    assert {c: _open(cipher, t, clinic=c) for c, t in tokens.items()} == {
        "a": "a",
        "b": "b",
        "c": "c",
    }
    assert len(asyncio.run(keys.all_data_keys())) == 3


# -- blind index -------------------------------------------------------------------------


def test_the_blind_index_is_equal_for_equal_values_only(
    tmp_path: Path, cipher: PhiCipher, keys: DataKeyStore
) -> None:
    def index(
        value: str, clinic: str = CLINIC, field: str = "patient.identity", by: PhiCipher = cipher
    ) -> str:
        return asyncio.run(by.blind_index(clinic, field, value))

    robert = '["robert","taylor","1980-03-15"]'
    hashed = index(robert)

    assert len(hashed) == 64 and int(hashed, 16) >= 0
    assert "robert" not in hashed
    assert index(robert) == hashed
    assert index('["robert","taylor","1980-03-16"]') != hashed
    assert index(robert, clinic=OTHER_CLINIC) != hashed
    assert index(robert, field="message.caller_name") != hashed
    another_process = PhiCipher(kek=LocalKeyFile(tmp_path / "keys"), keys=keys)
    assert index(robert, by=another_process) == hashed


# -- rotation ----------------------------------------------------------------------------


def test_rotating_the_kek_rewraps_data_keys_and_leaves_tokens_alone(
    tmp_path: Path, kek: LocalKeyFile, keys: DataKeyStore, cipher: PhiCipher
) -> None:
    tokens = {clinic: _seal(cipher, f"dob of {clinic}", clinic=clinic) for clinic in "ab"}
    index = asyncio.run(cipher.blind_index("a", "patient.identity", "x"))
    before = asyncio.run(keys.all_data_keys())
    old_kek_id = kek.key_id

    new_kek_id = kek.rotate()
    assert new_kek_id != old_kek_id and kek.key_id == new_kek_id
    assert asyncio.run(cipher.rotate_kek()) == 2
    assert asyncio.run(cipher.rotate_kek()) == 0  # nothing left to re-wrap

    after = asyncio.run(keys.all_data_keys())
    assert [k.kek_id for k in after] == [new_kek_id, new_kek_id]
    assert [k.wrapped for k in after] != [k.wrapped for k in before]
    # The old key file is no longer needed: a process holding only the new one opens
    # every token sealed before the rotation, unchanged, and finds the same index.
    (tmp_path / "keys" / "kek-1").unlink()
    fresh = PhiCipher(kek=LocalKeyFile(tmp_path / "keys"), keys=keys)
    assert {c: _open(fresh, t, clinic=c) for c, t in tokens.items()} == {
        "a": "dob of a",
        "b": "dob of b",
    }
    assert asyncio.run(fresh.blind_index("a", "patient.identity", "x")) == index
    # New data keys are wrapped with the new key from now on.
    _seal(fresh, "new", clinic="c")
    assert asyncio.run(keys.data_keys("c"))[0].kek_id == new_kek_id


def test_a_process_that_did_not_rotate_still_unwraps_new_wraps(tmp_path: Path) -> None:
    keys = MemoryDataKeys()
    here, there = LocalKeyFile(tmp_path / "keys"), LocalKeyFile(tmp_path / "keys")
    assert here.key_id == there.key_id  # both read kek-1
    there.rotate()

    token = asyncio.run(PhiCipher(kek=there, keys=keys).seal(CLINIC, FIELD, "x"))
    assert _open(PhiCipher(kek=here, keys=keys), token) == "x"  # here finds kek-2 on disk


def test_a_compare_and_swap_loser_leaves_the_winners_wrap(tmp_path: Path) -> None:
    keys = MemoryDataKeys()
    stored = WrappedDataKey(CLINIC, 1, b"w" * 40, "local:old")
    asyncio.run(keys.add_data_key(stored))
    winner = WrappedDataKey(CLINIC, 1, b"n" * 40, "local:new")

    assert asyncio.run(keys.replace_wrap(stored, winner)) is True
    assert asyncio.run(keys.replace_wrap(stored, stored)) is False  # stale: changed meanwhile
    assert asyncio.run(keys.data_keys(CLINIC)) == [winner]


# -- the key files -----------------------------------------------------------------------


def test_the_key_file_is_created_private_on_first_use(tmp_path: Path) -> None:
    kek = LocalKeyFile(tmp_path / "keys")
    assert not (tmp_path / "keys").exists()  # nothing until it is used

    key_id = kek.key_id

    key_file = tmp_path / "keys" / "kek-1"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert key_file.stat().st_size == 32
    assert key_id.startswith("local:") and len(key_id) == len("local:") + 8
    assert sorted(os.listdir(tmp_path / "keys")) == ["kek-1"]  # no temporary left behind


def test_processes_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    keks = [LocalKeyFile(tmp_path / "keys") for _ in range(8)]
    ids: list[str] = []
    start = threading.Barrier(len(keks))

    def first_use(kek: LocalKeyFile) -> None:
        start.wait()
        ids.append(kek.key_id)

    threads = [threading.Thread(target=first_use, args=(kek,)) for kek in keks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 1 and len(ids) == len(keks)
    assert sorted(os.listdir(tmp_path / "keys")) == ["kek-1"]


def test_a_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    LocalKeyFile(tmp_path / "keys").key_id  # noqa: B018 - creates kek-1
    (tmp_path / "keys" / "kek-1").chmod(0o644)

    with pytest.raises(ProviderError, match="chmod 600") as caught:
        LocalKeyFile(tmp_path / "keys").key_id  # noqa: B018
    assert caught.value.retryable is False
    assert "kek-1" in str(caught.value) and "644" in str(caught.value)
    with pytest.raises(ProviderError, match="chmod 600"):
        asyncio.run(LocalKeyFile(tmp_path / "keys").wrap(bytes(32)))


def test_a_key_folder_others_may_write_to_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    (tmp_path / "keys").chmod(0o777)

    with pytest.raises(ProviderError, match="chmod 700"):
        LocalKeyFile(tmp_path / "keys").key_id  # noqa: B018


def test_a_key_file_that_is_not_a_key_is_refused(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir(mode=0o700)
    fd = os.open(tmp_path / "keys" / "kek-1", os.O_WRONLY | os.O_CREAT, 0o600)
    os.write(fd, b"too short")
    os.close(fd)

    with pytest.raises(ProviderError, match="32-byte key"):
        LocalKeyFile(tmp_path / "keys").key_id  # noqa: B018


def test_a_wrap_from_another_key_is_refused(tmp_path: Path) -> None:
    ours, theirs = LocalKeyFile(tmp_path / "ours"), LocalKeyFile(tmp_path / "theirs")
    wrapped = asyncio.run(theirs.wrap(bytes(range(32))))

    assert asyncio.run(theirs.unwrap(wrapped, key_id=theirs.key_id)) == bytes(range(32))
    with pytest.raises(ProviderError, match="no key file") as unknown:
        asyncio.run(ours.unwrap(wrapped, key_id=theirs.key_id))
    with pytest.raises(ProviderError, match="does not unwrap") as foreign:
        asyncio.run(ours.unwrap(wrapped, key_id=ours.key_id))
    assert unknown.value.retryable is False and foreign.value.retryable is False


# -- nothing secret shows ----------------------------------------------------------------


def _encodings(secret: bytes) -> list[str]:
    return [
        secret.hex(),
        secret.hex().upper(),
        base64.b64encode(secret).decode().rstrip("="),
        base64.urlsafe_b64encode(secret).decode().rstrip("="),
        repr(secret)[2:-1],
    ]


def test_no_key_shows_in_a_repr(tmp_path: Path) -> None:
    with SqliteDb(tmp_path / "reddytalk.sqlite3") as db:
        cipher = build_phi_cipher(db, key_dir=tmp_path / "keys")
        token = asyncio.run(cipher.seal(CLINIC, FIELD, "1980-03-15"))
        kek = LocalKeyFile(tmp_path / "keys")
        [stored] = asyncio.run(SqliteDataKeys(db=db).data_keys(CLINIC))
        data_key = asyncio.run(kek.unwrap(stored.wrapped, key_id=stored.kek_id))
        kek_bytes = (tmp_path / "keys" / "kek-1").read_bytes()

        shown = " ".join(
            [repr(cipher), str(cipher), repr(kek), repr(stored), repr(SqliteDataKeys(db=db))]
        )
        for secret in (data_key, kek_bytes, stored.wrapped):
            for text in _encodings(secret):
                assert text[:16] not in shown
        assert "1980" not in shown and token not in shown
