"""Chart rendering off the event loop: a bounded pool of renderer processes and a cache.

matplotlib holds the GIL for most of a render (~150 ms for a year of fills), so a thread
would stall the process's event loop for that long; a separate process does not. The pool
is small (one process by default) and bounded: at most ``max_waiting`` renders wait for it,
so a burst of ``/pnl`` queues behind one core instead of taking every core from alert
execution, and beyond that the caller is told to try again. Workers start from a
``forkserver`` that has already imported matplotlib, so a new worker starts warm and never
inherits the bot's threads or sockets. Renderer processes run at the lowest CPU priority
(``nice 19``): when the alert path needs a core, the chart waits, not the alert.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections import OrderedDict
from collections.abc import Hashable
from concurrent.futures import Executor, ProcessPoolExecutor

from core.runtime.logs import get_logger
from core.services.analytics.chart import ChartData, render_png

_PRELOAD = ["core.services.analytics.chart"]
#: Scheduling niceness of a renderer process: the kernel gives the alert path (the web
#: server, the worker, PostgreSQL) the cores first, and charts the time left over.
RENDER_NICENESS = 19


def lower_priority() -> None:
    """In a new renderer process: yield the CPU to everything else (the lowest ``nice``; not
    ``SCHED_IDLE``, which would starve charts outright while the machine is busy)."""
    os.nice(RENDER_NICENESS)


class RendererBusyError(Exception):
    """Too many charts are waiting for the renderer; try again in a moment."""


class ChartRenderer:
    """Renders :class:`ChartData` to PNG in a process pool, caching by key.

    Args:
        workers: Renderer processes (each renders one chart at a time).
        max_waiting: Renders allowed in flight or queued at once.
        cache_size: Rendered charts kept (least recently used dropped first).
        executor: A ready executor instead of the process pool (benchmarks, tests).
    """

    def __init__(
        self,
        workers: int = 1,
        *,
        max_waiting: int = 32,
        cache_size: int = 256,
        executor: Executor | None = None,
    ) -> None:
        self._workers = workers
        self._executor = executor
        self._max_waiting = max_waiting
        self._waiting = 0
        self._cache: OrderedDict[Hashable, bytes] = OrderedDict()
        self._cache_size = cache_size
        self._log = get_logger(__name__)

    def _pool(self) -> Executor:
        if self._executor is None:
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(_PRELOAD)
            self._executor = ProcessPoolExecutor(
                max_workers=self._workers, mp_context=context, initializer=lower_priority
            )
        return self._executor

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
            png = await loop.run_in_executor(self._pool(), render_png, data)
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
