"""Running the web server: in this process, or as several processes sharing the port.

With ``WEB_PROCESSES`` above 1 the started process becomes a small supervisor
(:mod:`core.runtime.processes`): it starts that many server processes bound to the same port
with ``SO_REUSEPORT`` (the kernel spreads the connections between them). (A module of its
own: spawned processes import their target by module name, which a package's ``__main__``
cannot provide.)
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web

from core.runtime.config import Settings
from core.runtime.logs import get_logger
from core.runtime.loopwatch import loop_stall_report
from core.runtime.processes import child_started
from core.runtime.processes import supervise as supervise_children
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


def _serve_child() -> None:
    """One of several server processes (a fresh interpreter, configured like the parent)."""
    child_started()
    serve(start_process("web"), reuse_port=True)


def supervise(processes: int) -> int:
    """Run ``processes`` servers until a signal (exit 0) or until one of them dies (1)."""
    return supervise_children("web", _serve_child, processes)
