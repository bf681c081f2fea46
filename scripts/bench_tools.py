"""``scripts/bench_tools``: the tools API's round trip as a call pays it, on loopback.

Starts the local stack (``local_stack.py``: the local ACS, the Functions app on the
local Functions host with its orchestrations in process, the media worker) on a fresh
demo clinic. Each benchmark call rings the clinic so ``incoming_call`` answers it and
issues the call's tools token, then sends the call's back-office requests through the
media worker's own client (``ToolsApiCallOffice``): verify_identity, find_slots,
upcoming_appointments, book, cancel, take_message. Each request is timed with
``time.perf_counter()`` around the client call (client + HTTP + function + store/EHR
+ orchestration) and its answer checked; a failed or wrong answer counts as an error
and is not timed, and the rest of that call is skipped. Ringing is not timed.

    scripts/bench_tools [--calls 20] [--concurrency 1] [--warmup 1] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import math
import os
import platform
import sys
import tempfile
import time
import urllib.parse
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
from local_stack import LocalStack, local_stack

from functions.tools import POLL_MS
from reddytalk.ports import Message
from reddytalk.providers.back_office.tools_api import ToolsApi, ToolsApiCallOffice
from reddytalk.providers.seed import DEMO_CLINIC_ID, DEMO_PHONE_NUMBER, demo_clinic
from reddytalk.scheduling.model import Slot
from reddytalk.settings import Settings
from reddytalk.workflows import booking

__all__ = ["OPERATIONS", "main", "run_benchmark"]

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = (
    "verify_identity",
    "find_slots",
    "upcoming_appointments",
    "book",
    "cancel",
    "take_message",
)
WINDOW_DAYS = 3
"""find_slots searches this many days from tomorrow's midnight, clinic time."""
_PATIENT = ("Robert", "Taylor", dt.date(1980, 3, 15))
_CALLER_NUMBER = "+15555550123"
_KEPT_FAILURES = 20
T = TypeVar("T")


class _WrongAnswer(Exception):
    """The API answered, but not what it should have."""


class _Skipped(Exception):
    """An earlier operation of the call failed; the rest of the call is not sent."""


@dataclass
class _Tally:
    """Timings of the successful operations, and what went wrong."""

    timings_ms: dict[str, list[float]] = field(default_factory=lambda: {o: [] for o in OPERATIONS})
    errors: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OPERATIONS, 0))
    failures: list[str] = field(default_factory=list)
    ring_errors: int = 0
    warmup_ms: dict[str, list[float]] = field(default_factory=dict)
    """The untimed warm-up calls' timings, kept to show what a cold path costs."""

    def fail(self, what: str, error: BaseException) -> None:
        if len(self.failures) < _KEPT_FAILURES:
            self.failures.append(f"{what}: {type(error).__name__}: {error}")

    async def measure(
        self, op: str, request: Callable[[], Awaitable[T]], check: Callable[[T], bool], why: str
    ) -> T:
        """Time ``request()``; count it as an error if it raises or ``check`` says no."""
        try:
            start = time.perf_counter()
            result = await request()
            elapsed_ms = (time.perf_counter() - start) * 1000
            if not check(result):
                raise _WrongAnswer(why)
        except Exception as error:  # any failure is the operation's error, not a crash
            self.errors[op] += 1
            self.fail(op, error)
            raise _Skipped from error
        self.timings_ms[op].append(elapsed_ms)
        return result


@dataclass(frozen=True, slots=True)
class _Bench:
    """What every call shares: the stack, the clients and the slot search window."""

    stack: LocalStack
    api: ToolsApi
    http: aiohttp.ClientSession
    start: dt.datetime
    end: dt.datetime


