"""Each clinic's EHR: the deployment's, or the FHIR server the clinic's configuration names.

A clinic's file says where its schedule and patients live (``ehr``:
:class:`~reddytalk.scheduling.model.EhrConnection`). :class:`ClinicEhrs` is the
:class:`~reddytalk.ports.Ehr` the rest of ReddyTalk uses: every request names its clinic,
and goes to

* the deployment's EHR (``REDDYTALK_EHR``, ``REDDYTALK_FHIR_*``) when the clinic's
  connection is that one (``embedded`` on an embedded deployment; ``fhir`` at the
  deployment's base URL with its secret), and for a clinic id the store does not have;
* else, for ``fhir``, a :class:`~reddytalk.providers.ehr.fhir.FhirEhr` of its own, opened
  on first use and kept (one per base URL and secret), signing in with the client
  credentials in the secret the clinic names (:func:`fhir_credentials`);
* else (an ``embedded`` clinic on a FHIR deployment: there is no embedded schedule in
  Azure) a :class:`~reddytalk.errors.ProviderError`, not retryable; ``scripts/clinic``
  and the admin API refuse such a clinic in the first place.

A clinic's configuration is read through the store and reused for ``ttl_s``, so a
changed ``ehr`` takes effect within that time, in every process.

The secret's value is a JSON object (its name is ``ehr.credentials_secret``; Key Vault
in Azure, ``REDDYTALK_SECRET_<NAME>`` on the embedded profile)::

    {"token_url": "https://ehr.example.org/oauth2/token", "client_id": "reddytalk",
     "client_secret": "...", "scope": "system/*.rs system/Appointment.cu"}

with ``private_key`` (PEM), ``key_id`` and ``algorithm`` (RS384 or ES384) in place of
``client_secret`` for SMART Backend Services, and ``secret_in_body: true`` for
client_secret_post (:class:`~reddytalk.providers.ehr.fhir_auth.ClientCredentialsToken`).
Neither the secret nor any of its values ever reaches a log or an error.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from reddytalk.errors import ProviderError
from reddytalk.ports import Ehr, Secrets
from reddytalk.providers.ehr.fhir import FhirEhr
from reddytalk.providers.ehr.fhir_auth import ClientCredentialsToken
from reddytalk.scheduling.model import Appointment, Clinic, EhrConnection, Patient, Slot

__all__ = ["ClinicEhrs", "fhir_credentials"]

_TEXT_FIELDS = ("token_url", "client_id", "client_secret", "private_key", "key_id",
                "algorithm", "scope")  # fmt: skip


def fhir_credentials(value: str | None, *, name: str) -> ClientCredentialsToken:
    """The token provider a clinic's credentials secret describes (see the module).

    Raises:
        ProviderError: No such secret, or not such a JSON object (not retryable; the
            message names the secret and the field, never a value).
    """

    def invalid(why: str) -> ProviderError:
        return ProviderError(f"EHR credentials secret {name!r}: {why}", retryable=False)

    if not value:
        raise invalid("no such secret")
    try:
        data = json.loads(value)
    except ValueError:
        raise invalid("not JSON") from None
    if not isinstance(data, dict):
        raise invalid("not a JSON object")
    unknown = sorted(set(data) - {*_TEXT_FIELDS, "secret_in_body"})
    if unknown:
        raise invalid(f"unknown field(s) {', '.join(map(repr, unknown))}")
    for field in _TEXT_FIELDS:
        if field in data and not isinstance(data[field], str):
            raise invalid(f"{field} is not text")
    if not isinstance(data.get("secret_in_body", False), bool):
        raise invalid("secret_in_body is not true or false")
    for field in ("token_url", "client_id"):
        if not data.get(field):
            raise invalid(f"{field} is missing")
    options: dict[str, Any] = {k: v for k, v in data.items() if k != "token_url"}
    try:
        return ClientCredentialsToken(token_url=data["token_url"], **options)
    except ValueError as error:  # one of client_secret and private_key; the algorithm
        raise invalid(str(error)) from None


class ClinicEhrs:
    """An :class:`~reddytalk.ports.Ehr` that sends each request to its clinic's EHR.

    Args:
        default: The deployment's EHR.
        default_connection: Which EHR that is, as a clinic's file would name it.
        clinic: Reads a clinic's configuration (the store's ``get_clinic``).
        secrets: Where clinics' EHR credentials are.
        now: The clock of the EHRs opened here.
        ttl_s: How long a clinic's configuration is reused.
    """

    def __init__(
        self,
        *,
        default: Ehr,
        default_connection: EhrConnection,
        clinic: Callable[[str], Awaitable[Clinic | None]],
        secrets: Secrets,
        now: Callable[[], dt.datetime],
        ttl_s: float = 60.0,
    ) -> None:
        self.default = default
        self._default_connection = default_connection
        self._get_clinic = clinic
        self._secrets = secrets
        self._now = now
        self._ttl_s = ttl_s
        self._connections: dict[str, tuple[float, EhrConnection | None]] = {}
        self._opened: dict[tuple[str, str], FhirEhr] = {}
        self._opening = asyncio.Lock()

    async def close(self) -> None:
        """Close the EHRs opened here (the deployment's is its owner's to close)."""
        opened, self._opened = list(self._opened.values()), {}
        for ehr in opened:
            await ehr.close()

    async def ehr_of(self, clinic_id: str) -> Ehr:
        """The EHR that keeps ``clinic_id``'s schedule and patients.

        Raises:
            ProviderError: Its EHR cannot be reached from this deployment, or its
                credentials secret is missing or not valid (not retryable); the store
                or Key Vault failed (as they report it).
        """
        connection = await self._connection(clinic_id)
        if connection is None or _same(connection, self._default_connection):
            return self.default
        if connection.kind != "fhir" or not connection.fhir_base_url:
            raise ProviderError(
                f"clinic {clinic_id!r} keeps its schedule in the {connection.kind} EHR, "
                "which this deployment does not have",
                retryable=False,
            )
        return await self._fhir(connection.fhir_base_url, connection.credentials_secret or "")

    async def _connection(self, clinic_id: str) -> EhrConnection | None:
        now = time.monotonic()
        cached = self._connections.get(clinic_id)
        if cached is not None and now - cached[0] < self._ttl_s:
            return cached[1]
        clinic = await self._get_clinic(clinic_id)
        connection = clinic.ehr if clinic is not None else None
        self._connections[clinic_id] = (now, connection)
        return connection

    async def _fhir(self, base_url: str, secret_name: str) -> FhirEhr:
        key = (base_url.rstrip("/"), secret_name)
        opened = self._opened.get(key)
        if opened is not None:
            return opened
        async with self._opening:  # one client per server, however many calls ask at once
            opened = self._opened.get(key)
            if opened is None:
                token = None
                if secret_name:
                    value = await self._secrets.get(secret_name)
                    token = fhir_credentials(value, name=secret_name)
                opened = FhirEhr(base_url=base_url, token_provider=token, now=self._now)
                self._opened[key] = opened
        return opened

    # -- the Ehr port: each request to its clinic's EHR ---------------------------------

    async def find_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient | None:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.find_patient(clinic_id=clinic_id, given_name=given_name,
                                      family_name=family_name, birth_date=birth_date)  # fmt: skip

    async def get_patient(self, *, clinic_id: str, patient_id: str) -> Patient | None:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.get_patient(clinic_id=clinic_id, patient_id=patient_id)

    async def create_patient(
        self, *, clinic_id: str, given_name: str, family_name: str, birth_date: dt.date
    ) -> Patient:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.create_patient(clinic_id=clinic_id, given_name=given_name,
                                        family_name=family_name, birth_date=birth_date)  # fmt: skip

    async def find_free_slots(
        self, *, clinic_id: str, start: dt.datetime, end: dt.datetime, provider_id: str | None
    ) -> list[Slot]:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.find_free_slots(clinic_id=clinic_id, start=start, end=end,
                                         provider_id=provider_id)  # fmt: skip

    async def hold(
        self, *, clinic_id: str, slot_id: str, hold_key: str, until: dt.datetime
    ) -> None:
        ehr = await self.ehr_of(clinic_id)
        await ehr.hold(clinic_id=clinic_id, slot_id=slot_id, hold_key=hold_key, until=until)

    async def release(self, *, clinic_id: str, slot_id: str, hold_key: str) -> None:
        ehr = await self.ehr_of(clinic_id)
        await ehr.release(clinic_id=clinic_id, slot_id=slot_id, hold_key=hold_key)

    async def book(
        self,
        *,
        clinic_id: str,
        slot_id: str,
        patient_id: str,
        appointment_type: str,
        idempotency_key: str,
    ) -> Appointment:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.book(clinic_id=clinic_id, slot_id=slot_id, patient_id=patient_id,
                              appointment_type=appointment_type,
                              idempotency_key=idempotency_key)  # fmt: skip

    async def cancel(self, *, clinic_id: str, appointment_id: str) -> Appointment:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.cancel(clinic_id=clinic_id, appointment_id=appointment_id)

    async def upcoming_appointments(
        self, *, clinic_id: str, patient_id: str, after: dt.datetime
    ) -> list[Appointment]:
        ehr = await self.ehr_of(clinic_id)
        return await ehr.upcoming_appointments(clinic_id=clinic_id, patient_id=patient_id,
                                               after=after)  # fmt: skip


def _same(a: EhrConnection, b: EhrConnection) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind != "fhir":
        return True
    same_server = (a.fhir_base_url or "").rstrip("/") == (b.fhir_base_url or "").rstrip("/")
    return same_server and (a.credentials_secret or "") == (b.credentials_secret or "")
