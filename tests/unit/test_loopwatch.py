"""The opt-in event-loop stall report (``LOOP_STALL_REPORT``) used by the benchmarks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

from core.runtime.loopwatch import WINDOW_SECONDS, _GcPauses, _tick, _Windows, loop_stall_report


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_a_blocking_call_shows_as_a_stall_in_the_window_that_covers_it(
    tmp_path: Path,
) -> None:
    report = tmp_path / "stalls.jsonl"
    async with loop_stall_report(str(report)):
        await asyncio.sleep(0.1)
        blocked_from = time.perf_counter_ns()
        time.sleep(0.06)  # noqa: ASYNC251 - the blocking call whose stall is to be seen
        gc.collect()
        await asyncio.sleep(WINDOW_SECONDS + 0.3)
    lines = _lines(report)
    assert lines, "a full window passed, so at least one line was written"
    assert {line["pid"] for line in lines} == {os.getpid()}
    covering = [line for line in lines if line["from_ns"] <= blocked_from <= line["to_ns"]]
    assert len(covering) == 1, "the windows tile time, so exactly one covers the block"
    assert covering[0]["max_stall_ms"] >= 60, "the turn that blocked lasted the 60 ms at least"
    assert covering[0]["max_gc_ms"] > 0, "the full collection's pause is reported"


async def test_a_busy_loop_shows_its_cpu_in_the_stall(tmp_path: Path) -> None:
    report = tmp_path / "stalls.jsonl"
    async with loop_stall_report(str(report)):
        await asyncio.sleep(0.1)
        busy_from = time.perf_counter_ns()
        _spin(0.2)
        await asyncio.sleep(WINDOW_SECONDS + 0.3)
    covering = [line for line in _lines(report) if line["from_ns"] <= busy_from <= line["to_ns"]]
    assert len(covering) == 1
    # CPU time, not wall time: a loaded machine makes the stall longer, never the CPU less.
    # (Its worst stall is this one unless the kernel kept the process off a core for longer
    # than 200 ms.)
    assert covering[0]["max_stall_cpu_ms"] >= 190, "the loop itself ran those 200 ms"


def _spin(cpu_seconds: float) -> None:
    """Use ``cpu_seconds`` of this thread's CPU without yielding to the event loop."""
    spin_until = time.thread_time() + cpu_seconds
    spins = 0
    while time.thread_time() < spin_until:
        spins += 1
    assert spins > 0


async def test_windows_follow_one_another_without_gaps(tmp_path: Path) -> None:
    report = tmp_path / "stalls.jsonl"
    async with loop_stall_report(str(report)):
        await asyncio.sleep(2 * WINDOW_SECONDS + 0.3)
    lines = _lines(report)
    assert len(lines) >= 2
    for earlier, later in itertools.pairwise(lines):
        assert later["from_ns"] == earlier["to_ns"], "each window starts where the last ended"


async def test_the_loop_is_timed_through_its_selector_and_left_as_it_was(tmp_path: Path) -> None:
    selector = asyncio.get_running_loop()._selector  # type: ignore[attr-defined]
    report = tmp_path / "stalls.jsonl"
    async with loop_stall_report(str(report)):
        assert "select" in vars(selector), "each turn is timed by the selector's select"
        await asyncio.sleep(WINDOW_SECONDS + 0.3)
    assert "select" not in vars(selector), "the selector's own select is back"
    assert _lines(report), "an idle loop still writes its window's line"


async def test_unset_starts_no_ticker() -> None:
    async with loop_stall_report(None):
        names = {task.get_name() for task in asyncio.all_tasks()}
    assert "loop-stall-report" not in names, "with no report file nothing runs on the loop"


async def test_a_loop_without_a_selector_is_measured_by_a_ticker(tmp_path: Path) -> None:
    # uvloop and other loops have no asyncio selector to time: a 10 ms ticker's lateness.
    report = tmp_path / "stalls.jsonl"
    with report.open("a") as out:
        task = asyncio.create_task(_tick(_Windows(out, _GcPauses())))
        await asyncio.sleep(0.05)
        time.sleep(0.06)  # noqa: ASYNC251 - the blocking call whose stall is to be seen
        await asyncio.sleep(WINDOW_SECONDS)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    lines = _lines(report)
    assert lines
    assert max(line["max_stall_ms"] for line in lines) >= 50, "late by the block, less a tick"
