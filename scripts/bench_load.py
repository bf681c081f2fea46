"""``scripts/bench_load``: how many calls at once one media worker process carries.

The media worker runs in its own process (``--serve``), pinned to one core, on the
cloud-latency stand-ins of ``scripts/cloud_latency.py`` (the tiered policy; Azure
Speech's interim hypotheses, which the turns are answered on, and its final 1 s after
speech; the voice's first audio 125 ms). This process is the
load generator, pinned to the other cores: N callers, each a real WebSocket speaking the
ACS media protocol, 20 ms frames in real time, talking (1 s of a synthetic voice) and
listening in turns (each asks for the opening hours). One timer sends every caller's
frame each 20 ms (its own lateness is reported too: if the generator falls behind, the
step's figures are its, not the worker's). Calls on a real line start at random
moments, so their 20 ms clocks have independent phases: the callers are spread over
``--phases`` slices of the 20 ms (default 10, 2 ms apart); ``--phases 1`` sends every
caller's frame at the same instant, a burst no real traffic makes (the worst case).

N steps up until a step breaks. Per step: outbound frame lateness (each answer's frames
against their real-time schedule from its first frame: p50/p99/max), voice-to-voice p95
(end of the caller's speech to the first frame of the answer), barge-in (every other
answer the caller talks over, 300 ms in: StopAudio's arrival after the frame that
completes the worker's 200 ms barge-in threshold went out), the worker's CPU per call
and memory per call (from ``/proc``), errors. A step passes with p99 lateness
<= 20 ms, voice-to-voice p95 within 50 ms of the unloaded figure (N=1), and no error;
the capacity is the largest passing N on the worker's one core.

    scripts/bench_load [--steps 1,100,200,300,400,500,600,700] [--step-s 25] [--phases 10]
                       [--out-dir DIR]

Prints a table and writes ``load.json`` and ``load.md`` to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import asyncio
import binascii
import collections
import contextlib
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "scripts")]

import numpy as np  # noqa: E402
import websockets  # noqa: E402

from reddytalk.frames import AudioFormat  # noqa: E402
from reddytalk.telephony import acs_media  # noqa: E402

RATE_HZ = 16_000
FRAME_S = 0.020
SPEECH_FRAMES = 50  # 1 s of caller speech per turn
ANSWER_END_GAP_S = 0.5  # no frame for this long: the answer has ended
ANSWER_TIMEOUT_S = 8.0  # no answer within this long after speaking: an error
BARGE_IN_MS = 200  # the worker's REDDYTALK_BARGE_IN_MS (its default)
LATENESS_LIMIT_MS = 20.0
V2V_MARGIN_MS = 50.0
HOURS = "What are your opening hours"


def _voice_frame() -> bytes:
    """20 ms of a vowel-like synthetic voice (harmonics of 150 Hz): speech to the VAD."""
    t = np.arange(RATE_HZ // 50) / RATE_HZ
    wave = np.sum([np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 11)], axis=0)
    return bytes((6000 * wave / 2).astype("<i2").tobytes())


# -- the worker side ----------------------------------------------------------------


def serve(port: int, cpus: set[int]) -> None:
    """Run the media worker on the stand-ins, pinned to ``cpus``; print READY."""
    import uvicorn
    from bench_latency import _cloud_receptionist
    from cloud_latency import LatencyProfile, SimulatedChat

    from media_worker.__main__ import server_config, tune_gc
    from media_worker.app import create_app
    from reddytalk.settings import Settings

    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, cpus)
    tune_gc()  # as media_worker's main does
    with tempfile.TemporaryDirectory() as data_dir:
        settings = Settings(data_dir=Path(data_dir), port=port, log_level="WARNING")
        profile = LatencyProfile()
        chat = SimulatedChat(profile)

        async def build() -> Any:
            return await _cloud_receptionist(settings, profile, chat, [(HOURS,) * 200])

        config = server_config(create_app(settings, build=build), host="127.0.0.1", port=port)
        config.ws_ping_interval = None
        server = uvicorn.Server(config)

        async def run() -> None:
            task = asyncio.create_task(server.serve())
            while not server.started:  # noqa: ASYNC110 (uvicorn offers no event for it)
                await asyncio.sleep(0.02)
            port_ = server.servers[0].sockets[0].getsockname()[1]
            print(f"READY {port_} {type(asyncio.get_running_loop()).__module__}", flush=True)
            await task

        # The event loop production runs (media_worker/__main__.py: uvloop when installed).
        with asyncio.Runner(loop_factory=config.get_loop_factory()) as runner:
            runner.run(run())


# -- the load generator -------------------------------------------------------------


@dataclass
class Caller:
    """One call: what it sends, and what it heard when."""

    ws: Any
    phase: int = 0  # which slice of the 20 ms its frames go out in
    outgoing: collections.deque[str] = field(default_factory=collections.deque)
    voiced_started: float = 0.0  # when the first voiced frame of the latest speech went out
    last_voiced_sent: float = 0.0
    received: list[tuple[float, bool]] = field(default_factory=list)  # (time, loud)
    stops: list[float] = field(default_factory=list)  # StopAudio arrivals
    v2v_ms: list[float] = field(default_factory=list)
    stop_audio_ms: list[float] = field(default_factory=list)  # after barge-in was due
    lateness_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


class Ticker:
    """One timer for every caller: each slice of the 20 ms, the callers of that phase
    send their next frame (so each caller every 20 ms, on its own phase)."""

    def __init__(self, silence: str, *, phases: int) -> None:
        self.callers: list[Caller] = []
        self.phases = phases
        self._silence = silence
        self.lateness_ms: list[float] = []

    async def run(self, voiced: str) -> None:
        start = time.monotonic()
        tick = 0
        slice_s = FRAME_S / self.phases
        while True:
            now = time.monotonic()
            self.lateness_ms.append(max(0.0, (now - (start + tick * slice_s)) * 1000))
            phase = tick % self.phases
            for caller in [c for c in self.callers if c.phase == phase]:
                message = caller.outgoing.popleft() if caller.outgoing else self._silence
                if message is voiced:
                    if caller.last_voiced_sent < now - 1.5 * FRAME_S:
                        caller.voiced_started = now
                    caller.last_voiced_sent = now
                # Awaited in turn, not gathered: a send only writes to the socket's
                # buffer, and a task per send (15 000 a second at 300 calls) was most of
                # this core's time.
                try:
                    await caller.ws.send(message)
                except Exception as error:  # noqa: BLE001 (reported as the caller's error)
                    # A caller that hung up meanwhile (its step ended) is no error.
                    if caller in self.callers and not caller.errors:
                        caller.errors.append(type(error).__name__)
            tick += 1
            delay = start + tick * slice_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            else:  # behind: catch up without sleeping, but let the receivers run
                await asyncio.sleep(0)


_AUDIO_PREFIX = '{"Kind":"AudioData","AudioData":{"Data":"'


async def _receive(caller: Caller) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for message in caller.ws:
            if isinstance(message, str) and message.startswith(_AUDIO_PREFIX):
                # The worker's own encoding (acs_media.encode_audio): the first 32 samples
                # tell silence from the answer, without decoding the whole frame.
                start = len(_AUDIO_PREFIX)
                head = binascii.a2b_base64(message[start : start + 88])[:64]
            else:
                pcm = acs_media.parse_outbound(message)
                if pcm is None:
                    caller.stops.append(time.monotonic())
                    continue
                head = pcm[:64]
            loud = max(map(abs, memoryview(head).cast("h"))) > 100
            caller.received.append((time.monotonic(), loud))


async def _quiet_for(caller: Caller, gap_s: float, until: float) -> bool:
    """Wait until nothing arrived for ``gap_s`` (an answer ended); False at ``until``."""
    while time.monotonic() < until:
        last = caller.received[-1][0] if caller.received else 0.0
        if time.monotonic() - last >= gap_s:
            return True
        await asyncio.sleep(0.05)
    return False


def _lateness(frames: list[float]) -> list[float]:
    """Each frame of one answer against its schedule from the answer's first frame."""
    return [max(0.0, (at - (frames[0] + i * FRAME_S)) * 1000) for i, at in enumerate(frames)]


