"""The Telegram Bot API double: an aiohttp server on its own thread and event loop."""

# The waits take timeout= on purpose: they run on the double's own loop, in another
# thread, and their deadline is what lets a TimeoutError say what the bot did meanwhile.
# ruff: noqa: ASYNC109

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import re
import secrets
import socket
import threading
import time
import traceback
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

import aiohttp
from aiohttp import web

from . import errors
from . import media_edits as media_edits  # registers editMessageMedia
from .actors import SimulatedUser
from .channel_actor import SimulatedChannel
from .errors import ApiError, OutageError, bad_request
from .media import Upload
from .methods import (
    HANDLERS,
    LOOPBACK_HOSTS,
    Answer,
    Context,
    Params,
    known_method_names,
    normalize_params,
)
from .state import (
    CHANNEL_ADMIN_RIGHTS,
    ApiCall,
    BotIdentity,
    BotState,
    Channel,
    ChannelMembership,
    ChatMessage,
    UserProfile,
    WebhookConfig,
    WebhookDelivery,
    World,
    now,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

_TOKEN_RE = re.compile(r"^(\d{1,20}):([A-Za-z0-9_-]+)$")
_API_PATH_RE = re.compile(r"^/bot([^/]*)/([^/]*)$")
_FILE_PATH_RE = re.compile(r"^/file/bot([^/]*)/(.+)$")
OUTAGE_MODES = ("bad_gateway", "reset", "server_error")
_MAX_REQUEST_BYTES = 64 * 1024 * 1024
_IMPLEMENTED = {name.lower(): name for name in HANDLERS}


@dataclass
class _Flood:
    remaining: int
    retry_after: int
    methods: frozenset[str] | None


class TelegramDouble:
    """An offline, protocol-faithful stand-in for ``api.telegram.org``.

    It serves ``{base_url}/bot<token>/<method>`` and ``{base_url}/file/bot<token>/<path>``
    on 127.0.0.1 from a background thread with its own event loop, so it keeps answering
    while a test's loop is blocked or a bot runs in another process. Every state change
    happens on that loop; the async test API hops onto it and back.

    Args:
        webhook_retry_delay: Seconds before re-posting an update a webhook refused
            (doubles on each failure, up to 2 s).
        webhook_timeout: Seconds a webhook may take to answer.

    Example:
        >>> double = TelegramDouble().start()
        >>> bot = double.add_bot(username="tv2dydx_test_bot")
        >>> user = double.user(first_name="Alice")
        >>> # product: Bot(bot.token, session=AiohttpSession(
        >>> #     api=TelegramAPIServer.from_base(double.base_url)))
        >>> double.stop()
    """

    def __init__(self, *, webhook_retry_delay: float = 0.2, webhook_timeout: float = 10.0) -> None:
        self._retry_delay = webhook_retry_delay
        self._webhook_timeout = webhook_timeout
        self._world = World(self._notify)
        self._waiters: list[asyncio.Future[None]] = []
        self._floods: list[_Flood] = []
        self._down_until = 0.0
        self._down_mode = "bad_gateway"
        self._known: dict[str, str] | None = None
        self._bot_ids = itertools.count(7_000_000_001)
        self._user_ids = itertools.count(100_000_001)
        self._channel_ids = itertools.count(1_000_000_001)
        self.internal_errors: list[str] = []
        self.unimplemented_calls: list[ApiCall] = []
        self._thread: threading.Thread | None = None
        self._thread_id: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self._port: int | None = None
        self._running = False

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> TelegramDouble:
        """Start serving on a free loopback port; returns once requests are accepted.

        Raises:
            RuntimeError: Already started, or the server could not start.
        """
        if self._thread is not None:
            raise RuntimeError("TelegramDouble is already started")
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        self._thread = threading.Thread(
            target=self._serve, args=(sock,), name=f"telegram-double-{self._port}", daemon=True
        )
        self._thread.start()
        if not self._ready.wait(timeout=10):
            raise RuntimeError("TelegramDouble did not start within 10 s")
        if self._startup_error is not None:
            raise RuntimeError("TelegramDouble failed to start") from self._startup_error
        return self

    def stop(self) -> None:
        """Stop serving: waiting long polls end, webhooks stop, the thread exits."""
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not self._running:
            return
        self._running = False  # first, so no new work is handed to a stopping loop
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)

    def __enter__(self) -> TelegramDouble:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Return the Bot API base URL, the value for ``TELEGRAM_API_BASE``."""
        if self._port is None:
            raise RuntimeError("TelegramDouble is not started")
        return f"http://127.0.0.1:{self._port}"

    @property
    def running(self) -> bool:
        """Tell whether the server is serving."""
        return self._running

    def _serve(self, sock: socket.socket) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread_id = threading.get_ident()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._open(sock))
        except BaseException as error:
            self._startup_error = error
            self._ready.set()
            loop.close()
            return
        self._running = True
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._close())
            tasks = asyncio.all_tasks(loop)
            for task in tasks:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _open(self, sock: socket.socket) -> None:
        app = web.Application(client_max_size=_MAX_REQUEST_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        # handler_cancellation: a client that hangs up also ends its long poll here.
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, handler_cancellation=True
        )
        await self._runner.setup()
        await web.SockSite(self._runner, sock).start()
        self._http = aiohttp.ClientSession()

    async def _close(self) -> None:
        for bot in self._world.bots.values():
            self.stop_webhook(bot)
            if bot.active_poll is not None:
                bot.active_poll.terminated = "shutdown"
        self._notify()
        await asyncio.sleep(0)
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- running things on the double's loop ---------------------------------------------

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

    # --- bots, users, channels -----------------------------------------------------------

    def add_bot(
        self,
        token: str | None = None,
        *,
        username: str | None = None,
        first_name: str = "tv2dydx",
    ) -> BotIdentity:
        """Register a bot; its token is then accepted (others get 401).

        Args:
            token: A token of Bot API shape ``<digits>:<secret>``; generated if omitted,
                matching ``^\\d+:[A-Za-z0-9_-]{35}$`` like BotFather's.
            username: The bot's username; ``test<id>_bot`` if omitted.
            first_name: The bot's display name.

        Returns:
            The bot's identity (token, id, username, first_name).
        """
        if token is None:
            token = f"{next(self._bot_ids)}:AA{secrets.token_urlsafe(33)[:33]}"
        match = _TOKEN_RE.match(token)
        if match is None:
            raise ValueError(f"not a Bot API token: {token!r}")
        bot_id = int(match.group(1))
        identity = BotIdentity(token, bot_id, username or f"test{bot_id}_bot", first_name)

        def register() -> BotIdentity:
            if token in self._world.bots or bot_id in self._world.bots_by_id:
                raise ValueError(f"a bot with id {bot_id} is already registered")
            state = BotState(identity)
            self._world.bots[token] = state
            self._world.bots_by_id[bot_id] = state
            return identity

        return self._sync(register)

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

    def env(self, bot: BotIdentity | None = None) -> dict[str, str]:
        """Return the settings overrides that point a product at this double.

        Returns:
            ``{"TELEGRAM_API_BASE": base_url, "BOT_TOKEN": token}``.
        """
        return {"TELEGRAM_API_BASE": self.base_url, "BOT_TOKEN": (bot or self.bot).token}

    def user(
        self,
        id: int | None = None,
        first_name: str = "Alice",
        username: str | None = None,
        *,
        last_name: str | None = None,
        language_code: str | None = "en",
        bot: BotIdentity | None = None,
        started: bool = False,
    ) -> SimulatedUser:
        """Return a simulated user chatting with ``bot`` (the default bot if omitted).

        The same ``id`` always means the same account. A user who never wrote to the bot
        cannot be messaged by it (403 ``bot can't initiate conversation with a user``),
        exactly like Telegram, unless ``started`` is true.
        """

        def make() -> SimulatedUser:
            state = self._bot_state(bot)
            user_id = next(self._user_ids) if id is None else id
            profile = self._world.users.get(user_id)
            if profile is None:
                profile = UserProfile(user_id, first_name, last_name, username, language_code)
                self._world.users[user_id] = profile
            if started:
                self._world.private_chat(state, profile).started = True
            return SimulatedUser(self, profile, state.identity)

        return self._sync(make)

    def channel(
        self,
        title: str = "tv2dydx signals",
        username: str | None = None,
        *,
        id: int | None = None,
        bot: BotIdentity | None = None,
        bot_status: str = "administrator",
        owner: SimulatedUser | None = None,
        subscribers: int = 1,
        **rights: bool,
    ) -> SimulatedChannel:
        """Create a channel and set the bot's standing in it.

        Args:
            title: Channel title.
            username: Public username; ``None`` makes a private channel.
            id: Chat id; ``-100...`` generated if omitted.
            bot: The bot concerned (default bot if omitted).
            bot_status: ``administrator``, ``left`` or ``kicked``.
            owner: The creator; a user named "Owner" is made if omitted.
            subscribers: Value of ``getChatMemberCount``.
            **rights: Administrator rights overriding the defaults, e.g.
                ``can_post_messages=False``.
        """
        if bot_status not in {"administrator", "left", "kicked"}:
            raise ValueError("bot_status must be 'administrator', 'left' or 'kicked'")
        unknown = set(rights) - set(CHANNEL_ADMIN_RIGHTS)
        if unknown:
            raise ValueError(f"unknown administrator rights: {sorted(unknown)}")
        owner_user = owner or self.user(first_name="Owner", bot=bot)

        def make() -> SimulatedChannel:
            state = self._bot_state(bot)
            chat_id = int(f"-100{next(self._channel_ids)}") if id is None else id
            channel = Channel(chat_id, title, username, owner_user.profile, subscribers)
            channel.bots[state.identity.id] = ChannelMembership(
                bot_status,
                {**CHANNEL_ADMIN_RIGHTS, **rights} if bot_status == "administrator" else {},
            )
            self._world.channels[chat_id] = channel
            return SimulatedChannel(self, channel, state.identity, owner_user.profile)

        return self._sync(make)

    # --- observation ---------------------------------------------------------------------

    @property
    def calls(self) -> list[ApiCall]:
        """Return every Bot API request received, oldest first (in-flight ones included)."""
        return list(self._world.calls)

    def calls_to(self, method: str, *, bot: BotIdentity | None = None) -> list[ApiCall]:
        """Return the calls of one method (case-insensitive), optionally of one bot."""
        name = method.lower()
        return [
            call
            for call in self.calls
            if call.method.lower() == name and (bot is None or call.bot_id == bot.id)
        ]

    @property
    def sent(self) -> list[ChatMessage]:
        """Return every message bots sent (any chat), oldest first."""
        return list(self._world.sent)

    @property
    def webhook_deliveries(self) -> list[WebhookDelivery]:
        """Return every attempt to POST an update to a webhook, oldest first."""
        return list(self._world.deliveries)

    def pending_updates(self, bot: BotIdentity | None = None) -> list[dict[str, Any]]:
        """Return the updates not yet confirmed by ``getUpdates`` or delivered to a webhook."""
        return list(self._bot_state(bot).updates)

    @property
    def unanswered_callbacks(self) -> list[tuple[str, str | None]]:
        """Return ``(query id, data)`` of button presses no bot answered."""
        return [
            (pending.query_id, pending.data)
            for state in list(self._world.bots.values())
            for pending in list(state.callbacks.values())
            if pending.answer is None
        ]

    def commands(
        self, bot: BotIdentity | None = None, *, scope: str = "default", language_code: str = ""
    ) -> list[dict[str, str]]:
        """Return the commands a bot set for a scope type (``setMyCommands``)."""
        key = (json.dumps({"type": scope}, sort_keys=True), language_code)
        return list(self._bot_state(bot).commands.get(key, []))

    def webhook_info(self, bot: BotIdentity | None = None) -> WebhookConfig | None:
        """Return the bot's webhook configuration, or ``None``."""
        return self._bot_state(bot).webhook

    def file_bytes(self, file_id: str) -> bytes:
        """Return the bytes of a stored file."""
        return self._world.files[file_id].data

    async def wait_until(
        self, predicate: Callable[[], T], timeout: float = 5.0, *, what: str = "the condition"
    ) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        The predicate runs on the double's thread whenever its state changes.

        Raises:
            TimeoutError: Naming ``what`` and the bot's latest calls.
        """
        return await self._run(self._wait(predicate, timeout, lambda: f"no {what}"))

    async def wait_for_call(
        self,
        method: str,
        predicate: Callable[[ApiCall], bool] | None = None,
        *,
        after: int = 0,
        timeout: float = 5.0,
    ) -> ApiCall:
        """Wait for a completed call of ``method`` with ``seq > after`` matching ``predicate``."""
        name = method.lower()

        def check() -> ApiCall | None:
            for call in self._world.calls:
                if (
                    call.seq > after
                    and call.method.lower() == name
                    and call.response is not None
                    and (predicate is None or predicate(call))
                ):
                    return call
            return None

        return await self._run(self._wait(check, timeout, lambda: f"no {method} call"))

    # --- faults --------------------------------------------------------------------------

    def set_down(self, down: bool | float = True, *, mode: str = "bad_gateway") -> None:
        """Make every Bot API request (file downloads included) fail, like an outage.

        Args:
            down: ``True`` until ``set_down(False)``; a number of seconds; ``False`` to end.
            mode: How requests fail:
                ``bad_gateway`` (default): HTTP 502 with nginx's HTML page, what
                api.telegram.org answers while its backend is away. The body is not JSON, so
                aiogram raises ``ClientDecodeError`` - the path a client's retry logic most
                often forgets.
                ``reset``: the connection is dropped without an answer; aiogram raises
                ``TelegramNetworkError``.
                ``server_error``: HTTP 500 ``{"ok": false, "error_code": 500, ...}``;
                aiogram raises ``TelegramServerError``.

        Waiting ``getUpdates`` requests fail at once; webhook deliveries pause.
        """
        if mode not in OUTAGE_MODES:
            raise ValueError(f"mode must be one of {OUTAGE_MODES}")
        if isinstance(down, bool):
            until = math.inf if down else 0.0
        else:
            until = time.monotonic() + float(down) if down > 0 else 0.0

        def apply() -> None:
            self._down_mode = mode
            self._down_until = until
            self._notify()

        self._sync(apply)

    @property
    def is_down(self) -> bool:
        """Tell whether an outage is being played."""
        return time.monotonic() < self._down_until

    def check_outage(self) -> None:
        """Raise :class:`OutageError` while the API is down (used by long polls)."""
        if self.is_down:
            raise OutageError

    def flood(
        self, n: int = 1, retry_after: int = 5, *, methods: str | Iterable[str] | None = None
    ) -> None:
        """Answer the next ``n`` matching calls with 429 ``Too Many Requests: retry after N``.

        Args:
            n: How many calls to refuse.
            retry_after: The ``retry_after`` parameter sent.
            methods: Method name(s) to refuse. ``None`` means every method except
                ``getUpdates``: a running polling loop would otherwise swallow the errors
                meant for the calls under test. Name ``getUpdates`` to flood it.
        """
        if isinstance(methods, str):
            methods = [methods]
        names = None if methods is None else frozenset(self._canonical(m) or m for m in methods)
        rule = _Flood(n, retry_after, names)
        self._sync(lambda: self._floods.append(rule))

    def _take_flood(self, method: str) -> int | None:
        for rule in self._floods:
            if rule.remaining <= 0:
                continue
            if rule.methods is None and method == "getUpdates":
                continue
            if rule.methods is not None and method not in rule.methods:
                continue
            rule.remaining -= 1
            return rule.retry_after
        return None

    def reset(self) -> None:
        """Forget bots, users, chats, files, calls, webhooks and faults; keep serving."""

        def clear() -> None:
            for bot in self._world.bots.values():
                self.stop_webhook(bot)
                if bot.active_poll is not None:
                    bot.active_poll.terminated = "shutdown"
            self._world = World(self._notify)
            self._floods.clear()
            self._down_until = 0.0
            self.internal_errors.clear()
            self.unimplemented_calls.clear()
            self._notify()

        self._sync(clear)

    # --- HTTP ----------------------------------------------------------------------------

    def _canonical(self, name: str | None) -> str | None:
        if not name:
            return None
        lowered = name.lower()
        implemented = _IMPLEMENTED.get(lowered)
        if implemented is not None:
            return implemented
        # Only names the double does not implement pay for importing aiogram's method list.
        if self._known is None:
            self._known = known_method_names()
        return self._known.get(lowered)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.path.startswith("/file/"):
            return await self._serve_file(request)
        match = _API_PATH_RE.match(request.path)
        if match is None:
            return _json(404, errors.NOT_FOUND)
        token, name = match.groups()
        world = self._world
        bot = world.bots.get(token)
        call = ApiCall(
            seq=next(world.call_counter),
            method=name,
            params={},
            bot_id=bot.identity.id if bot else None,
        )
        world.calls.append(call)
        try:
            if self.is_down:
                return self._outage(request, call)
            if not _TOKEN_RE.match(token):
                return self._finish(call, 404, errors.NOT_FOUND)
            if bot is None:
                return self._finish(call, 401, errors.UNAUTHORIZED)
            try:
                values, uploads = await _read_params(request)
            except ApiError as error:
                return self._finish(call, error.status, error.body())
            call.params = _recorded_params(values, uploads)
            canonical = self._canonical(name)
            if canonical is None:
                return self._finish(call, 404, errors.METHOD_NOT_FOUND)
            call.method = canonical
            retry_after = self._take_flood(canonical)
            if retry_after is not None:
                flood = errors.too_many_requests(retry_after)
                return self._finish(call, flood.status, flood.body())
            status, body = await self._execute(bot, canonical, Params(values, uploads), call)
            return self._finish(call, status, body)
        except OutageError:
            return self._outage(request, call)

    async def _execute(
        self, bot: BotState, method: str, params: Params, call: ApiCall
    ) -> tuple[int, dict[str, Any]]:
        handler = HANDLERS.get(method)
        if handler is None:
            self.unimplemented_calls.append(call)
            missing = bad_request(f"TelegramDouble does not implement {method}")
            return missing.status, missing.body()
        try:
            result = await handler(Context(self._world, bot, params, self))
        except ApiError as error:
            return error.status, error.body()
        except OutageError:
            raise
        except Exception:
            self.internal_errors.append(traceback.format_exc())
            log.exception("TelegramDouble failed on %s", method)
            return 500, {
                "ok": False,
                "error_code": 500,
                "description": f"Internal Server Error: TelegramDouble failed on {method}",
            }
        if isinstance(result, Answer):
            body = {"ok": True, "result": result.result}
            if result.description:
                body["description"] = result.description
            return 200, body
        return 200, {"ok": True, "result": result}

    def _finish(self, call: ApiCall, status: int, body: dict[str, Any]) -> web.Response:
        call.status = status
        call.response = body
        self._notify()
        return _json(status, body)

    def _outage(self, request: web.Request, call: ApiCall | None) -> web.Response:
        self._notify()
        if self._down_mode == "reset":
            if request.transport is not None:
                request.transport.abort()
            # Nothing reaches the client: the transport is gone.
            return web.Response(status=500)
        if self._down_mode == "server_error":
            body = {"ok": False, "error_code": 500, "description": "Internal Server Error"}
            if call is None:
                return _json(500, body)
            return self._finish(call, 500, body)
        if call is not None:
            call.status = 502
        return web.Response(
            status=502,
            text=errors.BAD_GATEWAY_HTML,
            content_type="text/html",
            headers={"Server": "nginx/1.18.0"},
        )

    async def _serve_file(self, request: web.Request) -> web.StreamResponse:
        if self.is_down:
            return self._outage(request, None)
        match = _FILE_PATH_RE.match(request.path)
        bot = self._world.bots.get(match.group(1)) if match else None
        stored = self._world.files_by_path.get(match.group(2)) if match else None
        if bot is None or stored is None or stored.bot_id != bot.identity.id:
            return _json(404, errors.NOT_FOUND)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    async def fetch(self, url: str) -> bytes:
        """Download a file a method was given by URL (loopback hosts only: the double is offline).

        Raises:
            ApiError: ``failed to get HTTP URL content``.
        """
        if urlsplit(url).hostname not in LOOPBACK_HOSTS or self._http is None:
            raise bad_request("failed to get HTTP URL content")
        try:
            async with self._http.get(url, timeout=aiohttp.ClientTimeout(total=10)) as response:
                if response.status != 200:
                    raise bad_request("failed to get HTTP URL content")
                return await response.read()
        except (aiohttp.ClientError, TimeoutError):
            raise bad_request("failed to get HTTP URL content") from None

    # --- webhooks ------------------------------------------------------------------------

    def start_webhook(self, bot: BotState) -> None:
        """Start posting ``bot``'s updates to its webhook, one at a time, in order."""
        config = bot.webhook
        if config is not None and self._loop is not None:
            config.task = self._loop.create_task(self._deliver_forever(bot, config))

    def stop_webhook(self, bot: BotState) -> None:
        """Stop posting to ``bot``'s webhook."""
        if bot.webhook is not None and bot.webhook.task is not None:
            bot.webhook.task.cancel()
            bot.webhook.task = None

    async def _deliver_forever(self, bot: BotState, config: WebhookConfig) -> None:
        delay = self._retry_delay
        while bot.webhook is config:
            if self.is_down:
                await self.wait_change(min(self._down_until - time.monotonic(), 1.0))
                continue
            if not bot.updates:
                await self.wait_change(60.0)
                continue
            update = bot.updates[0]
            if await self._deliver(bot, config, update):
                with contextlib.suppress(ValueError):
                    bot.updates.remove(update)
                delay = self._retry_delay
                self._notify()
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _deliver(self, bot: BotState, config: WebhookConfig, update: dict[str, Any]) -> bool:
        headers = {"Content-Type": "application/json"}
        if config.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret_token
        record = WebhookDelivery(update["update_id"], config.url, dict(headers))
        self._world.deliveries.append(record)
        error: str
        if urlsplit(config.url).hostname not in LOOPBACK_HOSTS or self._http is None:
            error = "Failed to resolve host: Name or service not known"
        else:
            try:
                async with self._http.post(
                    config.url,
                    data=json.dumps(update, ensure_ascii=False).encode(),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._webhook_timeout),
                    ssl=False,
                ) as response:
                    record.status = response.status
                    if 200 <= response.status < 300:
                        await self._webhook_reply(bot, response, record)
                        self._notify()
                        return True
                    error = f"Wrong response from the webhook: {response.status} {response.reason}"
            except TimeoutError:
                error = "Read timeout expired"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except aiohttp.ClientError as failure:
                error = f"Connection error: {failure}"
        record.error = error
        config.last_error_date = now()
        config.last_error_message = error
        self._notify()
        return False

    async def _webhook_reply(
        self, bot: BotState, response: aiohttp.ClientResponse, record: WebhookDelivery
    ) -> None:
        """Run a method returned in a webhook's answer; Telegram ignores its outcome."""
        values: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        content_type = response.content_type
        if content_type == "application/json":
            with contextlib.suppress(ValueError):
                body = json.loads(await response.text())
                if isinstance(body, dict):
                    values = body
        elif content_type == "application/x-www-form-urlencoded":
            values = dict(parse_qsl(await response.text()))
        elif content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader(response.headers, response.content)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                    continue
                if part.filename:
                    upload = Upload(
                        part.filename,
                        part.headers.get("Content-Type", ""),
                        bytes(await part.read()),
                    )
                    uploads[part.name] = values[part.name] = upload
                else:
                    values[part.name] = await part.text()
        method = self._canonical(values.pop("method", None))
        if method is None:
            return
        record.reply_method = method
        params = normalize_params(values)
        call = ApiCall(
            seq=next(self._world.call_counter),
            method=method,
            params=_recorded_params(params, uploads),
            bot_id=bot.identity.id,
            via="webhook_reply",
        )
        self._world.calls.append(call)
        with contextlib.suppress(OutageError):
            status, body = await self._execute(bot, method, Params(params, uploads), call)
            call.status, call.response = status, body


