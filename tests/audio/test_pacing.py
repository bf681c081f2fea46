"""The outbound pacer on virtual time: an absolute 20 ms schedule with catch-up."""

from __future__ import annotations

import asyncio

import pytest

from reddytalk.audio.pacing import Pacer


class VirtualTime:
    """A clock in seconds and an async sleep that only advances it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.sleeps.append(seconds)
        self.now += seconds


def _pacer(vt: VirtualTime) -> Pacer:
    return Pacer(frame_ms=20, clock=vt.clock, sleep=vt.sleep)


def test_frames_never_go_out_before_their_slot() -> None:
    vt = VirtualTime()
    pacer = _pacer(vt)
    start = vt.now

    async def run() -> list[tuple[float, float]]:
        sent = []
        for n in range(50):
            lateness = await pacer.wait_for_slot()
            sent.append((vt.now, lateness))
            vt.now += 0.003 if n % 2 else 0.0  # some work between frames
        return sent

    sent = asyncio.run(run())
    for n, (at, lateness) in enumerate(sent):
        assert at >= start + n * 0.020 - 1e-9
        assert at == pytest.approx(start + n * 0.020)
        assert lateness == pytest.approx(0.0, abs=1e-6)
    assert sent[0][0] == start  # the first frame goes at once
    assert len(vt.sleeps) == 49
    assert pacer.max_lateness_ms == pytest.approx(0.0, abs=1e-6)


def test_late_sender_catches_up_without_sleeping_then_keeps_the_schedule() -> None:
    vt = VirtualTime()
    pacer = _pacer(vt)
    start = vt.now

    async def run() -> None:
        for _ in range(3):  # frames 0, 1, 2 on time
            await pacer.wait_for_slot()
        # Frame 3 is due at start + 60 ms; the loop was busy until start + 160 ms.
        vt.now = start + 0.160
        sleeps_before = len(vt.sleeps)
        latenesses = [await pacer.wait_for_slot() for _ in range(5)]  # frames 3..7
        assert len(vt.sleeps) == sleeps_before  # catch-up: no sleeping
        assert vt.now == start + 0.160
        assert latenesses == pytest.approx([100.0, 80.0, 60.0, 40.0, 20.0])
        assert pacer.max_lateness_ms == pytest.approx(100.0)
        # Frame 8 is due at start + 160 ms: exactly now, no sleep, on time.
        assert await pacer.wait_for_slot() == pytest.approx(0.0, abs=1e-6)
        assert len(vt.sleeps) == sleeps_before
        # Frame 9 on the original absolute schedule, not "now + 20 ms" from the jump.
        assert await pacer.wait_for_slot() == pytest.approx(0.0, abs=1e-6)
        assert vt.now == pytest.approx(start + 0.180)
        assert len(vt.sleeps) == sleeps_before + 1

    asyncio.run(run())


def test_restart_starts_a_new_schedule() -> None:
    vt = VirtualTime()
    pacer = _pacer(vt)

    async def run() -> None:
        for _ in range(5):
            await pacer.wait_for_slot()
        # Frame 5 would be due 100 ms after the start; a new answer starts much later.
        vt.now += 10.0
        pacer.restart()
        restart_at = vt.now
        sleeps_before = len(vt.sleeps)
        assert await pacer.wait_for_slot() == 0.0  # not 10 s late: a new schedule
        assert vt.now == restart_at
        assert len(vt.sleeps) == sleeps_before
        await pacer.wait_for_slot()
        assert vt.now == pytest.approx(restart_at + 0.020)
        await pacer.wait_for_slot()
        assert vt.now == pytest.approx(restart_at + 0.040)

    asyncio.run(run())
    assert pacer.max_lateness_ms == pytest.approx(0.0, abs=1e-6)


def test_without_restart_a_pause_counts_as_lateness() -> None:
    vt = VirtualTime()
    pacer = _pacer(vt)

    async def run() -> float:
        await pacer.wait_for_slot()
        vt.now += 1.0
        return await pacer.wait_for_slot()

    assert asyncio.run(run()) == pytest.approx(980.0)
    assert pacer.max_lateness_ms == pytest.approx(980.0)


def test_default_clock_and_sleep_pace_in_real_time() -> None:
    pacer = Pacer(frame_ms=5)

    async def run() -> float:
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        for _ in range(4):
            await pacer.wait_for_slot()
        return loop.time() - t0

    assert asyncio.run(run()) >= 0.015 - 0.002


def test_restart_if_idle_keeps_the_schedule_of_audio_arriving_early() -> None:
    vt = VirtualTime()
    pacer = _pacer(vt)

    async def run() -> None:
        start = vt.now
        for n in range(5):
            pacer.restart_if_idle()  # the queue ran dry between small chunks, ahead of time
            await pacer.wait_for_slot()
            assert vt.now == pytest.approx(start + n * 0.020)
        vt.now += 1.0  # a real gap: the next slot is long past
        pacer.restart_if_idle()
        gap_end = vt.now
        assert await pacer.wait_for_slot() == 0.0
        await pacer.wait_for_slot()
        assert vt.now == pytest.approx(gap_end + 0.020)  # a new schedule, no burst

    asyncio.run(run())


def test_ahead_lets_a_frame_go_early_so_the_sender_wakes_once_per_two_frames() -> None:
    vt = VirtualTime()
    pacer = Pacer(frame_ms=20, clock=vt.clock, sleep=vt.sleep, ahead_ms=20)
    start = vt.now

    async def run() -> list[float]:
        return [(await pacer.wait_for_slot(), vt.now)[1] for _ in range(10)]

    sent = asyncio.run(run())
    # Frames go in pairs: each pair at the first one's slot, the second 20 ms early.
    assert sent == pytest.approx([start + (n // 2) * 0.040 for n in range(10)])
    for n, at in enumerate(sent):
        assert at <= start + n * 0.020 + 1e-9  # never late
        assert at >= start + n * 0.020 - 0.020 - 1e-9  # never more than 20 ms early
    assert len(vt.sleeps) == 4
    assert pacer.max_lateness_ms == pytest.approx(0.0, abs=1e-6)
