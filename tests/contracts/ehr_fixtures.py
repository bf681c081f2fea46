"""EHR fixtures: every :class:`~reddytalk.ports.Ehr` the contract suite asks.

``ehr_backend`` is parametrized over the embedded EHR (a SQLite file in the test's tmp,
seeded by ``seed_demo``) and :class:`~reddytalk.providers.ehr.fhir.FhirEhr` against the
loopback Medplum FHIR server of ``tests/servers/fhir`` (emptied and seeded by
``seed_fhir_demo`` for each test). Both hold the same demo clinic, seeded for
``TODAY``, and both judge time by a fixed clock (``NOW`` unless a test opens one with
another). A backend opens any number of EHRs over the same records, as separate
processes would.

The server is started once per session (``fhir_server``), wants a bearer token (so
every request of the suite goes through the auth path), and runs only when a FHIR test
runs. It needs ``npm ci --prefix tests/servers/fhir``; without it the FHIR tests fail
and say so, they are never skipped.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from zoneinfo import ZoneInfo

import pytest

from reddytalk.composition import open_embedded_records
from reddytalk.ports import Ehr
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_seed import seed_fhir_clinic, seed_fhir_demo
from reddytalk.providers.seed import seed_demo
from reddytalk.scheduling.model import Appointment, Clinic
from reddytalk.settings import Settings
from tests.servers.fhir.launch import FhirServer, running_fhir_server

__all__ = [
    "CHICAGO",
    "NOW",
    "TODAY",
    "ContractEhr",
    "EhrBackend",
    "StaticToken",
    "ehr_backend_fixture",
    "fhir_server_fixture",
]

CHICAGO = ZoneInfo("America/Chicago")
TODAY = dt.date(2026, 3, 2)  # a Monday; daylight saving time starts on Sunday 2026-03-08
NOW = dt.datetime(2026, 3, 2, 6, 0, tzinfo=CHICAGO)  # before the clinic opens


class ContractEhr(Ehr, Protocol):
    """The port, and what the tests use beyond it (both EHRs have it)."""

    async def get_appointment(self, appointment_id: str) -> Appointment | None: ...


@dataclass(frozen=True, slots=True)
class EhrBackend:
    """One kind of EHR over one set of records; ``open(now)`` opens one more EHR on them,
    ``add_clinic`` registers another clinic (its providers, no slots)."""

    kind: str
    open: Callable[[dt.datetime], AbstractAsyncContextManager[ContractEhr]]
    add_clinic: Callable[[Clinic], None]

    def run(
        self, scenario: Callable[[ContractEhr], Awaitable[None]], *, now: dt.datetime = NOW
    ) -> None:
        """Run ``scenario`` with an EHR of this backend whose clock says ``now``, in one
        event loop."""

        async def main() -> None:
            async with self.open(now) as ehr:
                await scenario(ehr)

        asyncio.run(main())


class StaticToken:
    """A token provider that always has the same token (the server's)."""

    def __init__(self, token: str) -> None:
        self._token = token

    async def access_token(self) -> str:
        return self._token

    def expire(self, token: str) -> None:
        pass


@pytest.fixture(scope="session", name="fhir_server")
def fhir_server_fixture() -> Iterator[FhirServer]:
    """``node tests/servers/fhir/server.mjs`` on 127.0.0.1, wanting a token, for the session."""
    with running_fhir_server(token=secrets.token_urlsafe(24)) as server:
        yield server


@pytest.fixture(params=["embedded", "fhir"], name="ehr_backend")
def ehr_backend_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> EhrBackend:
    """The demo clinic, freshly seeded for ``TODAY``, in each kind of EHR."""
    if request.param == "embedded":
        settings = Settings(data_dir=tmp_path)

        def save_clinic(clinic: Clinic) -> None:
            with open_embedded_records(settings, now=lambda: NOW) as records:
                asyncio.run(records.store.save_clinic(clinic))

        with open_embedded_records(settings, now=lambda: NOW) as records:
            asyncio.run(seed_demo(records.store, records.ehr, today=TODAY))
        return EhrBackend("embedded", lambda now: _open_embedded(settings, now), save_clinic)
    server: FhirServer = request.getfixturevalue("fhir_server")
    server.reset()

    async def seed(clinic: Clinic | None) -> None:
        async with _open_fhir(server, NOW) as ehr:
            if clinic is None:
                await seed_fhir_demo(ehr, today=TODAY)
            else:
                await seed_fhir_clinic(ehr, clinic)

    asyncio.run(seed(None))
    return EhrBackend(
        "fhir", lambda now: _open_fhir(server, now), lambda clinic: asyncio.run(seed(clinic))
    )


@asynccontextmanager
async def _open_embedded(settings: Settings, now: dt.datetime) -> AsyncIterator[ContractEhr]:
    with open_embedded_records(settings, now=lambda: now) as records:
        yield records.ehr


@asynccontextmanager
async def _open_fhir(server: FhirServer, now: dt.datetime) -> AsyncIterator[FhirEhr]:
    async with FhirEhr(
        base_url=server.base_url, token_provider=StaticToken(server.token), now=lambda: now
    ) as ehr:
        yield ehr