async def _call(url: str, n: int, ticker: Ticker, voiced: str, stop_at: float) -> Caller:
    fmt = AudioFormat(sample_rate_hz=RATE_HZ, frame_bytes=acs_media.frame_bytes_for(RATE_HZ))
    target = f"{url}/calls/load-{n}-{time.monotonic_ns()}?to=%2B15550100200"
    ws = await websockets.connect(target, max_size=1 << 20, ping_interval=None)
    caller = Caller(ws, phase=n % ticker.phases)
    receiver = asyncio.create_task(_receive(caller))
    try:
        await ws.send(acs_media.encode_audio_metadata(fmt, subscription_id=f"load-{n}"))
        ticker.callers.append(caller)
        greeting_by = time.monotonic() + 15
        while not caller.received and time.monotonic() < greeting_by:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        await _quiet_for(caller, ANSWER_END_GAP_S, greeting_by)  # the greeting's end
        turn = 0
        while time.monotonic() < stop_at and not caller.errors:
            caller.outgoing.extend([voiced] * SPEECH_FRAMES)
            # Polled: the one ticker drains every caller's queue; an event per caller per
            # frame would cost more than the check.
            while caller.outgoing:  # noqa: ASYNC110
                await asyncio.sleep(FRAME_S)
            speech_end = caller.last_voiced_sent + FRAME_S
            heard_from = len(caller.received)
            deadline = time.monotonic() + ANSWER_TIMEOUT_S
            while time.monotonic() < deadline and not any(  # noqa: ASYNC110
                loud for at, loud in caller.received[heard_from:] if at >= speech_end
            ):  # fmt: skip
                await asyncio.sleep(0.01)
            answer = [at for at, _ in caller.received[heard_from:] if at >= speech_end]
            if not answer:
                caller.errors.append("no answer")
                break
            caller.v2v_ms.append((answer[0] - speech_end) * 1000)
            turn += 1
            if turn % 2 == 0:  # every other answer, the caller talks over it
                await _barge_in(caller, voiced)
            else:
                await _quiet_for(caller, ANSWER_END_GAP_S, time.monotonic() + 30)
                frames = [at for at, _ in caller.received[heard_from:] if at >= speech_end]
                caller.lateness_ms += _lateness(frames)
            await asyncio.sleep(0.3)
    finally:
        if caller in ticker.callers:
            ticker.callers.remove(caller)
        await ws.close()
        receiver.cancel()
    return caller


