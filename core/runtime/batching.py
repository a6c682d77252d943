"""Coalescing of concurrent single calls into one batched call (one round trip for many).

At a thousand alerts a second, each alert's own round trips to PostgreSQL and Redis cost
more CPU (system calls, driver overhead, one WAL flush per commit) than the work they
carry. A :class:`MicroBatcher` lets every request keep awaiting its own result while the
calls made in the same event-loop turn, and those arriving while a batch is in flight,
travel together. An idle server sends a batch of one at once: nothing waits for a timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")


class MicroBatcher(Generic[In, Out]):
    """Runs ``run(items)`` for the items submitted meanwhile; each caller gets its result.

    Args:
        run: Handles a batch; returns one result per item, in order. A result that is an
            exception is raised to that item's caller; an exception ``run`` raises is
            raised to every caller of the batch.
        max_batch: Most items per call.
        max_in_flight: Most calls running at once; further items wait for a free slot,
            and the wait is what lets a batch grow under load.
    """

    def __init__(
        self,
        run: Callable[[Sequence[In]], Awaitable[Sequence[Out | Exception]]],
        *,
        max_batch: int = 100,
        max_in_flight: int = 1,
    ) -> None:
        self._run = run
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._in_flight = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, item: In) -> Out:
        """``item``'s result, computed in a batch with the items submitted meanwhile."""
        future: asyncio.Future[Out] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        self._schedule()
        return await future

    async def drain(self) -> None:
        """Wait until every submitted item has been handled (before closing a resource)."""
        while self._tasks or self._pending or self._scheduled:
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            else:
                await asyncio.sleep(0)

    def _schedule(self) -> None:
        # On the next loop turn, so the calls made in this one join the same batch.
        if self._pending and not self._scheduled and self._in_flight < self._max_in_flight:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        # A caller that gave up (timed out, cancelled) no longer wants its item done.
        self._pending = [entry for entry in self._pending if not entry[1].done()]
        while self._pending and self._in_flight < self._max_in_flight:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._handle(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _handle(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._run([item for item, _ in batch])
        except asyncio.CancelledError:
            for _, future in batch:
                future.cancel()
            raise
        except Exception as exc:  # handed to every caller of the batch
            for _, future in batch:
                if not future.done():  # a caller that timed out has cancelled its future
                    future.set_exception(exc)
        else:
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)
        finally:
            self._in_flight -= 1
            self._schedule()