async def _ring(bench: _Bench) -> tuple[str, str]:
    """Ring the clinic as ACS would; the call id and the tools token it was answered with."""
    call_id = str(uuid.uuid4())
    event = bench.stack.acs.incoming_call_event(
        to_number=DEMO_PHONE_NUMBER, from_number=_CALLER_NUMBER, correlation_id=call_id
    )
    url = f"{bench.stack.functions_url}/runtime/webhooks/EventGrid?functionName=incoming_call"
    headers = {"aeg-event-type": "Notification"}
    async with bench.http.post(url, json=[event], headers=headers) as response:
        if response.status != 200:
            raise RuntimeError(f"incoming_call answered {response.status}")
    # Matched by correlation id: under concurrency the last answer may be another call's.
    answered = next((a for a in bench.stack.acs.answered if a.correlation_id == call_id), None)
    if answered is None or answered.media_streaming is None:
        raise RuntimeError("incoming_call did not answer the call with a media stream")
    media_url = str(answered.media_streaming["transportUrl"])
    [token] = urllib.parse.parse_qs(urllib.parse.urlsplit(media_url).query)["token"]
    return call_id, token


async def _call(bench: _Bench, slot: Slot, tally: _Tally) -> None:
    """One call's six requests, in the order a booking-then-cancelling call sends them."""
    try:
        call_id, token = await _ring(bench)
    except Exception as error:
        tally.ring_errors += 1
        tally.fail("ring", error)
        return
    office = bench.api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token=token)
    try:
        await _requests(bench, office, call_id, slot, tally)
    except _Skipped:
        pass


async def _requests(
    bench: _Bench, office: ToolsApiCallOffice, call_id: str, slot: Slot, tally: _Tally
) -> None:
    given, family, born = _PATIENT
    patient = await tally.measure(
        "verify_identity",
        lambda: office.find_patient(given_name=given, family_name=family, birth_date=born),
        lambda p: p is not None and (p.given_name, p.family_name) == (given, family),
        "the patient was not found",
    )
    assert patient is not None  # checked above
    await tally.measure(
        "find_slots",
        lambda: office.find_free_slots(start=bench.start, end=bench.end, provider_id=None),
        lambda slots: any(s.slot_id == slot.slot_id for s in slots),
        "the call's slot is not among the free ones",
    )
    await tally.measure(
        "upcoming_appointments",
        lambda: office.upcoming_appointments(patient_id=patient.patient_id),
        lambda found: all(a.slot_id != slot.slot_id for a in found),
        "the call's slot is already booked for the patient",
    )
    data = {"call_id": call_id, "clinic_id": DEMO_CLINIC_ID, "slot_id": slot.slot_id,
            "patient_id": patient.patient_id, "appointment_type": "checkup"}  # fmt: skip
    book = booking.instance_id(booking.BOOK_APPOINTMENT, call_id, slot.slot_id)
    booked = await tally.measure(
        "book",
        lambda: office.run(booking.BOOK_APPOINTMENT, instance_id=book, data=data),
        lambda r: r.get("status") == "booked" and r["appointment"]["slot_id"] == slot.slot_id,
        "the slot was not booked",
    )
    appointment_id = str(booked["appointment"]["appointment_id"])
    data = {"call_id": call_id, "clinic_id": DEMO_CLINIC_ID, "appointment_id": appointment_id,
            "patient_id": patient.patient_id}  # fmt: skip
    cancel = booking.instance_id(booking.CANCEL_APPOINTMENT, call_id, appointment_id)
    await tally.measure(
        "cancel",
        lambda: office.run(booking.CANCEL_APPOINTMENT, instance_id=cancel, data=data),
        lambda r: (
            r.get("status") == "cancelled" and r["appointment"]["appointment_id"] == appointment_id
        ),
        "the appointment was not cancelled",
    )
    message = Message(
        message_id=f"{call_id}:message:1", call_id=call_id, clinic_id=DEMO_CLINIC_ID,
        taken_at=dt.datetime.now(dt.UTC), text="Please call me back about my refill.",
        caller_name=f"{given} {family}", patient_id=patient.patient_id,
    )  # fmt: skip
    # The client raises unless the API answered 200, which it does once the store kept it.
    await tally.measure("take_message", lambda: office.take_message(message), lambda _: True, "")


async def _plan(bench: _Bench, needed: int) -> list[Slot]:
    """The free slots of the window; call n books the n-th, so concurrent calls never meet."""
    call_id, token = await _ring(bench)
    office = bench.api.for_call(call_id=call_id, clinic_id=DEMO_CLINIC_ID, call_token=token)
    slots = await office.find_free_slots(start=bench.start, end=bench.end, provider_id=None)
    if len(slots) < needed:
        raise RuntimeError(f"{len(slots)} free slots in the window, {needed} needed")
    return slots


