"""Opt-in diagnostic: how long the event loop stalls (``LOOP_STALL_REPORT``).

A 10 ms ticker on the process's event loop measures how late it wakes up: that lateness is
the longest time the loop ran something else without yielding (a blocking call, a long
synchronous step, a garbage-collector pause, which are also timed on their own). Every
second one JSON line is appended to the report file::

    {"pid": 123, "from_ns": ..., "to_ns": ..., "max_stall_ms": 1.8, "max_stall_cpu_ms": 1.7,
     "max_gc_ms": 0.4}

``max_stall_cpu_ms`` is the CPU the loop's thread used during that worst late tick: close to
the stall when the loop itself ran that long, much less when the process was waiting for a
core (on a host whose cores are all busy, the kernel's scheduler makes every process late).

``from_ns``/``to_ns`` are ``time.perf_counter_ns()`` (CLOCK_MONOTONIC on Linux), so another
process on the same host, like ``bench/execution.py``, can keep the windows of its own
measured phase. Off by default; nothing is started then.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
import time
from collections.abc import AsyncIterator
from typing import TextIO

TICK_SECONDS = 0.01
WINDOW_SECONDS = 1.0


class _GcPauses:
    """The longest garbage-collector pause since the last :meth:`take`."""

    def __init__(self) -> None:
        self.worst_ns = 0
        self._started = 0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter_ns()
        else:
            self.worst_ns = max(self.worst_ns, time.perf_counter_ns() - self._started)

    def take(self) -> int:
        worst, self.worst_ns = self.worst_ns, 0
        return worst


async def _tick(out: TextIO, pauses: _GcPauses) -> None:
    pid = os.getpid()
    tick_ns = int(TICK_SECONDS * 1e9)
    window_ns = int(WINDOW_SECONDS * 1e9)
    window_from = time.perf_counter_ns()
    expected = window_from + tick_ns
    cpu_before = time.thread_time_ns()
    worst = worst_cpu = 0
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now, cpu = time.perf_counter_ns(), time.thread_time_ns()
        if now - expected > worst:
            worst, worst_cpu = now - expected, cpu - cpu_before
        expected, cpu_before = now + tick_ns, cpu
        if now - window_from >= window_ns:
            line = {
                "pid": pid,
                "from_ns": window_from,
                "to_ns": now,
                "max_stall_ms": round(worst / 1e6, 3),
                "max_stall_cpu_ms": round(worst_cpu / 1e6, 3),
                "max_gc_ms": round(pauses.take() / 1e6, 3),
            }
            # One short line a second on a local file: too small to stall what it measures.
            out.write(json.dumps(line) + "\n")
            out.flush()
            window_from, worst, worst_cpu = now, 0, 0


@contextlib.asynccontextmanager
async def loop_stall_report(path: str | None) -> AsyncIterator[None]:
    """Report the running loop's stalls to ``path`` (appending) for the block's duration.

    Args:
        path: The report file (``LOOP_STALL_REPORT``); ``None`` reports nothing.
    """
    if not path:
        yield
        return
    pauses = _GcPauses()
    with open(path, "a", encoding="utf-8") as out:  # noqa: ASYNC230 - once, at start-up
        gc.callbacks.append(pauses)
        task = asyncio.create_task(_tick(out, pauses), name="loop-stall-report")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            gc.callbacks.remove(pauses)
