"""The demo's stack: the two doubles, a fresh demo database and Redis db, and the real
product (``tv2dydx run``) as a child process pointed at the doubles."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import IO
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from redis.asyncio import Redis

from core.security.crypto import generate_key_entry
from demo.guard import product_environment
from doubles.dydx.accounts import FundedTrader, make_funded_trader
from doubles.dydx.double import DydxDouble
from doubles.telegram import SimulatedUser, TelegramDouble

DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/tv2dydx_demo"
# A Redis database of its own: the demo empties it at start.
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/15"
DEMO_DATABASE_PREFIX = "tv2dydx_demo"
BOT_USERNAME = "tv2dydx_demo_bot"
STARTING_USDC = Decimal("10000")
READY_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0
_DATABASE_NAME_RE = re.compile(r"^[a-z0-9_]{1,63}$")


class DemoError(Exception):
    """The demo cannot start; the message is one plain line."""


@dataclass(frozen=True)
class Endpoints:
    """Where the demo keeps its data and serves the product."""

    database_url: str
    redis_url: str
    web_host: str
    web_port: int

    @property
    def public_base_url(self) -> str:
        """The web server as the browser on this machine reaches it."""
        return f"http://127.0.0.1:{self.web_port}"


def database_name(url: str) -> str:
    """The database a PostgreSQL URL names, checked to be a demo database.

    Raises:
        DemoError: Not a PostgreSQL URL, or a database the demo must not empty.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"postgres", "postgresql", "postgresql+asyncpg"}:
        raise DemoError("DATABASE_URL is not a PostgreSQL URL (postgresql://user@host/db)")
    name = parts.path.lstrip("/")
    if not name.startswith(DEMO_DATABASE_PREFIX) or not _DATABASE_NAME_RE.match(name):
        raise DemoError(
            f"DATABASE_URL names the database {name!r}: the demo empties its database at "
            f"every start, so it only uses one named {DEMO_DATABASE_PREFIX}… "
            "(lower-case letters, digits, _)"
        )
    return name


def redis_database(url: str) -> int:
    """The Redis db index of a URL, checked not to be 0 (the usual home of real data).

    Raises:
        DemoError: Not a Redis URL, or db 0.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        raise DemoError("REDIS_URL is not a Redis URL (redis://host:6379/15)")
    index = parts.path.lstrip("/") or "0"
    if not index.isdigit() or int(index) == 0:
        raise DemoError(
            "REDIS_URL must name a Redis database other than 0 (like redis://host:6379/15): "
            "the demo empties it at every start"
        )
    return int(index)


async def reset_database(url: str) -> None:
    """Drop and recreate the demo database (``tv2dydx run`` then migrates it)."""
    name = database_name(url)
    parts = urlsplit(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    admin = urlunsplit(parts._replace(scheme="postgresql", path="/postgres"))
    try:
        conn = await asyncpg.connect(admin, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        raise DemoError(
            f"cannot reach PostgreSQL at {parts.hostname}:{parts.port or 5432} "
            f"({type(exc).__name__}); start it, or set DATABASE_URL"
        ) from None
    try:
        # The name was checked against [a-z0-9_]: quoting it is enough.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    except asyncpg.PostgresError as exc:
        raise DemoError(f"cannot create the demo database {name!r}: {exc}") from None
    finally:
        await conn.close()


async def reset_redis(url: str) -> None:
    """Empty the demo's Redis database (jobs of an earlier demo would find nothing)."""
    redis_database(url)
    client = Redis.from_url(url, socket_connect_timeout=5)
    try:
        await client.flushdb()
    except (OSError, ConnectionError, TimeoutError) as exc:
        raise DemoError(
            f"cannot reach Redis ({type(exc).__name__}); start it, or set REDIS_URL"
        ) from None
    except Exception as exc:  # redis-py's own errors
        raise DemoError(f"cannot use Redis ({type(exc).__name__}); check REDIS_URL") from None
    finally:
        await client.aclose()


