"""``python -m demo`` (what ``tv2dydx demo`` runs): start everything, serve the page, and stop
everything on Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from demo.api import BANNER, create_app
from demo.guard import NotOfflineError, check_environment
from demo.stack import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    DemoError,
    Doubles,
    Endpoints,
    Product,
    database_name,
    forced_environment,
    redis_database,
    reset_database,
    reset_redis,
)

DEFAULT_PORT = 8090
DEFAULT_WEB_PORT = 8091


def build_parser() -> argparse.ArgumentParser:
    """The demo's options (``tv2dydx demo`` shows the same)."""
    parser = argparse.ArgumentParser(
        prog="tv2dydx demo",
        description=(
            f"{BANNER}. Run the whole product (web, bot, worker) against a simulated "
            "Telegram and a simulated dYdX exchange, and chat with the bot in a local page. "
            "Needs PostgreSQL and Redis (DATABASE_URL, REDIS_URL; by default the local ones); "
            "no account, no network."
        ),
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address the page and the product's web server listen on (default 127.0.0.1; "
        "0.0.0.0 in a container)",
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help=f"demo page port (default {DEFAULT_PORT})"
    )
    parser.add_argument(
        "--web-port",
        type=int,
        default=DEFAULT_WEB_PORT,
        help=f"port of the product's web server (default {DEFAULT_WEB_PORT})",
    )
    return parser


def _say(line: str) -> None:
    print(f"demo: {line}", flush=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _check_port_free(host: str, port: int) -> None:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            raise DemoError(
                f"port {port} (the product's web server) is in use: choose another with --web-port"
            ) from None


async def _serve(args: argparse.Namespace, started: float) -> int:
    endpoints = Endpoints(
        database_url=os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL,
        redis_url=os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL,
        # The web server listens where the page does (all interfaces in a container).
        web_host=args.host,
        web_port=args.web_port or _free_port(),
    )
    database_name(endpoints.database_url)
    redis_database(endpoints.redis_url)
    _check_port_free(endpoints.web_host, endpoints.web_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)

    doubles = Doubles()
    # The page's port first: taken, the demo stops before starting anything.
    runner = web.AppRunner(create_app(doubles, endpoints.public_base_url), access_log=None)
    await runner.setup()
    workdir = Path(tempfile.mkdtemp(prefix="tv2dydx-demo-"))
    product: Product | None = None
    failed = False
    try:
        site = web.TCPSite(runner, args.host, args.port)
        await site.start()
        port = runner.addresses[0][1]
        await reset_database(endpoints.database_url)
        await reset_redis(endpoints.redis_url)
        await asyncio.to_thread(doubles.start)
        product = Product(forced_environment(doubles, endpoints), workdir)
        product.start()
        _say(f"starting the bot, web server and worker (their log: {product.log_path})")
        ready = asyncio.create_task(product.wait_ready(doubles.telegram, endpoints.web_port))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({ready, stopping}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.done():
            ready.cancel()
            return 130
        stopping.cancel()
        ready.result()
        shown = "127.0.0.1" if args.host in {"0.0.0.0", "::"} else args.host  # noqa: S104
        _say(f"ready in {time.monotonic() - started:.1f} s")
        _say(f"open http://{shown}:{port}/ — everything here is simulated (Ctrl-C stops)")
        while not stop.is_set():
            code = product.exit_code()
            if code is not None:
                failed = True
                _say(f"the product exited with code {code}; stopping\n{product.log_tail()}")
                return 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)
        _say("stopping")
        return 0
    except BaseException:
        failed = True
        raise
    finally:
        await runner.cleanup()
        if product is not None:
            await asyncio.to_thread(product.stop)
        await asyncio.to_thread(doubles.stop)
        if not failed or product is None:  # a failed product's log stays for reading
            shutil.rmtree(workdir, ignore_errors=True)
        if product is not None:
            _say("stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the demo until Ctrl-C; the exit code."""
    args = build_parser().parse_args(argv)
    started = time.monotonic()
    print(f"{BANNER}: tv2dydx demo", flush=True)
    try:
        check_environment()
        return asyncio.run(_serve(args, started))
    except NotOfflineError as exc:
        for problem in exc.problems:
            print(f"demo: refusing to start: {problem}", file=sys.stderr)
        return 2
    except DemoError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # the page's port in use, most often
        print(
            f"demo: cannot serve the page on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
