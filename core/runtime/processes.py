"""Several processes of one component under a small supervisor (``WEB_PROCESSES``,
``WORKER_PROCESSES``).

The supervisor starts the children with ``spawn`` (each its own interpreter, event loop,
pools and Sentry), forwards SIGTERM/SIGINT to them, and if one dies it stops the others and
exits non-zero, so the container or service manager restarts the whole component. A child
runs :func:`child_started` first: its own process group (a terminal's Ctrl-C reaches the
supervisor only, which then stops every child exactly once) and a SIGTERM to itself once the
supervisor is gone, even if it was SIGKILLed.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import wait
from types import FrameType

from core.runtime.logs import get_logger


def available_cores() -> int:
    """The cores this process may run on (a container's CPU set, not the host's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def default_worker_processes() -> int:
    """``WORKER_PROCESSES`` when unset: half the cores this process may use, 1 to 8.

    The web server, PostgreSQL and Redis usually share the host: on 2 cores a second worker
    process made a burst of alerts slower and cost 1.6x the CPU per alert (each process
    streams only the subaccounts it leases, so the other's jobs poll the Indexer).
    """
    return max(1, min(available_cores() // 2, 8))


def _stop_when_orphaned() -> None:
    parent = multiprocessing.parent_process()
    if parent is not None:
        wait([parent.sentinel])
        os.kill(os.getpid(), signal.SIGTERM)


def child_started() -> None:
    """Set up a supervised child: its own process group, stopped when orphaned."""
    os.setpgid(0, 0)
    threading.Thread(target=_stop_when_orphaned, name="orphan-watch", daemon=True).start()


def supervise(component: str, target: Callable[[], None], processes: int) -> int:
    """Run ``processes`` children running ``target`` until a signal (exit 0) or until one of
    them dies (1).

    Args:
        component: Its name in log events (``web``, ``worker``).
        target: A module-level function (spawned children import it by name) that calls
            :func:`child_started` first.
        processes: How many children.
    """
    log = get_logger(__name__)
    context = multiprocessing.get_context("spawn")
    children = [context.Process(target=target, name=f"{component}-{n}") for n in range(processes)]
    stopping = False

    def stop_all() -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            if child.pid is not None and child.exitcode is None:
                os.kill(child.pid, signal.SIGTERM)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if not stopping:
            log.info(f"{component}_stopping", signal=signal.Signals(signum).name)
            stop_all()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for child in children:
        child.start()
    log.info(f"{component}_processes_started", processes=processes, pids=[c.pid for c in children])
    crashed = False
    running = list(children)
    while running:
        wait([child.sentinel for child in running])
        for child in [c for c in running if c.exitcode is not None]:
            running.remove(child)
            if not stopping:
                log.error(f"{component}_process_died", pid=child.pid, exitcode=child.exitcode)
                crashed = True
                stop_all()
    return 1 if crashed else 0