async def run_benchmark(
    settings: Settings, *, calls: int, concurrency: int, warmup: int
) -> tuple[_Tally, float]:
    """Run the calls on a local stack; their tally and the wall time of the timed ones (s)."""
    tomorrow = dt.datetime.now(demo_clinic().tz).date() + dt.timedelta(days=1)
    start = dt.datetime.combine(tomorrow, dt.time(0, 0), tzinfo=demo_clinic().tz)
    async with (
        local_stack(settings) as stack,
        aiohttp.ClientSession() as http,
    ):
        api = ToolsApi(base_url=stack.functions_url)  # one for all calls, as in the media worker
        try:
            bench = _Bench(stack, api, http, start, start + dt.timedelta(days=WINDOW_DAYS))
            # Slots are reused only by calls at least len(plan) apart, never concurrent ones.
            plan = await _plan(bench, needed=concurrency)
            warm = _Tally()
            for n in range(warmup):  # cold paths (first request, first orchestration)
                await _call(bench, plan[n % len(plan)], warm)
            if warm.failures:
                raise RuntimeError(f"the warm-up call failed: {warm.failures[0]}")
            tally, queue = _Tally(warmup_ms=warm.timings_ms), iter(range(warmup, warmup + calls))

            async def caller() -> None:
                for n in queue:  # shared: each caller takes the next call
                    await _call(bench, plan[n % len(plan)], tally)

            began = time.perf_counter()
            async with asyncio.TaskGroup() as group:
                for c in range(concurrency):
                    group.create_task(caller(), name=f"bench-caller-{c}")
            return tally, time.perf_counter() - began
        finally:
            await api.close()


