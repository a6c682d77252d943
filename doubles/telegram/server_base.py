"""The Telegram double's state and its event loop: running code there from any thread, waiting
for changes, finding bots, telling whether an outage is being played."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from .errors import OutageError
from .state import BotIdentity
from .state_world import ApiCall, BotState, World

T = TypeVar("T")


@dataclass
class FloodRule:
    """Calls to answer with 429 (see :meth:`~doubles.telegram.server.TelegramDouble.flood`).

    Attributes:
        remaining: How many more calls to refuse.
        retry_after: The ``retry_after`` parameter sent.
        methods: Method names refused; ``None`` for every method except ``getUpdates``.
    """

    remaining: int
    retry_after: int
    methods: frozenset[str] | None


class DoubleBase:
    """The state of a running :class:`~doubles.telegram.server.TelegramDouble` and how code
    reaches its event loop; the HTTP, webhook and control layers build on it."""

    _retry_delay: float
    _webhook_timeout: float
    _world: World
    _waiters: list[asyncio.Future[None]]
    _floods: list[FloodRule]
    _down_until: float
    _down_mode: str
    _known: dict[str, str] | None
    _bot_ids: Iterator[int]
    _user_ids: Iterator[int]
    _channel_ids: Iterator[int]
    internal_errors: list[str]
    unimplemented_calls: list[ApiCall]
    _thread: threading.Thread | None
    _thread_id: int | None
    _loop: asyncio.AbstractEventLoop | None
    _ready: threading.Event
    _startup_error: BaseException | None
    _runner: web.AppRunner | None
    _http: aiohttp.ClientSession | None
    _port: int | None
    _running: bool

    def _on_loop(self) -> bool:
        return threading.get_ident() == self._thread_id

    def _sync(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the double's loop (directly if not started) and return its result."""
        loop = self._loop
        if loop is None or not self._running or self._on_loop():
            return fn()

        async def call() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=10)

    async def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Await ``coro`` on the double's loop from whatever loop the caller runs."""
        loop = self._loop
        if loop is None or not self._running:
            coro.close()
            raise RuntimeError("TelegramDouble is not running")
        if self._on_loop():
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    def _notify(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def wait_change(self, timeout: float) -> None:
        """Wait (on the double's loop) until state changes or ``timeout`` seconds pass."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=max(timeout, 0))
        finally:
            if not waiter.done():
                waiter.cancel()
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

    async def _wait(
        self, check: Callable[[], T | None], timeout: float, describe: Callable[[], str]
    ) -> T:
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{describe()} within {timeout:g} s{self._recent_calls()}")
            await self.wait_change(remaining)

    def _recent_calls(self, count: int = 6) -> str:
        calls = [call for call in self._world.calls if call.method != "getUpdates"][-count:]
        if not calls:
            return "; the bot made no Bot API call besides getUpdates"
        return "; latest Bot API calls: " + ", ".join(repr(call) for call in calls)

    @property
    def bots(self) -> list[BotIdentity]:
        """Return the registered bots, in registration order."""
        return [state.identity for state in list(self._world.bots.values())]

    @property
    def bot(self) -> BotIdentity:
        """Return the first registered bot (the default for users and channels)."""
        bots = self.bots
        if not bots:
            raise LookupError("no bot registered; call add_bot() first")
        return bots[0]

    def _bot_state(self, bot: BotIdentity | str | None) -> BotState:
        token = self.bot.token if bot is None else bot if isinstance(bot, str) else bot.token
        state = self._world.bots.get(token)
        if state is None:
            raise LookupError("that bot is not registered with this double")
        return state

    @property
    def is_down(self) -> bool:
        """Tell whether an outage is being played."""
        return time.monotonic() < self._down_until

    def check_outage(self) -> None:
        """Raise :class:`OutageError` while the API is down (used by long polls)."""
        if self.is_down:
            raise OutageError
