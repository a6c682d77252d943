"""Lifecycle, fault injection and the broadcast record of the gRPC node double."""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import grpc

from doubles.dydx import auth
from doubles.dydx.auth import ChainError
from doubles.dydx.node.codec import _StateView
from doubles.dydx.node.records import (
    BroadcastMatch,
    BroadcastRecord,
    TxOutcome,
    _Faults,
    _Hang,
    _Rejection,
)


class NodeControl:
    """Lifecycle, fault injection and the broadcast record of :class:`NodeServer`.

    :class:`~doubles.dydx.node.server.NodeServer` adds CheckTx and delivery on top; see it
    for the attributes.
    """

    def __init__(self, state: Any, host: str) -> None:
        self.state = state
        self.host = host
        self.port = 0
        self.clob_pair_filter_fail_closed = False
        # A node run without a transaction index (``tx_index = "null"``) answers every GetTx
        # with "not found", included or not.
        self.tx_index = True
        self._server: grpc.aio.Server | None = None
        self._lock = threading.Condition()
        self._faults = _Faults()
        self._records: list[BroadcastRecord] = []
        self._cache: OrderedDict[str, None] = OrderedDict()
        self._included: dict[str, tuple[bytes, int, TxOutcome]] = {}
        self._view = _StateView(state)

    # ---------------------------------------------------------------- lifecycle

    @property
    def target(self) -> str:
        """``host:port`` for ``grpc.insecure_channel`` / ``make_insecure(node_url=...)``."""
        return f"{self.host}:{self.port}"

    async def stop(self, grace: float = 0.0) -> None:
        """Stop serving; pending calls (e.g. hanging ones) are cancelled after ``grace``."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    # ---------------------------------------------------------------- fault injection

    def reject_next(
        self, n: int = 1, code: int = 5001, codespace: str = "clob", log: str = ""
    ) -> None:
        """Answer the next ``n`` broadcasts with an error, without processing them.

        Args:
            n: How many broadcasts.
            code: ABCI code to answer.
            codespace: Its codespace.
            log: Raw log to answer; defaults to ``"injected rejection"``.
        """
        with self._lock:
            for _ in range(n):
                self._faults.rejections.append(
                    _Rejection(code, codespace, log or "injected rejection")
                )

    def hang(
        self,
        seconds: float,
        n: int = 1,
        *,
        process_first: bool = True,
        when: BroadcastMatch | None = None,
    ) -> None:
        """Delay the answer of the next ``n`` broadcasts (of those ``when`` matches) by
        ``seconds``.

        The Python client sets no gRPC deadline, so without one of its own a product waits the
        whole delay. A broadcast takes the earliest queued hang it matches; one no hang
        matches is answered at once.

        Args:
            seconds: Delay.
            n: How many broadcasts.
            process_first: True: the transaction is processed (and accepted if valid) before
                the delay, as when a node is slow to answer — a retry of the same bytes then
                meets ``tx already in mempool`` (19). False: the delay comes first and a call
                the client abandons is never processed.
            when: Only broadcasts whose decoded messages it accepts are held (e.g.
                ``orders.placing(CONDITION_TYPE_TAKE_PROFIT)``, ``orders.cancelling()``);
                None: any broadcast.
        """
        with self._lock:
            for _ in range(n):
                self._faults.hangs.append(_Hang(seconds, process_first, when))

    def unavailable(self, n: int = 1, method: str = "BroadcastTx") -> None:
        """Abort the next ``n`` calls of ``method`` with gRPC ``UNAVAILABLE``.

        Args:
            n: How many calls.
            method: RPC method name (``"BroadcastTx"``, ``"Account"``...) or ``"*"`` for all.
        """
        with self._lock:
            self._faults.unavailable[method] = self._faults.unavailable.get(method, 0) + n

    def clear_faults(self) -> None:
        """Drop every pending injected fault."""
        with self._lock:
            self._faults = _Faults()

    # ---------------------------------------------------------------- the record

    @property
    def broadcasts(self) -> list[BroadcastRecord]:
        """Every ``BroadcastTx`` received so far, in arrival order (a snapshot list)."""
        with self._lock:
            return list(self._records)

    def wait_for_broadcasts(
        self,
        count: int,
        timeout: float = 5.0,
        predicate: Callable[[BroadcastRecord], bool] | None = None,
    ) -> list[BroadcastRecord]:
        """Block until ``count`` matching broadcasts have been answered (thread-safe).

        Args:
            count: How many records to wait for.
            timeout: Seconds to wait at most.
            predicate: Which records count; default all.

        Returns:
            The matching answered records.

        Raises:
            TimeoutError: Fewer arrived in time.
        """
        deadline = time.monotonic() + timeout

        def matching() -> list[BroadcastRecord]:
            return [
                r
                for r in self._records
                if r.status != "pending" and (predicate is None or predicate(r))
            ]

        with self._lock:
            while len(found := matching()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(found)} of {count} broadcasts after {timeout}s")
                self._lock.wait(remaining)
            return found

    def clear_broadcasts(self) -> None:
        """Forget the broadcasts recorded so far."""
        with self._lock:
            self._records.clear()

    # ---------------------------------------------------------------- gates

    def _take_unavailable(self, method: str) -> bool:
        with self._lock:
            for key in (method, "*"):
                if self._faults.unavailable.get(key, 0) > 0:
                    self._faults.unavailable[key] -= 1
                    return True
        return False

    async def _gate(self, method: str, context: grpc.aio.ServicerContext) -> None:
        if self._take_unavailable(method):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: node unavailable")

    def _take_broadcast_faults(
        self, record: BroadcastRecord
    ) -> tuple[_Rejection | None, _Hang | None]:
        with self._lock:
            rejection = self._faults.rejections.popleft() if self._faults.rejections else None
            hangs = self._faults.hangs
            if any(h.when is not None for h in hangs):
                # Decoded now, so a held record shows what it holds before CheckTx runs.
                with contextlib.suppress(ChainError):
                    decoded = auth.decode_tx(record.tx_bytes)
                    record.messages = decoded.messages
                    record.type_urls = decoded.type_urls
                    record.selected_authenticators = decoded.selected_authenticators
            hang = next((h for h in hangs if h.when is None or h.when(record.messages)), None)
            if hang is not None:
                hangs.remove(hang)
        return rejection, hang

    def _finish(self, record: BroadcastRecord, status: str) -> None:
        with self._lock:
            if record.status == "pending":
                record.status = status
                record.answered_perf_ns = time.perf_counter_ns()
                self._lock.notify_all()
