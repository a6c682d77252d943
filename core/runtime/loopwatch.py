"""Opt-in diagnostic: how long the event loop stalls (``LOOP_STALL_REPORT``).

The loop's stall is the length of its longest *turn*: the time between its selector
returning and the loop asking it again, during which the loop runs every callback that was
ready (a blocking call, a long synchronous step, a burst's continuations; a
garbage-collector pause, also timed on its own). Nothing that becomes ready meanwhile runs
sooner. The turn is timed by wrapping the selector's ``select`` (two clock reads a turn), so
every turn is seen and an idle loop is not woken to be measured; a loop without a selector
(not asyncio's own) is measured by a 10 ms ticker's lateness instead. Every second one
JSON line is appended to the report file::

    {"pid": 123, "from_ns": ..., "to_ns": ..., "max_stall_ms": 1.8, "max_stall_cpu_ms": 1.7,
     "max_gc_ms": 0.4}

``max_stall_cpu_ms`` is the CPU the loop's thread used during that worst turn: close to the
stall when the loop itself ran that long, much less when the process was waiting for a
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
from collections.abc import AsyncIterator, Callable
from typing import Any, TextIO

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


class _Windows:
    """The worst stall per window, written as one line when the window ends."""

    def __init__(self, out: TextIO, pauses: _GcPauses) -> None:
        self._out = out
        self._pauses = pauses
        self._pid = os.getpid()
        self._window_ns = int(WINDOW_SECONDS * 1e9)
        self.window_from = time.perf_counter_ns()
        self._worst = self._worst_cpu = 0

    def stalled(self, stall_ns: int, cpu_ns: int, now: int) -> None:
        if stall_ns > self._worst:
            self._worst, self._worst_cpu = stall_ns, cpu_ns
        if now - self.window_from >= self._window_ns:
            line = {
                "pid": self._pid,
                "from_ns": self.window_from,
                "to_ns": now,
                "max_stall_ms": round(self._worst / 1e6, 3),
                "max_stall_cpu_ms": round(self._worst_cpu / 1e6, 3),
                "max_gc_ms": round(self._pauses.take() / 1e6, 3),
            }
            # One short line a second on a local file: too small to stall what it measures.
            self._out.write(json.dumps(line) + "\n")
            self._out.flush()
            self.window_from, self._worst, self._worst_cpu = now, 0, 0


class _TurnTimer:
    """Times each turn of a selector event loop through its selector's ``select``."""

    def __init__(self, selector: Any, windows: _Windows) -> None:
        self._selector = selector
        self._select: Callable[..., Any] = selector.select
        self._windows = windows
        self._turn_from = time.perf_counter_ns()
        self._cpu_from = time.thread_time_ns()

    def select(self, timeout: float | None = None) -> Any:
        # The loop asks the selector again: the turn that began at its last answer is over.
        now, cpu = time.perf_counter_ns(), time.thread_time_ns()
        self._windows.stalled(now - self._turn_from, cpu - self._cpu_from, now)
        try:
            return self._select(timeout)
        finally:
            self._turn_from, self._cpu_from = time.perf_counter_ns(), time.thread_time_ns()

    def install(self) -> None:
        self._selector.select = self.select  # an instance attribute: the class's is kept

    def remove(self) -> None:
        with contextlib.suppress(AttributeError):
            del self._selector.select


async def _tick(windows: _Windows) -> None:
    """A loop without a selector: how late a 10 ms ticker wakes is its stall."""
    tick_ns = int(TICK_SECONDS * 1e9)
    expected = time.perf_counter_ns() + tick_ns
    cpu_before = time.thread_time_ns()
    while True:
        await asyncio.sleep(TICK_SECONDS)
        now, cpu = time.perf_counter_ns(), time.thread_time_ns()
        windows.stalled(max(0, now - expected), cpu - cpu_before, now)
        expected, cpu_before = now + tick_ns, cpu


class _Waker:
    """Wakes an idle loop a few times a window, so each window's line is written on time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle = loop.call_later(WINDOW_SECONDS / 4, self._wake)

    def _wake(self) -> None:
        self._handle = self._loop.call_later(WINDOW_SECONDS / 4, self._wake)

    def cancel(self) -> None:
        self._handle.cancel()


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
    loop = asyncio.get_running_loop()
    selector = getattr(loop, "_selector", None)
    with open(path, "a", encoding="utf-8") as out:  # noqa: ASYNC230 - once, at start-up
        windows = _Windows(out, pauses)
        gc.callbacks.append(pauses)
        if selector is not None:
            timer = _TurnTimer(selector, windows)
            timer.install()
            waker = _Waker(loop)
            try:
                yield
            finally:
                timer.remove()
                waker.cancel()
                gc.callbacks.remove(pauses)
            return
        task = asyncio.create_task(_tick(windows), name="loop-stall-report")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            gc.callbacks.remove(pauses)