def _json(status: int, body: dict[str, Any]) -> web.Response:
    return web.Response(
        status=status,
        text=json.dumps(body, ensure_ascii=False, separators=(",", ":")),
        content_type="application/json",
    )


async def _read_params(request: web.Request) -> tuple[dict[str, Any], dict[str, Upload]]:
    """Read parameters from the query string and a JSON, urlencoded or multipart body."""
    raw: dict[str, Any] = dict(request.query)
    uploads: dict[str, Upload] = {}
    if request.can_read_body:
        content_type = request.content_type
        if content_type == "application/json":
            try:
                body = json.loads(await request.text())
            except ValueError:
                raise bad_request("can't parse JSON encoded request body") from None
            if not isinstance(body, dict):
                raise bad_request("can't parse JSON encoded request body")
            raw.update(body)
        elif content_type in {"application/x-www-form-urlencoded", "multipart/form-data"}:
            try:
                form = await request.post()
            except web.HTTPRequestEntityTooLarge:
                raise ApiError(413, "Request Entity Too Large") from None
            except ValueError:
                raise bad_request("can't parse multipart/form-data request") from None
            for name, value in form.items():
                if isinstance(value, web.FileField):
                    upload = Upload(value.filename, value.content_type, value.file.read())
                    uploads[name] = upload
                    raw[name] = upload
                else:
                    raw[name] = value
    return normalize_params(raw), uploads


def _recorded_params(values: dict[str, Any], uploads: dict[str, Upload]) -> dict[str, Any]:
    """Return parameters for the call log, ``attach://<part>`` replaced by the upload."""
    attached = {
        value.removeprefix("attach://")
        for value in values.values()
        if isinstance(value, str) and value.startswith("attach://")
    }
    return {
        name: uploads.get(value.removeprefix("attach://"), value)
        if isinstance(value, str) and value.startswith("attach://")
        else value
        for name, value in values.items()
        if name not in attached
    }
