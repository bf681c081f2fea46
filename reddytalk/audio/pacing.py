"""Real-time pacing of outbound frames on an absolute schedule.

Frame ``n`` of an answer goes out no earlier than ``start + n * frame``. A sender
that falls behind (a busy loop) catches up by sending without sleeping until it is
back on schedule; it never resets the schedule to "now + frame", which under load
never recovers (measured here: see shared/WHAT-WORKS-HERE.md, "many calls").

With ``ahead_ms`` a frame may also go out up to that much before its slot. A sender
then wakes once per ``frame + ahead`` and sends what falls due within it: with 20 ms,
one wake-up per two frames instead of one per frame. ACS queues what it receives
(``StopAudio`` flushes that queue), so a frame a little early is played on time; and a
wake-up per frame per call is what pacing costs under load.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

__all__ = ["Pacer"]


class Pacer:
    """Waits for each frame's slot on the schedule.

    Args:
        frame_ms: Duration of one frame.
        clock: Seconds, monotonic (injectable for tests on virtual time).
        sleep: Async sleep matching ``clock``.
        ahead_ms: How early a frame may go out (0: never before its slot).
    """

    def __init__(
        self,
        *,
        frame_ms: int = 20,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        ahead_ms: int = 0,
    ) -> None:
        self._frame_s = frame_ms / 1000
        self._ahead_s = ahead_ms / 1000
        self._clock = clock
        self._sleep = sleep
        self._next_at: float | None = None
        self.max_lateness_ms = 0.0

    def restart(self) -> None:
        """Start a new schedule: the next frame goes out at once."""
        self._next_at = None

    def restart_if_idle(self) -> None:
        """Start a new schedule only if the current one's next slot has passed.

        For a sender that found nothing to send: after a real gap (between
        answers, or a synthesizer that fell behind) the next frame goes out at
        once instead of in a catch-up burst; but audio that merely arrives in
        small pieces faster than real time keeps its 20 ms schedule.
        """
        if self._next_at is not None and self._next_at <= self._clock():
            self._next_at = None

    async def wait_for_slot(self) -> float:
        """Sleep until the next frame's slot, unless it falls within ``ahead_ms`` of now;
        return how late the frame is in ms (>= 0)."""
        now = self._clock()
        if self._next_at is None:
            self._next_at = now
        elif self._next_at > now + self._ahead_s:
            await self._sleep(self._next_at - now)
            now = self._clock()
        lateness_ms = max(0.0, (now - self._next_at) * 1000)
        self.max_lateness_ms = max(self.max_lateness_ms, lateness_ms)
        self._next_at += self._frame_s
        return lateness_ms
