"""scripts/bench_load.py: the load generator's measures, and a short run against a worker."""

from __future__ import annotations

import argparse
import asyncio
import json

import pytest
from bench_load import FRAME_S, _lateness, _passes, main, markdown


def test_lateness_is_measured_against_the_answer_s_own_real_time_schedule() -> None:
    on_time = [10.0 + i * FRAME_S for i in range(5)]
    assert _lateness(on_time) == pytest.approx([0.0] * 5, abs=1e-6)
    late = [10.0, 10.02, 10.07, 10.08]  # the third frame 30 ms late, the fourth 20 ms
    assert _lateness(late) == pytest.approx([0.0, 0.0, 30.0, 20.0])
    assert _lateness([10.0, 10.005]) == [0.0, 0.0]  # early is not late


def test_a_step_passes_only_within_every_limit() -> None:
    good = {"errors": 0, "lateness_p99_ms": 19.0, "v2v_p95_ms": 1180.0}
    assert _passes(good, unloaded_v2v=1131.0)
    assert not _passes({**good, "errors": 1}, unloaded_v2v=1131.0)
    assert not _passes({**good, "lateness_p99_ms": 21.0}, unloaded_v2v=1131.0)
    assert not _passes({**good, "v2v_p95_ms": 1182.0}, unloaded_v2v=1131.0)


@pytest.mark.e2e
def test_a_short_run_steps_up_and_reports_every_figure() -> None:
    args = argparse.Namespace(steps=[1, 3], step_s=6.0, port=0, phases=2)
    result = asyncio.run(main(args))

    assert [s["calls"] for s in result["steps"]] == [1, 3]
    for step in result["steps"]:
        assert step["errors"] == 0 and step["turns"] >= step["calls"], step
        # Answered on the recognizer's hypothesis, long before its final (1 s after the
        # speech); never before the settled silence (200 ms from the VAD's end of speech,
        # at most ~60 ms before the caller's own) and the voice's first audio (125 ms).
        assert 200 - 60 + 125 <= step["v2v_p95_ms"] < 1000
        assert step["lateness_p99_ms"] is not None and step["worker_cpu_percent"] > 0
        assert step["memory_mb_per_call"] is not None
    assert result["capacity"] in (1, 3)
    table = markdown(result)
    assert "| 3 | " in table and "calls on one core" in table and "over 2 phases" in table
    json.dumps(result)  # JSON-ready
