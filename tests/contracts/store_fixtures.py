"""Store fixtures: every :class:`~reddytalk.ports.CallStore` the contract suite asks.

``store_backend`` is parametrized over the SQLite store (a file in the test's tmp)
and the Cosmos DB store against the loopback Cosmos DB REST server of
``tests/servers/cosmos`` (one database per test, so tests share nothing). A backend
opens any number of stores over the same records, as separate processes would. Both
seal PHI as they do in production: data keys in the store (the ``data_keys`` table or
container), wrapped by a local key file in the test's tmp (Key Vault's stand-in); the
cipher is the real one, counting the values it opens (``StoreBackend.phi_opens``), so a
test can tell a read that opens no PHI from one that does.

``data_keys_backend`` is parametrized the same way over the
:class:`~reddytalk.phi.DataKeyStore` implementations, the in-memory double included.

The server is started once per session (``cosmos_server``) and only when a Cosmos
test runs. It needs ``npm ci --prefix tests/servers/cosmos``; without it the Cosmos
tests fail and say so, they are never skipped.
"""

from __future__ import annotations

import asyncio
import json
import selectors
import shutil
import ssl
import subprocess
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal, Protocol

import pytest
from local_acs import make_tls

from reddytalk.phi import DataKeyStore, LocalKeyFile, MemoryDataKeys, PhiCipher
from reddytalk.ports import CallStore, KeyEncryptionKey
from reddytalk.providers.store.cosmos import CosmosStore
from reddytalk.providers.store.cosmos_account import ensure_containers, new_client
from reddytalk.providers.store.cosmos_keys import CosmosDataKeys
from reddytalk.providers.store.sqlite import SqliteStore
from reddytalk.providers.store.sqlite_db import SqliteDb
from reddytalk.providers.store.sqlite_keys import SqliteDataKeys

__all__ = [
    "EMULATOR_KEY",
    "ContractStore",
    "CosmosServer",
    "DataKeysBackend",
    "PhiOpens",
    "StoreBackend",
    "cosmos_data_keys",
    "cosmos_server_fixture",
    "data_keys_backend_fixture",
    "open_cosmos_store",
    "run_with_store",
    "store_backend_fixture",
]

SERVER_DIR = Path(__file__).resolve().parents[1] / "servers" / "cosmos"
NPM_INSTALL = "npm ci --prefix tests/servers/cosmos"

EMULATOR_KEY = (
    "C2y6yDjf5/R+ob0N8A7Cgv30VRDJIWEHLM+4QDU5DE2nQ9nDuVTqobD4b8mGGyPMbIZnqyMsEcaGQy67XIw/Jw=="
)
"""The Azure Cosmos DB emulator's published master key (the loopback server checks none)."""

_STARTUP_TIMEOUT_S = 20.0


class ContractStore(CallStore, Protocol):
    """The port, and what the tests use beyond it (nothing now: ``audit_trail``, once
    beyond it, is on the port)."""


@dataclass
class PhiOpens:
    """How many sealed values the stores of one backend have asked their cipher to open."""

    count: int = 0


class _CountingCipher(PhiCipher):
    """The real cipher, counting each value it opens (a subclass, not a patch: the store
    gets it as it gets any cipher)."""

    def __init__(self, *, kek: KeyEncryptionKey, keys: DataKeyStore, opens: PhiOpens) -> None:
        super().__init__(kek=kek, keys=keys)
        self._opens = opens

    async def open(self, clinic_id: str, field: str, token: str, *, record_id: str = "") -> str:
        self._opens.count += 1
        return await super().open(clinic_id, field, token, record_id=record_id)


@dataclass(frozen=True, slots=True)
class CosmosServer:
    """A running loopback Cosmos DB server and the certificate to trust for it."""

    endpoint: str
    ca_file: str

    def lose_next_response(self, *, method: str, path: str, how: Literal["drop", "garble"]) -> None:
        """Have the server carry out the next ``method`` request whose path contains
        ``path``, then lose its response: close the connection, or answer non-HTTP."""
        request = urllib.request.Request(
            f"{self.endpoint}_faults/lose-response",
            data=json.dumps({"method": method, "path": path, "how": how}).encode(),
            method="POST",
        )
        context = ssl.create_default_context(cafile=self.ca_file)
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            assert response.status == 204


@dataclass(frozen=True, slots=True)
class StoreBackend:
    """One kind of store over one set of records; ``open()`` opens one more store on them.

    ``phi_opens`` counts the sealed values every store it opened was asked to open.
    """

    kind: str
    open: Callable[[], AbstractAsyncContextManager[ContractStore]]
    phi_opens: PhiOpens = field(default_factory=PhiOpens)


@dataclass(frozen=True, slots=True)
class DataKeysBackend:
    """One kind of data key store over one set of keys; ``open()`` opens one more on them."""

    kind: str
    open: Callable[[], AbstractAsyncContextManager[DataKeyStore]]


def run_with_store(
    backend: StoreBackend, scenario: Callable[[ContractStore], Awaitable[None]]
) -> None:
    """Run ``scenario`` with a store of ``backend``, in one event loop."""

    async def main() -> None:
        async with backend.open() as store:
            await scenario(store)

    asyncio.run(main())


