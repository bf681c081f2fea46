"""The data key store contract: what every :class:`~reddytalk.phi.DataKeyStore` promises.

One suite, run on the in-memory double, the SQLite table and the Cosmos DB container
(the loopback Cosmos DB REST server), with the same assertions. Where "another
process" matters, a second store is opened over the same keys (the in-memory double
has one process only: its second store is the first). What the cipher does with a
store is ``tests/phi/test_cipher.py``'s; the tests at the end are the Cosmos DB
adapter's own (writes whose response was lost).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import uuid
from collections.abc import Awaitable, Callable
from typing import Literal

import pytest
from store_fixtures import (  # the fixtures are found by pytest in this module's namespace
    CosmosServer,
    DataKeysBackend,
    cosmos_data_keys,
    cosmos_server_fixture,  # noqa: F401
    data_keys_backend_fixture,  # noqa: F401
)

from reddytalk.phi import DataKeyStore, WrappedDataKey

CLINIC = "reddy-family-clinic"
OTHER_CLINIC = "other-clinic"
OLD_KEK = "https://kv.example/keys/kek/1111"
NEW_KEK = "https://kv.example/keys/kek/2222"


def _key(version: int = 1, *, clinic: str = CLINIC, kek_id: str = OLD_KEK) -> WrappedDataKey:
    return WrappedDataKey(clinic, version, os.urandom(40), kek_id)


def _run(
    backend: DataKeysBackend, scenario: Callable[[DataKeyStore, DataKeyStore], Awaitable[None]]
) -> None:
    """Run ``scenario`` with two stores of ``backend`` over the same keys (two processes)."""

    async def main() -> None:
        async with backend.open() as keys, backend.open() as other:
            await scenario(keys, other)

    asyncio.run(main())


def test_a_new_clinic_has_no_data_keys(data_keys_backend: DataKeysBackend) -> None:
    async def scenario(keys: DataKeyStore, _other: DataKeyStore) -> None:
        assert await keys.data_keys(CLINIC) == []
        assert await keys.all_data_keys() == []

    _run(data_keys_backend, scenario)


def test_a_key_is_added_unless_its_version_is_kept(data_keys_backend: DataKeysBackend) -> None:
    first, second = _key(1), _key(1, kek_id=NEW_KEK)

    async def scenario(keys: DataKeyStore, other: DataKeyStore) -> None:
        assert await keys.add_data_key(first) is True
        assert await other.add_data_key(second) is False
        # The same key again (as another process would send it: equal, not identical).
        assert await keys.add_data_key(dataclasses.replace(first)) is False

        assert await other.data_keys(CLINIC) == [first]
        assert await keys.data_keys(OTHER_CLINIC) == []

    _run(data_keys_backend, scenario)


def test_racing_adds_of_one_version_keep_one(data_keys_backend: DataKeysBackend) -> None:
    candidates = [_key(1) for _ in range(6)]

    async def scenario(keys: DataKeyStore, other: DataKeyStore) -> None:
        stores = [keys, other] * 3
        kept = await asyncio.gather(
            *(s.add_data_key(k) for s, k in zip(stores, candidates, strict=True))
        )

        assert sum(kept) == 1
        assert await keys.data_keys(CLINIC) == [candidates[kept.index(True)]]

    _run(data_keys_backend, scenario)


def test_a_clinic_s_keys_come_oldest_version_first(data_keys_backend: DataKeysBackend) -> None:
    v1, v2, v3 = _key(1), _key(2), _key(3)

    async def scenario(keys: DataKeyStore, other: DataKeyStore) -> None:
        for key in (v2, v3, v1):
            assert await keys.add_data_key(key) is True

        assert await other.data_keys(CLINIC) == [v1, v2, v3]

    _run(data_keys_backend, scenario)


def test_all_data_keys_are_every_clinic_s_by_clinic_and_version(
    data_keys_backend: DataKeysBackend,
) -> None:
    ours = [_key(1), _key(2)]
    theirs = [_key(1, clinic=OTHER_CLINIC)]
    odd = [_key(1, clinic="clínica/ñ 1+2")]  # a clinic id is any text

    async def scenario(keys: DataKeyStore, other: DataKeyStore) -> None:
        for key in (ours[1], *theirs, *odd, ours[0]):
            assert await keys.add_data_key(key) is True

        assert await other.all_data_keys() == sorted(
            ours + theirs + odd, key=lambda k: (k.clinic_id, k.version)
        )
        assert await other.data_keys("clínica/ñ 1+2") == odd

    _run(data_keys_backend, scenario)


def test_a_wrap_is_replaced_only_in_place_of_the_expected_one(
    data_keys_backend: DataKeysBackend,
) -> None:
    stored, untouched = _key(1), _key(2)
    rewrapped = _key(1, kek_id=NEW_KEK)

    async def scenario(keys: DataKeyStore, other: DataKeyStore) -> None:
        await keys.add_data_key(stored)
        await keys.add_data_key(untouched)

        assert await keys.replace_wrap(stored, rewrapped) is True
        assert await other.data_keys(CLINIC) == [rewrapped, untouched]
        # Stale: ``stored`` is no longer what is kept, so a second swap from it fails.
        assert await other.replace_wrap(stored, _key(1, kek_id=NEW_KEK)) is False
        assert await keys.replace_wrap(untouched, _key(2, kek_id=NEW_KEK)) is True
        assert await keys.replace_wrap(_key(7), _key(7, kek_id=NEW_KEK)) is False  # none kept
        assert (await keys.data_keys(CLINIC))[0] == rewrapped
        assert len(await keys.all_data_keys()) == 2

    _run(data_keys_backend, scenario)


def test_racing_swaps_of_one_wrap_let_one_win(data_keys_backend: DataKeysBackend) -> None:
    stored = _key(1)
    rewraps = [_key(1, kek_id=NEW_KEK) for _ in range(6)]

    async def scenario(keys: DataKeyStore, other: DataKeyStore) -> None:
        await keys.add_data_key(stored)
        stores = [keys, other] * 3
        swapped = await asyncio.gather(
            *(s.replace_wrap(stored, new) for s, new in zip(stores, rewraps, strict=True))
        )

        assert sum(swapped) == 1
        assert await keys.data_keys(CLINIC) == [rewraps[swapped.index(True)]]

    _run(data_keys_backend, scenario)


# -- the Cosmos DB adapter's own promises, apart from the contract ---------------------


@pytest.mark.parametrize("how", ["drop", "garble"])
def test_a_cosmos_key_write_whose_response_was_lost_still_counts_as_done(
    cosmos_server: CosmosServer, how: Literal["drop", "garble"]
) -> None:
    # The write lands, its response is lost, the SDK sends it again and gets 409 (the
    # create) or 412 (the replace: the ETag moved, by this very write). Either must be
    # seen as done, or the cipher would think another process made or re-wrapped the key.
    database = f"lost-keys-{uuid.uuid4().hex[:12]}"
    stored, rewrapped = _key(1), _key(1, kek_id=NEW_KEK)
    documents = f"/dbs/{database}/colls/data_keys/docs"

    async def scenario() -> None:
        async with cosmos_data_keys(cosmos_server, database) as keys:
            cosmos_server.lose_next_response(method="POST", path=documents, how=how)
            assert await keys.add_data_key(stored) is True
            cosmos_server.lose_next_response(method="PUT", path=f"{documents}/1", how=how)
            assert await keys.replace_wrap(stored, rewrapped) is True
            assert await keys.data_keys(CLINIC) == [rewrapped]

    asyncio.run(scenario())


def test_a_cosmos_data_key_store_shows_no_key(cosmos_server: CosmosServer) -> None:
    database = f"repr-{uuid.uuid4().hex[:12]}"

    async def scenario() -> str:
        async with cosmos_data_keys(cosmos_server, database) as keys:
            await keys.add_data_key(key)
            [stored] = await keys.data_keys(CLINIC)
            return f"{keys!r} {stored!r}"

    key = _key(1)
    shown = asyncio.run(scenario())
    assert key.wrapped.hex()[:16] not in shown and "wrapped=" not in shown
