"""What the Functions app's triggers share in one worker process, built once.

The composition root builds it from ``Settings.from_env()`` on first use (so a
cold start pays for it once, and importing ``function_app`` stays cheap): the
store and the EHR of the configured profile (Cosmos DB and FHIR in Azure, with
the PHI key from Key Vault), call control, the verifier of ACS's tokens.
``reset()`` closes and drops it, for a host that changes its settings (tests do).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from reddytalk.admin.auth import AdminAuthenticator, build_admin_authenticator
from reddytalk.calls.answering import CallLinks
from reddytalk.calls.call_tokens import CallTokens
from reddytalk.composition import build_call_control, build_sms_sender, build_token_verifier
from reddytalk.ports import CallControl, CallStore, Ehr, SmsSender
from reddytalk.records import Records, open_records
from reddytalk.settings import Settings
from reddytalk.telephony.acs_auth import AcsTokenVerifier

__all__ = ["Runtime", "reset", "runtime"]


@dataclass(frozen=True, slots=True)
class Runtime:
    """The Functions app's long-lived objects."""

    settings: Settings
    store: CallStore
    ehr: Ehr
    control: CallControl
    verifier: AcsTokenVerifier
    links: CallLinks
    tokens: CallTokens | None
    clock: Callable[[], dt.datetime]
    records: Records
    sms: SmsSender
    admin: AdminAuthenticator


_built: Runtime | None = None
_building = asyncio.Lock()


async def runtime() -> Runtime:
    """The process's runtime, built on first use (concurrent first uses build it once)."""
    global _built
    if _built is not None:
        return _built
    async with _building:
        if _built is None:
            _built = await _build()
    return _built


async def _build() -> Runtime:
    settings = Settings.from_env()
    records = await open_records(settings)
    try:
        assert records.ehr is not None  # opened with its EHR
        return Runtime(
            settings=settings,
            store=records.store,
            ehr=records.ehr,
            control=build_call_control(settings),
            verifier=build_token_verifier(settings),
            links=CallLinks(
                callback_url=f"{settings.public_functions_url.rstrip('/')}/api/call_events",
                media_base_url=settings.public_media_url,
            ),
            tokens=CallTokens(secret=settings.tools_secret) if settings.tools_secret else None,
            clock=_utc_now,
            records=records,
            sms=build_sms_sender(settings, records.store),
            admin=build_admin_authenticator(settings),
        )
    except BaseException:
        await records.aclose()
        raise


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def reset() -> None:
    """Close and forget the runtime; the next trigger builds it again from the environment.

    For a host that changes its settings or its event loop (the tests, the local host).
    """
    global _built, _building
    built, _built = _built, None
    _building = asyncio.Lock()  # a lock that waited once belongs to that event loop
    if built is not None:
        await built.control.close()
        await built.sms.close()
        await built.records.aclose()