@pytest.fixture(scope="session", name="cosmos_server")
def cosmos_server_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CosmosServer]:
    """``node tests/servers/cosmos/server.mjs`` on 127.0.0.1, HTTPS, for the session."""
    if not (SERVER_DIR / "node_modules" / "@vercel" / "cosmosdb-server").is_dir():
        pytest.fail(
            f"the Cosmos DB test server is not installed: run `{NPM_INSTALL}`", pytrace=False
        )
    node = shutil.which("node")
    if node is None:
        pytest.fail(
            "`node` (Node.js 20) is not on PATH: the Cosmos DB test server needs it",
            pytrace=False,
        )
    folder = tmp_path_factory.mktemp("cosmos")
    tls = make_tls(folder)
    log = folder / "server.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [node, str(SERVER_DIR / "server.mjs"), "--port", "0"]
            + ["--cert", str(tls.cert_file), "--key", str(tls.key_file)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
        )
    try:
        port = _read_port(process, log)
        yield CosmosServer(endpoint=f"https://127.0.0.1:{port}/", ca_file=str(tls.cert_file))
    finally:
        _stop(process)


@pytest.fixture(params=["sqlite", "cosmos"], name="store_backend")
def store_backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> StoreBackend:
    """A fresh, empty set of records in each kind of store."""
    opens = PhiOpens()
    if request.param == "sqlite":
        path = tmp_path / "reddytalk.sqlite3"
        return StoreBackend("sqlite", lambda: _open_sqlite(path, opens), opens)
    server: CosmosServer = request.getfixturevalue("cosmos_server")
    database = f"contract-{uuid.uuid4().hex[:12]}"
    key_dir = tmp_path / "keys"
    return StoreBackend("cosmos", lambda: _open_cosmos(server, database, key_dir, opens), opens)


@pytest.fixture(params=["memory", "sqlite", "cosmos"], name="data_keys_backend")
def data_keys_backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> DataKeysBackend:
    """A fresh, empty set of data keys in each kind of data key store."""
    if request.param == "memory":
        keys = MemoryDataKeys()  # one process only: every open() is the same dict

        @asynccontextmanager
        async def same_memory() -> AsyncIterator[DataKeyStore]:
            yield keys

        return DataKeysBackend("memory", same_memory)
    if request.param == "sqlite":
        path = tmp_path / "reddytalk.sqlite3"
        return DataKeysBackend("sqlite", lambda: _sqlite_data_keys(path))
    server: CosmosServer = request.getfixturevalue("cosmos_server")
    database = f"keys-{uuid.uuid4().hex[:12]}"
    return DataKeysBackend("cosmos", lambda: cosmos_data_keys(server, database))


@asynccontextmanager
async def cosmos_data_keys(server: CosmosServer, database: str) -> AsyncIterator[CosmosDataKeys]:
    """The data keys of ``database`` on the server (the database and containers made first)."""
    async with new_client(
        endpoint=server.endpoint, credential=EMULATOR_KEY, ca_file=server.ca_file
    ) as client:
        await ensure_containers(client, database)
    async with CosmosDataKeys(
        endpoint=server.endpoint, credential=EMULATOR_KEY, database=database, ca_file=server.ca_file
    ) as keys:
        yield keys


@asynccontextmanager
async def open_cosmos_store(
    server: CosmosServer, database: str, *, cipher: PhiCipher
) -> AsyncIterator[CosmosStore]:
    """A Cosmos DB store on ``database`` sealing with ``cipher`` (containers made first)."""
    store = await CosmosStore.connect(
        endpoint=server.endpoint,
        credential=EMULATOR_KEY,
        database=database,
        cipher=cipher,
        ca_file=server.ca_file,
        create_containers=True,
    )
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _open_sqlite(path: Path, opens: PhiOpens) -> AsyncIterator[ContractStore]:
    db = SqliteDb(path)
    # PHI sealed as on the embedded profile: a key folder next to the file.
    kek = LocalKeyFile(path.parent / "keys")
    cipher = _CountingCipher(kek=kek, keys=SqliteDataKeys(db=db), opens=opens)
    try:
        yield SqliteStore(db=db, cipher=cipher)
    finally:
        db.close()


@asynccontextmanager
async def _sqlite_data_keys(path: Path) -> AsyncIterator[DataKeyStore]:
    db = SqliteDb(path)
    try:
        yield SqliteDataKeys(db=db)
    finally:
        db.close()


@asynccontextmanager
async def _open_cosmos(
    server: CosmosServer, database: str, key_dir: Path, opens: PhiOpens
) -> AsyncIterator[ContractStore]:
    # PHI sealed as on the cloud profile: data keys in the account, wrapped by a key kept
    # apart from it (a key folder standing in for Key Vault).
    async with cosmos_data_keys(server, database) as keys:
        cipher = _CountingCipher(kek=LocalKeyFile(key_dir), keys=keys, opens=opens)
        async with open_cosmos_store(server, database, cipher=cipher) as store:
            yield store


def _read_port(process: subprocess.Popen[bytes], log: Path) -> int:
    """The port the server prints once it listens; fails the test if it never does."""
    stdout: IO[bytes] | None = process.stdout
    assert stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        line = stdout.readline() if selector.select(_STARTUP_TIMEOUT_S) else b""
    if not line.strip().isdigit():
        _stop(process)
        output = log.read_text(errors="replace")[-2000:]
        pytest.fail(f"the Cosmos DB test server did not start:\n{output}", pytrace=False)
    return int(line)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None:
        process.stdin.close()  # the server stops when its stdin closes
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()