async def _barge_in(caller: Caller, voiced: str) -> None:
    """Talk over the answer 300 ms into it; time StopAudio from the frame that completes
    the worker's barge-in threshold (``BARGE_IN_MS`` of speech) going out."""
    await asyncio.sleep(0.3)
    stops = len(caller.stops)
    caller.outgoing.extend([voiced] * SPEECH_FRAMES)
    deadline = time.monotonic() + 2.0
    while len(caller.stops) == stops and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)
    if len(caller.stops) == stops:
        caller.errors.append("no StopAudio")
        return
    due = caller.voiced_started + (BARGE_IN_MS / 1000 - FRAME_S)
    caller.stop_audio_ms.append((caller.stops[stops] - due) * 1000)
    while caller.outgoing:  # noqa: ASYNC110 (the barge-in speech is a turn of its own)
        await asyncio.sleep(FRAME_S)
    await _quiet_for(caller, ANSWER_END_GAP_S, time.monotonic() + 30)


def _proc(pid: int) -> tuple[float, int]:
    """CPU seconds used and resident bytes of process ``pid``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu_s = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    rss = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
               if line.startswith("VmRSS:"))  # fmt: skip
    return cpu_s, int(rss.split()[1]) * 1024


def _q(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(1, math.ceil(q * len(ordered))) - 1], 1)


async def run_step(
    url: str, pid: int, n: int, step_s: float, *, phases: int = 10
) -> dict[str, Any]:
    """N callers for ``step_s`` seconds; the step's figures."""
    silence = acs_media.encode_audio_data(bytes(640), timestamp="2026-11-26T00:00:00Z",
                                          participant_raw_id="4:+15555550123")  # fmt: skip
    voiced = acs_media.encode_audio_data(_voice_frame(), timestamp="2026-11-26T00:00:00Z",
                                         participant_raw_id="4:+15555550123")  # fmt: skip
    ticker = Ticker(silence, phases=phases)
    tick = asyncio.create_task(ticker.run(voiced))
    cpu0, rss0 = _proc(pid)
    started = time.monotonic()
    stop_at = started + step_s
    ramp = min(5.0, step_s / 5) / max(1, n)  # callers join over a few seconds
    tasks = []
    for i in range(n):
        tasks.append(asyncio.create_task(_call(url, i, ticker, voiced, stop_at)))
        await asyncio.sleep(ramp)
    peak_rss = rss0
    while not all(t.done() for t in tasks):
        peak_rss = max(peak_rss, _proc(pid)[1])
        await asyncio.sleep(0.5)
    results = [t.result() if not t.exception() else None for t in tasks]
    cpu1, _ = _proc(pid)
    tick.cancel()
    wall = time.monotonic() - started
    callers = [c for c in results if c is not None]
    errors = (len(results) - len(callers)) + sum(1 for c in callers if c.errors)
    kinds = collections.Counter(e for c in callers for e in c.errors)
    kinds.update(type(t.exception()).__name__ for t in tasks if t.exception())
    lateness = [x for c in callers for x in c.lateness_ms]
    v2v = [x for c in callers for x in c.v2v_ms]
    stop_audio = [x for c in callers for x in c.stop_audio_ms]
    return {
        "calls": n,
        "turns": len(v2v),
        "errors": errors,
        "error_kinds": dict(kinds),
        "lateness_p50_ms": _q(lateness, 0.5),
        "lateness_p99_ms": _q(lateness, 0.99),
        "lateness_max_ms": round(max(lateness), 1) if lateness else None,
        "v2v_p50_ms": _q(v2v, 0.5),
        "v2v_p95_ms": _q(v2v, 0.95),
        "barge_ins": len(stop_audio),
        "stop_audio_p50_ms": _q(stop_audio, 0.5),
        "stop_audio_p99_ms": _q(stop_audio, 0.99),
        "worker_cpu_percent": round((cpu1 - cpu0) / wall * 100, 1),
        "cpu_ms_per_call_s": round((cpu1 - cpu0) / wall / n * 1000, 3),
        "memory_mb_per_call": round((peak_rss - rss0) / n / 2**20, 3),
        "worker_rss_mb": round(peak_rss / 2**20, 1),
        "generator_tick_late_p99_ms": _q(ticker.lateness_ms, 0.99),
    }