def _percentile(sorted_ms: list[float], p: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return sorted_ms[max(0, math.ceil(p / 100 * len(sorted_ms)) - 1)]


def _summary(tally: _Tally, calls: int) -> dict[str, dict[str, Any]]:
    summary: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        ms = sorted(tally.timings_ms[op])
        row: dict[str, Any] = {"n": len(ms)}
        for name, p in (("p50_ms", 50), ("p95_ms", 95), ("p99_ms", 99), ("max_ms", 100)):
            row[name] = round(_percentile(ms, p), 2) if ms else None
        row["mean_ms"] = round(sum(ms) / len(ms), 2) if ms else None
        row["errors"] = tally.errors[op]
        row["skipped"] = calls - len(ms) - tally.errors[op]
        summary[op] = row
    return summary


def _machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text(encoding="utf-8").splitlines() if cpuinfo.exists() else []
    names = [line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")]
    model = names[0] if names else ""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": model or platform.processor() or None,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


_COLUMNS = ("n", "p50_ms", "p95_ms", "p99_ms", "max_ms", "errors")
_HEADERS = ("operation", "n", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors")


def _cells(op: str, row: dict[str, Any]) -> list[str]:
    return [op] + ["-" if row[c] is None else f"{row[c]:.1f}" if c.endswith("_ms")
                   else str(row[c]) for c in _COLUMNS]  # fmt: skip


def _table(summary: dict[str, dict[str, Any]]) -> str:
    rows = [list(_HEADERS)] + [_cells(op, row) for op, row in summary.items()]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_HEADERS))]

    def line(cells: list[str]) -> str:
        first, *rest = zip(cells, widths, strict=True)
        return "  ".join([first[0].ljust(first[1]), *(c.rjust(w) for c, w in rest)])

    lines = [line(row) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def _markdown(result: dict[str, Any]) -> str:
    p, m = result["parameters"], result["machine"]
    rows = ["| " + " | ".join(_HEADERS) + " |", "|---|" + "---:|" * (len(_HEADERS) - 1)]
    rows += ["| " + " | ".join(_cells(op, r)) + " |" for op, r in result["operations"].items()]
    failures = "".join(f"\n- `{f}`" for f in result["failures"]) or " none."
    return f"""# Tools API round trip

{result["date"]} · {m["cpu_count"]} CPUs ({m["cpu_model"] or "unknown model"}) ·
Python {m["python"]} · {m["platform"]}

`scripts/bench_tools --calls {p["calls"]} --concurrency {p["concurrency"]} --warmup {p["warmup"]}`:
{p["calls"]} calls, {p["concurrency"]} at a time, after {p["warmup"]} untimed warm-up call(s);
{result["wall_s"]:.2f} s for the timed calls ({result["calls_per_s"]:.1f} calls/s).

## What this measures

What the media worker waits for on each tool request during a call: its own client
(`ToolsApiCallOffice`), HTTP on loopback, the `tools` function of the Functions app
served by the local Functions host (`scripts/local_functions.py`), the embedded
store and EHR (SQLite on local disk) and, for `book` and `cancel`, the booking
orchestration, run in process by the local host's `InlineRunner` behind its Durable
HTTP API facade. The function waits for the orchestration by asking the Durable
API for its status every {p["status_poll_ms"]} ms
(`wait_for_completion_or_create_check_status_response`, `POLL_MS` in
`functions/tools.py`), so a write that is not done at the first check costs at
least one such interval, here as in Azure.
The client, the host and the media worker share one process and event loop, so
with several calls at once they also compete with each other for it.
Each call is a call `incoming_call` answered (its own call and patient tokens); the
search window is {p["window_days"]} days from tomorrow, clinic time. A failed or wrong answer is
an error and is not timed; the rest of that call is then skipped. Percentiles are
nearest-rank (with fewer than 100 calls, p99 is the maximum).

{chr(10).join(rows)}

Failures:{failures}

## What this does not measure

- **The Durable task hub's queues.** In Azure the orchestration runs through the
  task hub's Azure Storage queues, not in process. `host.json` sets
  `maxQueuePollingInterval` to 1 s: when a queue is idle its polling backs off up to
  that, so each queue hop can add up to 1 s. A booking orchestration has several
  hops: its start message, then each activity scheduled and each completion
  returned (book runs hold_slot, write_appointment, record_change; cancel runs
  cancel_in_ehr, record_change). None of that waiting is in these numbers.
- The Functions host and Python worker (gRPC between them), TLS, the network between
  the media worker and the Functions app, Cosmos DB and a real EHR, cold starts, and
  Azure Storage latency. No Azure numbers are estimated here; measure them there.
"""


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``scripts/bench_tools``: run, print the table, write the results."""
    parser = argparse.ArgumentParser(
        prog="scripts/bench_tools", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--calls", type=int, default=20, help="timed calls (default 20)")
    parser.add_argument("--concurrency", type=int, default=1, help="calls at once (default 1)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    parser.add_argument("--out-dir", type=Path, default=ROOT / "bench" / "results",
                        help="where tools_api.json and .md go (default bench/results)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.calls < 1 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--calls and --concurrency must be at least 1, --warmup at least 0")
    with tempfile.TemporaryDirectory(prefix="reddytalk-bench-") as scratch:
        # A fresh demo clinic each run, on free ports.
        settings = dataclasses.replace(Settings.from_env(), data_dir=Path(scratch), port=0)
        tally, wall_s = asyncio.run(run_benchmark(
            settings, calls=args.calls, concurrency=args.concurrency, warmup=args.warmup
        ))  # fmt: skip
    summary = _summary(tally, args.calls)
    result = {
        "benchmark": "tools_api",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "parameters": {
            "calls": args.calls,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "window_days": WINDOW_DAYS,
            "status_poll_ms": POLL_MS,
        },
        "wall_s": round(wall_s, 3),
        "calls_per_s": round(args.calls / wall_s, 2),
        "ring_errors": tally.ring_errors,
        "operations": summary,
        "failures": tally.failures,
        "warmup_ms": {op: [round(ms, 2) for ms in v] for op, v in tally.warmup_ms.items()},
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "tools_api.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "tools_api.md").write_text(_markdown(result))
    print(f"tools API round trip: {args.calls} calls, concurrency {args.concurrency}, "
          f"{wall_s:.2f} s\n\n{_table(summary)}\n")  # fmt: skip
    for failure in tally.failures:
        print(f"  failed: {failure}")
    print(f"wrote {args.out_dir / 'tools_api.json'} and tools_api.md")
    errors = tally.ring_errors + sum(tally.errors.values())
    return 1 if errors else 0


if __name__ == "__main__":
    from reddytalk.logs import configure_logging

    configure_logging("WARNING")
    sys.exit(main())
