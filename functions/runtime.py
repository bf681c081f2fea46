"""What the Functions app's triggers share in one worker process, built once.

The composition root builds it from ``Settings.from_env()`` on first use (so a
cold start pays for it once, and importing ``function_app`` stays cheap);
``reset()`` drops it, for a host that changes its settings (tests do).
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from dataclasses import dataclass

from reddytalk.calls.answering import CallLinks
from reddytalk.calls.call_tokens import CallTokens
from reddytalk.composition import build_call_control, build_records, build_token_verifier
from reddytalk.ports import CallControl, CallStore, Ehr
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


@functools.cache
def runtime() -> Runtime:
    """The process's runtime, built on first use."""
    settings = Settings.from_env()
    store, ehr = build_records(settings)
    return Runtime(
        settings=settings,
        store=store,
        ehr=ehr,
        control=build_call_control(settings),
        verifier=build_token_verifier(settings),
        links=CallLinks(
            callback_url=f"{settings.public_functions_url.rstrip('/')}/api/call_events",
            media_base_url=settings.public_media_url,
        ),
        tokens=CallTokens(secret=settings.tools_secret) if settings.tools_secret else None,
        clock=_utc_now,
    )


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def reset() -> None:
    """Close and forget the runtime; the next trigger builds it again from the environment.

    For a host that changes its settings or its event loop (the tests, the local host).
    """
    if runtime.cache_info().currsize:
        await runtime().control.close()
    runtime.cache_clear()
