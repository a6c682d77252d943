"""Running the web server: in this process, or as several processes sharing the port.

With ``WEB_PROCESSES`` above 1 the started process becomes a small supervisor: it starts
that many server processes bound to the same port with ``SO_REUSEPORT`` (the kernel spreads
the connections between them), forwards SIGTERM/SIGINT to them, and if one dies it stops
the others and exits non-zero, so the container or service manager restarts the whole
server. (A module of its own: spawned processes import their target by module name, which
a package's ``__main__`` cannot provide.)
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import signal
import threading
from collections.abc import AsyncIterator
from multiprocessing.connection import wait
from types import FrameType

from aiohttp import web

from core.runtime.config import Settings
from core.runtime.logs import get_logger
from core.runtime.loopwatch import loop_stall_report
from core.runtime.startup import start_process
from webhook_server.access_log import IntakeAccessLogger
from webhook_server.app import create_app


def serve(settings: Settings, *, reuse_port: bool = False) -> None:
    """Serve in this process until SIGTERM/SIGINT."""
    app = create_app(settings)
    app.on_startup.append(_freeze_heap)  # after the resources open (cleanup_ctx)
    if settings.loop_stall_report:
        report = settings.loop_stall_report

        async def stall_report(_app: web.Application) -> AsyncIterator[None]:
            async with loop_stall_report(report):
                yield

        app.cleanup_ctx.append(stall_report)
    web.run_app(
        app,
        host=settings.web_host,
        port=settings.web_port,
        reuse_port=reuse_port or None,
        access_log_class=IntakeAccessLogger,
        print=None,
        shutdown_timeout=10,
    )


async def _freeze_heap(_app: web.Application) -> None:
    """Leave what start-up allocated (modules, pools: the server's lifetime) out of every
    later garbage collection. A full collection scanning it paused the server for 130-190
    ms every few seconds under load: that was the whole p99 of the alert intake."""
    gc.collect()
    gc.freeze()
    get_logger(__name__).info("heap_frozen", objects=gc.get_freeze_count())


def _stop_when_orphaned() -> None:
    """SIGTERM this process once the supervisor is gone (even if it was SIGKILLed)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)


def _serve_child() -> None:
    """One of several server processes (a fresh interpreter, configured like the parent)."""
    # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which then
    # stops every server exactly once.
    os.setpgid(0, 0)
    threading.Thread(target=_stop_when_orphaned, name="orphan-watch", daemon=True).start()
    serve(start_process("web"), reuse_port=True)


def supervise(processes: int) -> int:
    """Run ``processes`` servers until a signal (exit 0) or until one of them dies (1)."""
    log = get_logger(__name__)
    # spawn, not fork: each server starts its own interpreter, event loop, pools, Sentry.
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=_serve_child, name=f"web-{n}") for n in range(processes)]
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping:
            log.info("web_stopping", signal=signal.Signals(signum).name)
            stop_all()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for child in children:
        child.start()
    log.info("web_processes_started", processes=processes, pids=[c.pid for c in children])
    crashed = False
    running = list(children)
    while running:
        wait([child.sentinel for child in running])
        for child in [c for c in running if c.exitcode is not None]:
            running.remove(child)
            if not stopping:
                log.error("web_process_died", pid=child.pid, exitcode=child.exitcode)
                crashed = True
                stop_all()
    return 1 if crashed else 0
