"""Placing comes first: a worker's bookkeeping yields to the alerts it is placing.

A worker process runs everything on one event loop: the alert jobs that place new orders,
and the bookkeeping of earlier ones (fill checks and settlement, the monitor's syncs,
notifications, the crons). When ten alerts arrive on one bar close, the Indexer polls and
ledger writes of the previous burst would otherwise take turns with them on the loop. Each
alert counts as *placing* from the moment the worker claims its job until its order is
broadcast (or it ends without one); bookkeeping asks :meth:`PlacementGate.yield_to_placing`
before each step and waits while anything is placing, for at most ``max_yield`` seconds, so
a steady stream of alerts delays it but never starves it (protection steps included).

The gate is per process. With several worker processes (``WORKER_PROCESSES``), each one's
bookkeeping yields to its own placements; the processes themselves run on separate cores.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

#: The longest one bookkeeping step waits for placements (a burst of ten takes ~30 ms).
DEFAULT_MAX_YIELD = 0.25


class Placement:
    """One alert being placed; :meth:`done` (idempotent) once its order is on its way."""

    __slots__ = ("_done", "_gate")

    def __init__(self, gate: PlacementGate) -> None:
        self._gate = gate
        self._done = False

    def done(self) -> None:
        """The alert's order was broadcast, or the alert ended without one."""
        if not self._done:
            self._done = True
            self._gate._leave()

    def __enter__(self) -> Placement:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.done()


class PlacementGate:
    """Counts the alerts being placed in this process; bookkeeping waits while any are.

    Args:
        max_yield: The longest one :meth:`yield_to_placing` waits.
    """

    def __init__(self, *, max_yield: float = DEFAULT_MAX_YIELD) -> None:
        self._max_yield = max_yield
        self._placing = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._claims: dict[str, Placement] = {}

    @property
    def placing(self) -> int:
        """How many alerts are being placed now."""
        return self._placing

    def place(self) -> Placement:
        """Count one alert as being placed until the returned placement is done."""
        self._placing += 1
        self._idle.clear()
        return Placement(self)

    def claimed(self, job_id: str) -> None:
        """An alert job was claimed: it counts as placing before its code even starts (the
        queue's own reads come first)."""
        if job_id not in self._claims:
            self._claims[job_id] = self.place()

    def take(self, job_id: str) -> Placement:
        """The placement of a claimed job, handed to the job itself (a new one if the job
        was not claimed through :meth:`claimed`)."""
        return self._claims.pop(job_id, None) or self.place()

    def release(self, job_id: str) -> None:
        """A claimed job ended: its placement is done if the job never took it."""
        claim = self._claims.pop(job_id, None)
        if claim is not None:
            claim.done()

    async def yield_to_placing(self) -> None:
        """Wait until nothing is being placed, at most ``max_yield`` seconds."""
        if self._placing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self._max_yield)

    def _leave(self) -> None:
        self._placing -= 1
        if not self._placing:
            self._idle.set()
