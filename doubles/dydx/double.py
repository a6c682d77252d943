"""The whole dYdX v4 double: one ChainState served as a gRPC node, an Indexer REST API and an
Indexer WebSocket from one background thread with its own event loop.

The dydx-v4-client makes blocking gRPC calls from the test's loop, so the double must keep
serving while that loop is blocked; running on its own thread and loop also means every state
mutation happens on one loop, without locks. Control methods are thread-safe: they marshal onto
the double's loop and wait for the result.

Controls for protection tests: ``double.indexer.lag = 20.0`` (or :meth:`set_indexer_lag`),
:meth:`drop_websockets`, :meth:`set_stateful_orders_next_block` (DeliverTx failures),
:meth:`external_trade` / :meth:`external_place` / :meth:`external_cancel` (the owner in the
web app), :meth:`liquidate` and :meth:`fill_resting` (a counterparty takes part of a resting
order).

Example:
    >>> with DydxDouble() as double:  # doctest: +SKIP
    ...     double.deposit(address, 0, Decimal("1000"))
    ...     double.set_oracle_price("BTC-USD", Decimal("95000"))
    ...     double.advance_blocks(2)
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import threading
from collections.abc import Awaitable, Callable
from decimal import Decimal
from types import TracebackType
from typing import Any, Protocol, TypeVar, cast

from aiohttp import web
from v4_proto.dydxprotocol.clob.order_pb2 import Order

from doubles.dydx import external
from doubles.dydx.indexer import IndexerDouble
from doubles.dydx.state import Account, ChainState, FillRecord, TxResult

T = TypeVar("T")

#: How long a control call may take before the test is told the double is stuck.
CALL_TIMEOUT = 10.0


class NodeHandle(Protocol):
    """What ``start_node`` returns."""

    port: int

    async def stop(self) -> None:
        """Stop serving."""


NodeFactory = Callable[..., Awaitable[Any]]


def _default_node_factory() -> NodeFactory:
    from doubles.dydx.node import start_node  # the node engineer's module

    return start_node


class DydxDouble:
    """An offline dYdX v4 exchange for tests.

    Args:
        state: The exchange state to serve; a fresh :class:`ChainState` by default.
        block_interval: Seconds between automatic blocks (about 0.5 s like mainnet).
        clock_running: Start the automatic block clock; tests that want full determinism pass
            False and call :meth:`advance_blocks`.
        host: Loopback interface to bind.
        node_factory: ``async (state, host=, port=) -> node`` with ``.port`` and ``stop()``;
            defaults to ``doubles.dydx.node.start_node``.
    """

    def __init__(
        self,
        *,
        state: ChainState | None = None,
        block_interval: float = 0.5,
        clock_running: bool = True,
        host: str = "127.0.0.1",
        node_factory: NodeFactory | None = None,
    ) -> None:
        self.state = state if state is not None else ChainState()
        self.block_interval = block_interval
        self.host = host
        self._node_factory = node_factory
        self._clock_paused = not clock_running
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._stop_event: asyncio.Event | None = None
        self._indexer: IndexerDouble | None = None
        self._node: Any = None
        self._indexer_port = 0

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> DydxDouble:
        """Start the thread, the Indexer and the node; returns self once both serve.

        Raises:
            RuntimeError: Already started, or startup failed / timed out.
        """
        if self._thread is not None:
            raise RuntimeError("the dYdX double is already started")
        factory = self._node_factory or _default_node_factory()
        self._thread = threading.Thread(
            target=self._run, args=(factory,), name="dydx-double", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(CALL_TIMEOUT):
            raise RuntimeError("the dYdX double did not start in time")
        if self._startup_error is not None:
            self._thread.join(CALL_TIMEOUT)
            self._thread = None
            raise RuntimeError("the dYdX double failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving and join the thread (idempotent)."""
        thread, loop, stop_event = self._thread, self._loop, self._stop_event
        if thread is None or loop is None or stop_event is None:
            return
        with contextlib.suppress(RuntimeError):  # loop already closed
            loop.call_soon_threadsafe(stop_event.set)
        thread.join(CALL_TIMEOUT)
        self._thread = None

    def __enter__(self) -> DydxDouble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, factory: NodeFactory) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread_id = threading.get_ident()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main(factory))
        finally:
            with contextlib.suppress(Exception):
                loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._ready.set()

    async def _main(self, factory: NodeFactory) -> None:
        self._stop_event = asyncio.Event()
        runner: web.AppRunner | None = None
        clock: asyncio.Task[None] | None = None
        try:
            self._indexer = IndexerDouble(self.state)
            runner = web.AppRunner(self._indexer.app, access_log=None, shutdown_timeout=0.05)
            await runner.setup()
            site = web.TCPSite(runner, self.host, 0)
            await site.start()
            self._indexer_port = runner.addresses[0][1]
            self._node = await factory(self.state, host=self.host, port=0)
            clock = asyncio.create_task(self._block_clock())
        except BaseException as exc:
            self._startup_error = exc
        self._ready.set()
        try:
            if self._startup_error is None:
                await self._stop_event.wait()
        finally:
            if clock is not None:
                clock.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await clock
            if self._indexer is not None:
                await self._indexer.close()
            if self._node is not None:
                await self._node.stop()
            if runner is not None:
                await runner.cleanup()

    async def _block_clock(self) -> None:
        while True:
            await asyncio.sleep(self.block_interval)
            if not self._clock_paused:
                self.state.advance_block()

    # ---------------------------------------------------------------- addresses

    @property
    def indexer_url(self) -> str:
        """``http://127.0.0.1:PORT`` (REST)."""
        return f"http://{self.host}:{self._indexer_port}"

    @property
    def indexer_ws_url(self) -> str:
        """``ws://127.0.0.1:PORT/v4/ws``."""
        return f"ws://{self.host}:{self._indexer_port}/v4/ws"

    @property
    def node_url(self) -> str:
        """``127.0.0.1:PORT`` (insecure gRPC)."""
        return f"{self.host}:{self.node.port}"

    @property
    def chain_id(self) -> str:
        """Chain id of the state."""
        return self.state.chain_id

    @property
    def node(self) -> Any:
        """The running node object (``NodeServer``: fault injection, broadcast records)."""
        if self._node is None:
            raise RuntimeError("the dYdX double is not started")
        return self._node

    @property
    def indexer(self) -> IndexerDouble:
        """The running Indexer (use its methods through :meth:`call`)."""
        if self._indexer is None:
            raise RuntimeError("the dYdX double is not started")
        return self._indexer

    def env(self) -> dict[str, str]:
        """Environment overrides a product settings object is built from."""
        return {
            "DYDX_NETWORK": "custom",
            "DYDX_INDEXER_URL": self.indexer_url,
            "DYDX_INDEXER_WS_URL": self.indexer_ws_url,
            "DYDX_NODE_URL": self.node_url,
            "DYDX_NODE_TLS": "false",
            "DYDX_CHAIN_ID": self.chain_id,
        }

    # ---------------------------------------------------------------- thread-safe calls

    def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` on the double's loop and return its result.

        If ``fn`` returns an awaitable it is awaited there. Safe from any thread; from the
        double's own thread it runs inline.
        """
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("the dYdX double is not started")
        if threading.get_ident() == self._thread_id:
            result = fn(*args, **kwargs)
            if inspect.isawaitable(result):
                raise RuntimeError("use acall() for coroutines on the double's own loop")
            return result
        future = asyncio.run_coroutine_threadsafe(self._invoke(fn, *args, **kwargs), loop)
        try:
            return future.result(CALL_TIMEOUT)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise RuntimeError(f"the dYdX double did not answer {fn!r} in time") from None

    async def acall(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Async :meth:`call` for tests running on another event loop (does not block it)."""
        loop = self._loop
        if loop is None or self._thread is None:
            raise RuntimeError("the dYdX double is not started")
        if threading.get_ident() == self._thread_id:
            return await self._invoke(fn, *args, **kwargs)
        future = asyncio.run_coroutine_threadsafe(self._invoke(fn, *args, **kwargs), loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), CALL_TIMEOUT)

    @staticmethod
    async def _invoke(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    # ---------------------------------------------------------------- controls

    def advance_block(self) -> int:
        """Commit one block now; returns the new height."""
        return self.call(self.state.advance_block)

    def advance_blocks(self, n: int) -> int:
        """Commit ``n`` blocks now; returns the new height."""
        return self.call(self.state.advance_blocks, n)

    def pause_clock(self) -> None:
        """Stop automatic blocks (explicit :meth:`advance_blocks` still work)."""
        self._clock_paused = True

    def resume_clock(self) -> None:
        """Restart automatic blocks."""
        self._clock_paused = False

    @property
    def height(self) -> int:
        """Height of the last committed block."""
        return self.call(lambda: self.state.height)

    def set_oracle_price(self, ticker: str, price: Decimal | str | int) -> None:
        """Set an oracle price (crossings act at the next block)."""
        self.call(self.state.set_oracle_price, ticker, Decimal(price))

    def deposit(self, address: str, subaccount_number: int, usdc: Decimal | str | int) -> None:
        """Deposit USDC into a subaccount."""
        self.call(self.state.deposit, address, subaccount_number, Decimal(usdc))

    def create_account(self, address: str, pub_key: bytes | None = None) -> Account:
        """Create an x/auth account (returns the live object; read it via :meth:`call`)."""
        return self.call(self.state.create_account, address, pub_key)

    def add_authenticator(self, owner: str, auth_type: str, config: bytes) -> int:
        """Add an authenticator as if the owner had sent ``MsgAddAuthenticator``."""
        return self.call(self.state.add_authenticator, owner, auth_type, config)

    def add_unvalidated_authenticator(self, owner: str, auth_type: str, config: bytes) -> int:
        """Add an authenticator a newer chain would accept and the double does not know."""
        return self.call(self.state.add_unvalidated_authenticator, owner, auth_type, config)

    def remove_authenticator(self, owner: str, authenticator_id: int) -> None:
        """Remove an authenticator."""
        self.call(self.state.remove_authenticator, owner, authenticator_id)

    def place_order(self, order: Order) -> TxResult:
        """Place an order directly in the state (bypassing signatures)."""
        return self.call(self.state.place_order, order)

    def set_compliance(self, address: str, status: str, reason: str | None = None) -> None:
        """Set the Indexer compliance status of an address (COMPLIANT, BLOCKED, CLOSE_ONLY…)."""
        self.call(self.indexer.set_compliance, address, status, reason)

    def set_indexer_down(self, down: bool = True, status: int = 503) -> None:
        """Make every Indexer request answer ``status`` (or restore it)."""
        self.call(self.indexer.set_down, status if down else None)

    def drop_websockets(self, *, abrupt: bool = False) -> int:
        """Close every Indexer WebSocket connection; returns how many there were."""
        # call() awaits the coroutine on the double's loop.
        return cast(int, self.call(self.indexer.drop_websockets, abrupt=abrupt))

    def set_indexer_lag(self, seconds: float) -> None:
        """Make the Indexer trail the chain by ``seconds`` (0 = live); same as
        ``double.indexer.lag = seconds``."""
        self.indexer.lag = seconds

    def set_stateful_orders_next_block(self, enabled: bool = True) -> None:
        """Let DeliverTx (next block) place stateful orders, with its own checks that may fail."""

        def apply() -> None:
            self.state.stateful_orders_next_block = enabled

        self.call(apply)

    # ---------------------------------------------------------------- outside our API key

    def external_trade(
        self,
        owner: str,
        market: str,
        side: str,
        size: Decimal | str,
        *,
        subaccount_number: int = 0,
        reduce_only: bool = False,
    ) -> tuple[TxResult, str]:
        """The owner trades in the web app (market order); returns (result, Indexer order id)."""
        return self.call(
            external.external_trade,
            self.state,
            owner,
            market,
            side,
            size,
            subaccount_number=subaccount_number,
            reduce_only=reduce_only,
        )

    def external_place(self, order: Order, *, sequence_nonce: bool = True) -> TxResult:
        """The owner places ``order`` in the web app (stateful ones advance its sequence)."""
        return self.call(external.external_place, self.state, order, sequence_nonce=sequence_nonce)

    def external_cancel(self, order_id: str, *, sequence_nonce: bool = True) -> TxResult:
        """The owner cancels an order (Indexer id) in the web app."""
        return self.call(
            external.external_cancel, self.state, order_id, sequence_nonce=sequence_nonce
        )

    def liquidate(
        self,
        owner: str,
        market: str,
        price: Decimal | str,
        *,
        subaccount_number: int = 0,
        insurance_fund_fee_rate: Decimal | str = Decimal(0),
    ) -> FillRecord:
        """The protocol liquidates the owner's whole position in ``market`` at ``price``."""
        return self.call(
            external.liquidate,
            self.state,
            owner,
            market,
            Decimal(price),
            subaccount_number=subaccount_number,
            insurance_fund_fee_rate=Decimal(insurance_fund_fee_rate),
        )

    def resting_order_id(self, owner: str, client_id: int, *, subaccount_number: int = 0) -> str:
        """The Indexer id of the owner's live order with ``client_id``."""
        return self.call(
            external.resting_order_id,
            self.state,
            owner,
            client_id,
            subaccount_number=subaccount_number,
        )

    def fill_resting(self, order_id: str, size: Decimal | str) -> FillRecord:
        """A counterparty takes ``size`` of a resting order (Indexer id): a ``MAKER`` fill at
        its limit price; the order stays ``OPEN`` with its ``totalFilled`` until none is left."""
        return self.call(external.take_resting, self.state, order_id, Decimal(size))
