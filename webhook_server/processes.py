"""Running the web server: in this process, or as several processes sharing the port.

With ``WEB_PROCESSES`` above 1 the started process becomes a small supervisor
(:mod:`core.runtime.processes`): it starts that many server processes bound to the same port
with ``SO_REUSEPORT`` (the kernel spreads the connections between them). (A module of its
own: spawned processes import their target by module name, which a package's ``__main__``
cannot provide.)
"""

from __future__ import annotations

import asyncio
import gc
import os
import signal
import socket
from collections.abc import AsyncIterator
from typing import NoReturn

from aiohttp import web

from core.runtime.config import Settings
from core.runtime.logs import get_logger
from core.runtime.loopwatch import loop_stall_report
from core.runtime.processes import child_started
from core.runtime.processes import supervise as supervise_children
from core.runtime.startup import fail, start_process
from webhook_server.access_log import IntakeAccessLogger
from webhook_server.app import create_app
from webhook_server.edge import EdgeRunner


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM/SIGINT.

    Exits with one plain line (and code 1) when ``WEB_HOST``/``WEB_PORT`` cannot be bound.
    """
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)  # after the resources open (cleanup_ctx)
    if settings.loop_stall_report:
        report = settings.loop_stall_report

        async def stall_report(_app: web.Application) -> AsyncIterator[None]:
            async with loop_stall_report(report):
                yield

        app.cleanup_ctx.append(stall_report)
    problem = asyncio.run(_serve(app, settings, reuse_port=reuse_port))
    if problem is not None:
        _cannot_listen(settings, problem)


def _cannot_listen(settings: Settings, problem: str) -> NoReturn:
    fail(
        f"WEB_PORT {settings.web_port} on WEB_HOST {settings.web_host}: {problem}; "
        "stop what uses it or set WEB_PORT to a free port",
        code=1,
    )


def refuse_busy_port(settings: Settings) -> None:
    """Exit with one line when the servers could not bind ``WEB_HOST:WEB_PORT`` (checked
    by the supervisor before it starts them, so the line is not one per server)."""
    family = socket.AF_INET6 if ":" in settings.web_host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            probe.bind((settings.web_host, settings.web_port))
    except OSError as exc:
        _cannot_listen(settings, os.strerror(exc.errno) if exc.errno else str(exc))


async def _serve(app: web.Application, settings: Settings, *, reuse_port: bool) -> str | None:
    """Serve until a signal; or the reason the address could not be bound."""
    runner = EdgeRunner(app, access_log_class=IntakeAccessLogger, shutdown_timeout=10)
    await runner.setup()
    try:
        site = web.TCPSite(
            runner, settings.web_host, settings.web_port, reuse_port=reuse_port or None
        )
        try:
            await site.start()
        except OSError as exc:  # asyncio's message repeats the address: the errno's words
            return os.strerror(exc.errno) if exc.errno else str(exc)
        get_logger(__name__).info(
            f"web: listening on {settings.web_host}:{settings.web_port}",
            host=settings.web_host,
            port=settings.web_port,
        )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        return None
    finally:
        await runner.cleanup()


async def _freeze_heap(_app: web.Application) -> None:
    """Leave what start-up allocated (modules, pools: the server's lifetime) out of every
    later garbage collection. A full collection scanning it paused the server for 130-190
    ms every few seconds under load: that was the whole p99 of the alert intake."""
    gc.collect()
    gc.freeze()
    get_logger(__name__).debug("heap_frozen", objects=gc.get_freeze_count())


def _serve_child() -> None:
    """One of several server processes (a fresh interpreter, configured like the parent)."""
    child_started()
    serve(start_process("web"), reuse_port=True)


def supervise(processes: int) -> int:
    """Run ``processes`` servers until a signal (exit 0) or until one of them dies (1)."""
    return supervise_children("web", _serve_child, processes)
