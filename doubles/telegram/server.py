"""The Telegram Bot API double: an aiohttp server on its own thread and event loop."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import socket
import threading
from types import TracebackType

import aiohttp
from aiohttp import web

from .actors import SimulatedUser
from .channel_actor import SimulatedChannel
from .server_base import FloodRule
from .server_control import OUTAGE_MODES, ControlApi
from .server_http import MAX_REQUEST_BYTES, TOKEN_RE
from .state import CHANNEL_ADMIN_RIGHTS, BotIdentity, UserProfile
from .state_chats import Channel, ChannelMembership
from .state_world import ApiCall, BotState, World

__all__ = ["OUTAGE_MODES", "TelegramDouble"]


class TelegramDouble(ControlApi):
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
        self._floods: list[FloodRule] = []
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
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
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
        match = TOKEN_RE.match(token)
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