def _passes(step: dict[str, Any], unloaded_v2v: float | None) -> bool:
    return (
        step["errors"] == 0
        and step["lateness_p99_ms"] is not None
        and step["lateness_p99_ms"] <= LATENESS_LIMIT_MS
        and (unloaded_v2v is None or (step["v2v_p95_ms"] or 1e9) <= unloaded_v2v + V2V_MARGIN_MS)
    )


def markdown(result: dict[str, Any]) -> str:
    """The steps as a Markdown table."""
    lines = [
        "# Concurrent calls on one media worker process",
        "",
        f"{result['machine']}; {result['when']}. The worker on CPU {result['worker_cpus']}, "
        f"the load generator on CPU {result['generator_cpus']}; the worker's event loop "
        f"{result['worker_event_loop']}; "
        f"{result['step_s']} s per step; the callers' 20 ms clocks spread over "
        f"{result['phases']} phases. Capacity (p99 lateness <= {LATENESS_LIMIT_MS:.0f} ms, "
        f"v2v p95 within {V2V_MARGIN_MS:.0f} ms of N=1, no error): "
        f"**{result['capacity']} calls on one core**.",
        "",
        "| calls | turns | errors | lateness p50 / p99 / max ms | v2v p50 / p95 ms | barge-ins: "
        "StopAudio after detection p50 / p99 ms | worker CPU % | CPU ms per call-second "
        "| MB per call | generator tick late p99 ms | passes |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in result["steps"]:
        lines.append(
            f"| {s['calls']} | {s['turns']} | {s['errors']} | {s['lateness_p50_ms']} / "
            f"{s['lateness_p99_ms']} / {s['lateness_max_ms']} | {s['v2v_p50_ms']} / "
            f"{s['v2v_p95_ms']} | {s['barge_ins']}: {s['stop_audio_p50_ms']} / "
            f"{s['stop_audio_p99_ms']} | {s['worker_cpu_percent']} | {s['cpu_ms_per_call_s']} | "
            f"{s['memory_mb_per_call']} | {s['generator_tick_late_p99_ms']} | "
            f"{'yes' if s['passes'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else [0]
    worker_cpus = {cpus[0]}
    generator_cpus = set(cpus[1:]) or worker_cpus
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, generator_cpus)
    try:
        return await _steps(args, worker_cpus, generator_cpus)
    finally:  # a caller in the same process (a test) gets its cores back
        with contextlib.suppress(AttributeError, OSError):
            os.sched_setaffinity(0, cpus)


async def _steps(
    args: argparse.Namespace, worker_cpus: set[int], generator_cpus: set[int]
) -> dict[str, Any]:
    port = args.port
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--serve", "--port", str(port),
        "--cpus", ",".join(map(str, worker_cpus)),
        stdout=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        line = (await worker.stdout.readline()).decode()
        if not line.startswith("READY "):
            raise RuntimeError("the media worker did not start")
        url = f"ws://127.0.0.1:{int(line.split()[1])}"
        loop = line.split()[2]
        steps: list[dict[str, Any]] = []
        unloaded = None
        capacity = 0
        for n in args.steps:
            step = await run_step(url, worker.pid, n, args.step_s, phases=args.phases)
            if n == 1:
                unloaded = step["v2v_p95_ms"]
            step["passes"] = _passes(step, unloaded)
            steps.append(step)
            print(json.dumps(step), flush=True)
            if not step["passes"]:
                break
            capacity = n
    finally:
        worker.terminate()
        await worker.wait()
    return {
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}",
        "worker_cpus": sorted(worker_cpus),
        "generator_cpus": sorted(generator_cpus),
        "step_s": args.step_s,
        "phases": args.phases,
        "worker_event_loop": loop,
        "capacity": capacity,
        "steps": steps,
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--cpus", default="0", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help="the worker's port (0: any free)")
    parser.add_argument("--steps", default="1,100,200,300,400,500,600,700",
                        type=lambda raw: [int(n) for n in raw.split(",")])  # fmt: skip
    parser.add_argument("--step-s", type=float, default=25.0)
    parser.add_argument("--phases", type=int, default=10,
                        help="slices of the 20 ms the callers' frame clocks are spread over")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results")
    arguments = parser.parse_args()
    if arguments.serve:
        serve(arguments.port, {int(c) for c in arguments.cpus.split(",")})
        sys.exit(0)
    result = asyncio.run(main(arguments))
    arguments.out_dir.mkdir(parents=True, exist_ok=True)
    (arguments.out_dir / "load.json").write_text(json.dumps(result, indent=2) + "\n")
    (arguments.out_dir / "load.md").write_text(markdown(result))
    print(markdown(result))
