"""Chart rendering off the event loop: a bounded pool of renderer processes and a cache.

matplotlib holds the GIL for a whole render (~100 ms of CPU for a year of fills), so a
thread would stall the process's event loop for that long; a separate process does not. The
pool is small (one process on a 2-core host: a core stays free for the alert path) and
bounded: at most ``max_waiting`` renders wait for it, so a burst of ``/pnl`` queues instead of
taking every core from alert execution, and beyond that the caller is told to try again.
Workers start from a ``forkserver`` that has already imported matplotlib, so a new worker
never inherits the bot's threads or sockets; each draws a small chart when it starts (fonts,
glyph and date caches), freezes what it holds for the garbage collector and then runs at the
kernel's idle priority (``SCHED_IDLE``): when the alert path needs a core, the chart waits,
not the alert.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Hashable
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path

from core.runtime.logs import get_logger
from core.services.analytics.chart import ChartData, render_png, tune_matplotlib

_PRELOAD = ["core.services.analytics.chart"]
#: Scheduling niceness of a renderer process where ``SCHED_IDLE`` is not available.
RENDER_NICENESS = 19
_WARM_UP = ChartData(
    "warm-up",
    "net +$1.00",
    "LIVE",
    "UTC",
    "equity",
    times=[0.0, 43_200.0, 86_400.0],
    values=[1.0, 0.5, 2.0],
    entry_times=[0.0],
    exit_times=[43_200.0],
    day_starts=[0.0],
    day_values=[1.0],
)


def default_workers() -> int:
    """Renderer processes for this host: one per core but one, at least one, at most two."""
    return max(1, min(2, (os.cpu_count() or 1) - 1))


def lower_priority() -> None:
    """In a renderer process: run only when no other process wants the CPU.

    With autogroups (Linux's default on a desktop or VM), the scheduler shares the CPU
    between sessions first and between a session's processes second: a renderer in the bot's
    session would spend that session's share, however low its own priority, and the alert
    path started from the same session would then wait behind other sessions. So the
    renderer takes a session of its own, gives that session the lowest weight (``nice 19``),
    and within it runs at ``SCHED_IDLE``; where any of this is not permitted, ``nice 19``.
    """
    os.nice(RENDER_NICENESS)
    with contextlib.suppress(OSError):  # already a session leader: stays where it is
        os.setsid()
    with contextlib.suppress(OSError):  # no autogroups (cgroups decide): nothing to lower
        Path("/proc/self/autogroup").write_text(f"{RENDER_NICENESS}\n")
    idle = getattr(os, "SCHED_IDLE", None)
    if idle is not None:
        with contextlib.suppress(OSError):  # not permitted here (some containers)
            os.sched_setscheduler(0, idle, os.sched_param(0))


def start_renderer() -> None:
    """Initializer of a renderer process: lowest priority, matplotlib tuned and warmed by a
    first chart, and the garbage collector kept out of the renders (see :func:`render`)."""
    lower_priority()
    tune_matplotlib()
    render_png(_WARM_UP)
    # Everything alive now (modules, fonts, caches) lives as long as the process: frozen,
    # the collector never walks it again. Collection happens after each render instead,
    # when it only has that chart's figure to free (a few ms, never a 100-ms pause).
    gc.collect()
    gc.freeze()
    gc.disable()


def render(data: ChartData) -> bytes:
    """The pool's task: the chart, then its figure's garbage collected at once."""
    png = render_png(data)
    gc.collect()
    return png


def renderer_pool(workers: int) -> ProcessPoolExecutor:
    """Renderer processes from a forkserver that has imported matplotlib, each started by
    :func:`start_renderer`; submit :func:`render` to them."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_PRELOAD)
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=start_renderer)


class RendererBusyError(Exception):
    """Too many charts are waiting for the renderer; try again in a moment."""


class ChartRenderer:
    """Renders :class:`ChartData` to PNG in a process pool, caching by key.

    Args:
        workers: Renderer processes (each renders one chart at a time); by default one per
            core but one, at most two.
        max_waiting: Renders allowed in flight or queued at once.
        cache_size: Rendered charts kept (least recently used dropped first).
        executor: A ready executor instead of the process pool (benchmarks, tests).
    """

    def __init__(
        self,
        workers: int | None = None,
        *,
        max_waiting: int = 32,
        cache_size: int = 256,
        executor: Executor | None = None,
    ) -> None:
        self._workers = workers or default_workers()
        self._executor = executor
        self._max_waiting = max_waiting
        self._waiting = 0
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._log = get_logger(__name__)

    def _pool(self) -> Executor:
        if self._executor is None:
            self._executor = renderer_pool(self._workers)
        return self._executor

    def start(self) -> None:
        """Start the renderer processes now, in the background, so that the first chart a
        trader asks for does not wait for them to warm up."""
        pool = self._pool()
        for _ in range(self._workers):
            pool.submit(os.getpid)

    def cached(self, key: Hashable) -> bytes | None:
        """The chart rendered under ``key``, if still cached."""
        png = self._cache.get(key)
        if png is not None:
            self._cache.move_to_end(key)
        return png

    async def render(self, key: Hashable, data: ChartData) -> bytes:
        """The PNG of ``data``, from the cache when ``key`` was rendered before.

        Raises:
            RendererBusyError: ``max_waiting`` renders are already waiting.
        """
        png = self.cached(key)
        if png is not None:
            return png
        if self._waiting >= self._max_waiting:
            raise RendererBusyError
        self._waiting += 1
        try:
            loop = asyncio.get_running_loop()
            png = await loop.run_in_executor(self._pool(), render, data)
        finally:
            self._waiting -= 1
        self._cache[key] = png
        self._cache.move_to_end(key)
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return png

    def close(self) -> None:
        """Stop the renderer processes (a later render starts new ones)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