class Doubles:
    """The simulated Telegram (one bot, one user) and dYdX (one funded trader)."""

    def __init__(self) -> None:
        self.telegram = TelegramDouble()
        self.dydx = DydxDouble()
        self._user: SimulatedUser | None = None
        self._trader: FundedTrader | None = None

    def start(self) -> None:
        """Start both doubles; register the bot, the user and the funded trader."""
        self.telegram.start()
        self.telegram.add_bot(username=BOT_USERNAME, first_name="tv2dydx")
        self._user = self.telegram.user(first_name="Trader", username="demo_trader")
        self.dydx.start()
        self._trader = make_funded_trader(self.dydx, STARTING_USDC)

    def stop(self) -> None:
        """Stop both doubles (idempotent)."""
        self.dydx.stop()
        self.telegram.stop()

    @property
    def user(self) -> SimulatedUser:
        """The person chatting with the bot on the demo page."""
        assert self._user is not None, "start() first"
        return self._user

    @property
    def trader(self) -> FundedTrader:
        """The simulated dYdX account and its API trading key."""
        assert self._trader is not None, "start() first"
        return self._trader

    def env(self) -> dict[str, str]:
        """The Telegram and dYdX endpoints (and the bot token) for the product."""
        return {**self.telegram.env(), **self.dydx.env()}


def forced_environment(doubles: Doubles, endpoints: Endpoints) -> dict[str, str]:
    """Every setting the product runs with in the demo (generated secrets only)."""
    return product_environment(
        {
            **doubles.env(),
            "PUBLIC_BASE_URL": endpoints.public_base_url,
            "WEB_HOST": endpoints.web_host,
            "WEB_PORT": str(endpoints.web_port),
            "DATABASE_URL": endpoints.database_url,
            "REDIS_URL": endpoints.redis_url,
            "ENCRYPTION_KEYS": generate_key_entry(),
            # The side panel posts alerts from this machine, not from TradingView.
            "WEBHOOK_IP_ALLOWLIST": "127.0.0.1/32,::1/128",
            "WEB_PROCESSES": "1",
            "WORKER_PROCESSES": "1",
            "LOG_FORMAT": "console",
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
        }
    )


class Product:
    """``tv2dydx run`` (migrate, then web + bot + worker) as a child process."""

    def __init__(self, env: Mapping[str, str], workdir: Path) -> None:
        self._env = dict(env)
        self._workdir = workdir
        self.log_path = workdir / "product.log"
        self._log: IO[bytes] | None = None
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start it; its output goes to ``log_path``. In ``workdir``, so no ``.env`` of the
        caller's directory is read."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(  # our own interpreter and module
            [sys.executable, "-m", "core.runtime.cli", "run"],
            env=self._env,
            cwd=self._workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
        )

    def exit_code(self) -> int | None:
        """Its exit code, or None while it runs."""
        return None if self.process is None else self.process.poll()

    def log_tail(self, lines: int = 15) -> str:
        """The last lines it wrote."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    async def wait_ready(self, telegram: TelegramDouble, web_port: int) -> None:
        """Until the web server answers /healthz and the bot polls Telegram.

        Raises:
            DemoError: It exited, or was not ready in time.
        """
        deadline = time.monotonic() + READY_TIMEOUT
        url = f"http://127.0.0.1:{web_port}/healthz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:
            while time.monotonic() < deadline:
                code = self.exit_code()
                if code is not None:
                    raise DemoError(f"the product exited with code {code}:\n{self.log_tail()}")
                web_up = False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with http.get(url) as response:
                        web_up = response.status == 200
                if web_up and telegram.calls_to("getUpdates"):
                    return
                await asyncio.sleep(0.25)
        raise DemoError(f"the product was not ready in {READY_TIMEOUT:g} s:\n{self.log_tail()}")

    def stop(self) -> int | None:
        """SIGTERM, then wait (``tv2dydx run`` stops its three children); its exit code."""
        process = self.process
        code = None
        if process is not None:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                code = process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code
