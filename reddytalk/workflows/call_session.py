"""The life of one answered call, as Call Automation reports it.

Started by ``incoming_call`` before it answers (instance id = the call's
correlation id). It waits for ``CallConnected``; then follows the call until
``CallDisconnected``: a media stream that fails gets a short apology played by
ACS itself and a transfer to the clinic's staff; a failed transfer gets an
apology and a hang-up. At the end it makes sure the call has a record (the
outcome, for a call that never reached the media worker) and closes the audit
trail.

The live conversation is the media worker's, and so is its account: the
transcript, tool calls and per-turn timings reach the store through the tools
API's ``keep_record`` when the conversation ends, not through this
orchestration, because everything an orchestration receives is kept in the
Durable task hub's history, where PHI must not be. The record the media worker
keeps wins over the outcome stored here, whichever arrives first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Generator
from typing import Any

from reddytalk.workflows.steps import TRANSIENT, Steps

__all__ = ["CALL_SESSION", "call_session"]

CALL_SESSION = "call_session"

# Events the media worker raises through the tools API when its conversation ends.
HANG_UP_REQUESTED = "HangUpRequested"
TRANSFER_REQUESTED = "TransferRequested"

# Activity names.
HANG_UP = "hang_up"
PLAY_APOLOGY = "play_apology"
TRANSFER_TO_STAFF = "transfer_to_staff"
FINISH_CALL = "finish_call"

CONNECT_TIMEOUT = dt.timedelta(seconds=45)
"""A call rings about 30 s: an answered call that never connects is given up."""
MAX_CALL = dt.timedelta(hours=1)
"""No receptionist call is this long: hang up rather than hold a line forever."""
PLAY_TIMEOUT = dt.timedelta(seconds=20)

_FOLLOWED = (
    "CallDisconnected",
    "MediaStreamingFailed",
    "CallTransferAccepted",
    "CallTransferFailed",
    HANG_UP_REQUESTED,
    TRANSFER_REQUESTED,
)


def call_session(steps: Steps) -> Generator[Any, Any, dict[str, Any]]:
    """Follow one call from answer to hang-up.

    Input: ``call_id``, ``clinic_id``. Output: ``{"outcome": ...}``.
    """
    call = steps.input()
    first = steps.received(
        (yield steps.first_event(("CallConnected", "CallDisconnected"), timeout=CONNECT_TIMEOUT))
    )
    if first is None or first.name == "CallDisconnected":
        outcome = "not_connected"
    else:
        connection = {**call, "call_connection_id": first.data["call_connection_id"]}
        outcome = yield from _follow(steps, connection)
    yield steps.activity(FINISH_CALL, {**call, "outcome": outcome}, retry=TRANSIENT)
    return {"outcome": outcome}


def _follow(steps: Steps, connection: dict[str, Any]) -> Generator[Any, Any, str]:
    outcome = "completed"
    while True:
        event = steps.received((yield steps.first_event(_FOLLOWED, timeout=MAX_CALL)))
        if event is None:
            yield from _attempt(steps, HANG_UP, connection)
            return "too_long"
        if event.name == "CallDisconnected":
            return outcome
        if event.name == HANG_UP_REQUESTED:  # the receptionist said goodbye
            yield from _attempt(steps, HANG_UP, connection)
        elif event.name == TRANSFER_REQUESTED:  # the caller asked for staff, or an emergency
            reason = str(event.data.get("reason") or "caller_request")
            if (yield from _attempt(steps, TRANSFER_TO_STAFF, connection)):
                outcome = f"transferred:{reason}"
            else:
                outcome = "transfer_failed"
                yield from _attempt(steps, HANG_UP, connection)
        elif event.name == "CallTransferAccepted":
            outcome = outcome if outcome.startswith("transferred") else "transferred"
        elif event.name == "MediaStreamingFailed":
            yield from _apologize(steps, connection, "media")
            if (yield from _attempt(steps, TRANSFER_TO_STAFF, connection)):
                outcome = "transferred:media_failed"
            else:  # nobody can hear the caller and nobody can take the call: end it
                outcome = "media_failed"
                yield from _attempt(steps, HANG_UP, connection)
        elif event.name == "CallTransferFailed":
            outcome = "transfer_failed"
            yield from _apologize(steps, connection, "transfer")
            yield from _attempt(steps, HANG_UP, connection)


def _attempt(steps: Steps, name: str, data: dict[str, Any]) -> Generator[Any, Any, bool]:
    """Run a call control activity; False if it still failed after its retries.

    The caller may have hung up meanwhile (ACS then refuses the action), and the
    session must still reach its end and record it.
    """
    try:
        yield steps.activity(name, data, retry=TRANSIENT)
    except Exception:
        return False
    return True


def _apologize(steps: Steps, connection: dict[str, Any], why: str) -> Generator[Any, Any, None]:
    """Have ACS play the apology and wait until it has been heard (or could not be)."""
    if not (yield from _attempt(steps, PLAY_APOLOGY, {**connection, "why": why})):
        return  # no apology is better than no transfer
    steps.received(
        (yield steps.first_event(("PlayCompleted", "PlayFailed"), timeout=PLAY_TIMEOUT))
    )
