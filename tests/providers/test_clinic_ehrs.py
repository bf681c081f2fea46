"""ClinicEhrs sends each request to its clinic's EHR: the deployment's (the embedded one
here), or the FHIR server the clinic's file names, signed in with the client credentials
in the secret it names (a loopback token endpoint handing out the server's token)."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from reddytalk.composition import open_embedded_records
from reddytalk.errors import ProviderError
from reddytalk.providers.ehr.clinic_ehrs import ClinicEhrs, fhir_credentials
from reddytalk.providers.ehr.embedded import EmbeddedEhr
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_seed import seed_fhir_demo
from reddytalk.providers.seed import DEMO_CLINIC_ID, demo_clinic, seed_demo
from reddytalk.scheduling.model import Clinic, EhrConnection
from reddytalk.settings import Settings
from tests.contracts.ehr_fixtures import (
    NOW,
    TODAY,
    StaticToken,
    fhir_server_fixture,  # noqa: F401
)
from tests.providers.test_fhir_auth import Reply, TokenEndpoint, token_endpoint
from tests.servers.fhir.launch import FhirServer

SECRET_NAME = "reddy-ehr-client"
CLIENT_SECRET = "s3cr3t-value-never-shown"


class Secrets:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.asked: list[str] = []

    async def get(self, name: str) -> str | None:
        self.asked.append(name)
        return self.values.get(name)


@dataclass
class Setup:
    router: ClinicEhrs
    embedded: EmbeddedEhr
    fhir: FhirEhr  # the clinic's own server, opened directly to look at what landed there
    clinics: dict[str, Clinic]
    secrets: Secrets
    tokens: TokenEndpoint


def _on_fhir(server: FhirServer) -> Clinic:
    return dataclasses.replace(
        demo_clinic(), ehr=EhrConnection("fhir", server.base_url, SECRET_NAME)
    )


@asynccontextmanager
async def _setup(
    server: FhirServer, tmp_path: Path, *, ttl_s: float = 60.0
) -> AsyncIterator[Setup]:
    """The demo clinic in both the embedded EHR (the deployment's) and the FHIR server;
    its file names the FHIR server."""
    server.reset()
    with open_embedded_records(Settings(data_dir=tmp_path), now=lambda: NOW) as records:
        await seed_demo(records.store, records.ehr, today=TODAY)
        issued = Reply(body={"access_token": server.token, "token_type": "Bearer",
                             "expires_in": 3600})  # fmt: skip
        async with (
            token_endpoint(issued) as tokens,
            FhirEhr(
                base_url=server.base_url, token_provider=StaticToken(server.token), now=lambda: NOW
            ) as fhir,  # fmt: skip
        ):
            await seed_fhir_demo(fhir, today=TODAY)
            credentials = {"token_url": tokens.url, "client_id": "reddytalk",
                           "client_secret": CLIENT_SECRET}  # fmt: skip
            secrets = Secrets({SECRET_NAME: json.dumps(credentials)})
            clinics = {DEMO_CLINIC_ID: _on_fhir(server)}

            async def clinic(clinic_id: str) -> Clinic | None:
                return clinics.get(clinic_id)

            router = ClinicEhrs(default=records.ehr, default_connection=EhrConnection(),
                                clinic=clinic, secrets=secrets, now=lambda: NOW,
                                ttl_s=ttl_s)  # fmt: skip
            try:
                yield Setup(router, records.ehr, fhir, clinics, secrets, tokens)
            finally:
                await router.close()


def _run(
    server: FhirServer, tmp_path: Path, check: Callable[[Setup], Awaitable[None]], **kw: float
) -> None:
    async def main() -> None:
        async with _setup(server, tmp_path, **kw) as setup:
            await check(setup)

    asyncio.run(main())


async def _book_first_slot(router: ClinicEhrs) -> str:
    """Book the demo clinic's first free slot for Robert Taylor; the appointment id."""
    robert = await router.find_patient(
        clinic_id=DEMO_CLINIC_ID,
        given_name="Robert",
        family_name="Taylor",
        birth_date=dt.date(1980, 3, 15),
    )
    assert robert is not None
    [slot, *_] = await router.find_free_slots(
        clinic_id=DEMO_CLINIC_ID, start=NOW, end=NOW + dt.timedelta(days=3), provider_id=None
    )
    await router.hold(
        clinic_id=DEMO_CLINIC_ID,
        slot_id=slot.slot_id,
        hold_key="k1",
        until=NOW + dt.timedelta(minutes=5),
    )
    booked = await router.book(clinic_id=DEMO_CLINIC_ID, slot_id=slot.slot_id,
                               patient_id=robert.patient_id, appointment_type="checkup",
                               idempotency_key="k1")  # fmt: skip
    return booked.appointment_id


def test_a_clinic_on_its_own_fhir_server_books_there_signed_in_with_its_credentials(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    async def check(setup: Setup) -> None:
        appointment_id = await _book_first_slot(setup.router)

        assert await setup.fhir.get_appointment(appointment_id) is not None
        assert await setup.embedded.get_appointment(appointment_id) is None
        [(form, headers)] = setup.tokens.requests  # one sign-in, reused for every request
        assert form["grant_type"] == "client_credentials"
        assert headers["Authorization"].startswith("Basic ")
        assert setup.secrets.asked == [SECRET_NAME]
        upcoming = await setup.router.upcoming_appointments(
            clinic_id=DEMO_CLINIC_ID, patient_id=(await _robert(setup.router)), after=NOW
        )
        assert appointment_id in {a.appointment_id for a in upcoming}
        cancelled = await setup.router.cancel(clinic_id=DEMO_CLINIC_ID,
                                              appointment_id=appointment_id)  # fmt: skip
        assert cancelled.appointment_id == appointment_id

    _run(fhir_server, tmp_path, check)


async def _robert(router: ClinicEhrs) -> str:
    robert = await router.find_patient(
        clinic_id=DEMO_CLINIC_ID,
        given_name="Robert",
        family_name="Taylor",
        birth_date=dt.date(1980, 3, 15),
    )
    assert robert is not None
    return robert.patient_id


def test_a_clinic_on_the_deployments_ehr_and_an_unknown_clinic_stay_there(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    async def check(setup: Setup) -> None:
        setup.clinics[DEMO_CLINIC_ID] = demo_clinic()  # ehr: embedded, the deployment's
        assert await setup.router.ehr_of(DEMO_CLINIC_ID) is setup.embedded
        assert await setup.router.ehr_of("no-such-clinic") is setup.embedded
        appointment_id = await _book_first_slot(setup.router)
        assert await setup.embedded.get_appointment(appointment_id) is not None
        assert setup.tokens.requests == [] and setup.secrets.asked == []

    _run(fhir_server, tmp_path, check, ttl_s=0.0)


def test_a_changed_ehr_takes_effect_once_the_clinic_is_read_again(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    async def check(setup: Setup) -> None:
        first = await setup.router.ehr_of(DEMO_CLINIC_ID)
        setup.clinics[DEMO_CLINIC_ID] = demo_clinic()
        assert await setup.router.ehr_of(DEMO_CLINIC_ID) is first  # within the TTL
        setup.router._ttl_s = 0.0  # noqa: SLF001  # the TTL passed
        assert await setup.router.ehr_of(DEMO_CLINIC_ID) is setup.embedded

    _run(fhir_server, tmp_path, check)


def test_calls_at_once_open_one_client_for_the_clinics_server(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    async def check(setup: Setup) -> None:
        opened = await asyncio.gather(*(setup.router.ehr_of(DEMO_CLINIC_ID) for _ in range(8)))
        assert len({id(ehr) for ehr in opened}) == 1
        assert setup.secrets.asked == [SECRET_NAME]

    _run(fhir_server, tmp_path, check)


def test_an_embedded_clinic_on_a_fhir_deployment_is_an_error_not_a_wrong_ehr(
    fhir_server: FhirServer, tmp_path: Path
) -> None:
    async def check(setup: Setup) -> None:
        router = ClinicEhrs(
            default=setup.fhir, default_connection=_on_fhir(fhir_server).ehr,
            clinic=_constant(demo_clinic()), secrets=setup.secrets, now=lambda: NOW,
        )  # fmt: skip
        with pytest.raises(ProviderError, match="embedded EHR") as refused:
            await router.find_free_slots(
                clinic_id=DEMO_CLINIC_ID,
                start=NOW,
                end=NOW + dt.timedelta(days=1),
                provider_id=None,
            )
        assert not refused.value.retryable

    _run(fhir_server, tmp_path, check)


def _constant(clinic: Clinic) -> Callable[[str], Awaitable[Clinic | None]]:
    async def get(clinic_id: str) -> Clinic | None:
        return clinic

    return get


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (None, "no such secret"),
        ("", "no such secret"),
        (CLIENT_SECRET, "not JSON"),
        ('["a"]', "not a JSON object"),
        (json.dumps({"client_id": "c", "client_secret": CLIENT_SECRET}), "token_url is missing"),
        (
            json.dumps({"token_url": "https://t", "client_secret": CLIENT_SECRET}),
            "client_id is missing",
        ),  # fmt: skip
        (
            json.dumps({"token_url": "https://t", "client_id": "c"}),
            "exactly one of client_secret and private_key",
        ),  # fmt: skip
        (
            json.dumps(
                {
                    "token_url": "https://t",
                    "client_id": "c",
                    "client_secret": CLIENT_SECRET,
                    "password": CLIENT_SECRET,
                }
            ),
            "unknown field(s) 'password'",
        ),  # fmt: skip
        (
            json.dumps({"token_url": "https://t", "client_id": 7, "client_secret": CLIENT_SECRET}),
            "client_id is not text",
        ),  # fmt: skip
        (
            json.dumps(
                {
                    "token_url": "https://t",
                    "client_id": "c",
                    "client_secret": CLIENT_SECRET,
                    "secret_in_body": "yes",
                }
            ),
            "secret_in_body is not true or false",
        ),  # fmt: skip
    ],
)
def test_a_bad_credentials_secret_is_named_and_its_value_never_shown(
    value: str | None, why: str
) -> None:
    with pytest.raises(ProviderError) as refused:
        fhir_credentials(value, name=SECRET_NAME)
    message = str(refused.value)
    assert message.startswith(f"EHR credentials secret {SECRET_NAME!r}: ")
    assert why in message
    assert CLIENT_SECRET not in message and not refused.value.retryable


def test_valid_credentials_make_a_token_provider() -> None:
    value = json.dumps({"token_url": "https://ehr.example.org/token", "client_id": "c",
                        "client_secret": CLIENT_SECRET, "scope": "system/*.rs",
                        "secret_in_body": True})  # fmt: skip
    token = fhir_credentials(value, name=SECRET_NAME)
    assert CLIENT_SECRET not in repr(token)
