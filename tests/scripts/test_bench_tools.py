"""scripts/bench_tools.py: the tools API benchmark on the local stack, end to end."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from bench_tools import OPERATIONS, _Skipped, _Tally, main

from functions.tools import POLL_MS


def test_the_benchmark_times_every_operation_of_every_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--calls", "2", "--concurrency", "2", "--out-dir", str(tmp_path)]
    assert main(argv) == 0

    result = json.loads((tmp_path / "tools_api.json").read_text())
    assert result["parameters"] == {
        "calls": 2, "concurrency": 2, "warmup": 1, "window_days": 3, "status_poll_ms": POLL_MS
    }  # fmt: skip
    assert result["machine"]["cpu_count"] >= 1 and result["machine"]["python"]
    assert result["date"] and result["wall_s"] > 0
    assert list(result["operations"]) == list(OPERATIONS)
    for op, row in result["operations"].items():
        assert (row["n"], row["errors"], row["skipped"]) == (2, 0, 0), op
        assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] <= row["max_ms"], op
    assert (result["ring_errors"], result["failures"]) == (0, [])

    markdown = (tmp_path / "tools_api.md").read_text()
    assert "| operation | n | p50 ms | p95 ms | p99 ms | max ms | errors |" in markdown
    for op in OPERATIONS:
        assert f"| {op} | 2 | " in markdown
    assert "maxQueuePollingInterval" in markdown
    table = capsys.readouterr().out
    assert all(op in table for op in OPERATIONS)


def test_a_failed_or_wrong_answer_is_an_error_and_not_timed() -> None:
    tally = _Tally()

    async def answer() -> str:
        return "cancelled"

    async def refuse() -> str:
        raise ConnectionError("the API is down")

    async def scenario() -> None:
        assert await tally.measure("cancel", answer, lambda r: r == "cancelled", "") == "cancelled"
        for request in (answer, refuse):
            with pytest.raises(_Skipped):
                await tally.measure("book", request, lambda r: r == "booked", "not booked")

    asyncio.run(scenario())
    assert (len(tally.timings_ms["cancel"]), tally.errors["cancel"]) == (1, 0)
    assert (tally.timings_ms["book"], tally.errors["book"]) == ([], 2)
    assert [f.split(":")[0] for f in tally.failures] == ["book", "book"]
    assert "not booked" in tally.failures[0] and "the API is down" in tally.failures[1]
