"""Draining: a replica that is asked to stop lets its calls finish first.

Container Apps (and Kubernetes) stop a replica with SIGTERM, then SIGKILL after the
termination grace period. uvicorn's own shutdown closes every open WebSocket at
once (close code 1012), which would cut every call on the replica mid-sentence.
So the first SIGTERM only starts a drain: ``/healthz`` answers 503 (the ingress
stops routing new calls here), new streams are refused with 1013 ("try again
later"), and the server exits when its last call ends or the drain deadline
passes, whichever is first. A second signal stops at once, as uvicorn does.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

__all__ = ["DRAIN_TIMEOUT_S", "CallDrain", "DrainingServer"]

DRAIN_TIMEOUT_S = 590.0
"""Just under the 600 s termination grace period the Bicep gives the container."""


class CallDrain:
    """Counts the calls in progress and whether the replica is draining.

    Plain attributes only: a signal handler sets :attr:`is_draining` between two
    bytecodes of the event loop's thread.
    """

    def __init__(self) -> None:
        self.active = 0
        self.is_draining = False

    @contextlib.contextmanager
    def call(self) -> Iterator[None]:
        """Count one call for its duration."""
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1


class DrainingServer(uvicorn.Server):
    """A uvicorn server whose first stop signal drains :class:`CallDrain` first.

    Args:
        config: The uvicorn configuration.
        drain: The app's call counter (``app.state.drain``).
        timeout_s: The longest a drain waits for calls to end.
    """

    def __init__(
        self, config: uvicorn.Config, *, drain: CallDrain, timeout_s: float = DRAIN_TIMEOUT_S
    ) -> None:
        super().__init__(config)
        self._drain = drain
        self._timeout_s = timeout_s
        self._deadline: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: drain. Any later one (or nothing to drain): stop as uvicorn does."""
        if self._deadline is not None or sig not in (signal.SIGTERM, signal.SIGINT):
            super().handle_exit(sig, frame)
            return
        self._deadline = time.monotonic() + self._timeout_s
        self._drain.is_draining = True

    async def on_tick(self, counter: int) -> bool:
        """Also stop once a drain has no calls left, or ran out of time."""
        if await super().on_tick(counter):
            return True
        if self._deadline is None:
            return False
        return self._drain.active == 0 or time.monotonic() >= self._deadline
