"""Running the worker: in this process, or as ``WORKER_PROCESSES`` processes sharing the queue.

Each worker process has its own event loop, database and Redis pools, dYdX clients and
monitor; they share the arq queue (a job is claimed by one of them, under its lease), the
monitor's subaccount leases (each subaccount watched, and its trailing stops moved, by one)
and the crons (arq runs each cron run once, whichever process claims it). (A module of its
own: spawned processes import their target by module name, which a package's ``__main__``
cannot provide.)
"""

from __future__ import annotations

import asyncio
import gc
from typing import TYPE_CHECKING

from core.runtime.logs import get_logger
from core.runtime.loopwatch import loop_stall_report
from core.runtime.processes import child_started
from core.runtime.processes import supervise as supervise_children
from core.runtime.startup import start_process

if TYPE_CHECKING:
    from arq.connections import RedisSettings

    from core.runtime.config import Settings


def redis_settings(settings: Settings) -> RedisSettings:
    """arq's connection settings from ``REDIS_URL``."""
    from arq.connections import RedisSettings

    return RedisSettings.from_dsn(settings.redis_url.get_secret_value())


async def _serve(settings: Settings) -> None:
    from workers.settings import WorkerSettings
    from workers.worker import build_worker

    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stall the event loop under an order burst.
    gc.collect()
    gc.freeze()
    redis = redis_settings(settings)
    worker = build_worker(settings, redis, WorkerSettings)
    get_logger(__name__).info(
        f"worker: running alerts, notifications and crons from Redis {redis.host}:{redis.port}"
        f"/{redis.database} (dYdX {settings.dydx.network})"
    )
    try:
        async with loop_stall_report(settings.loop_stall_report):
            await worker.async_run()
    except asyncio.CancelledError:
        pass  # SIGTERM/SIGINT: arq cancelled its main task and re-queued running jobs
    finally:
        await worker.close()


def work(settings: Settings) -> None:
    """Run one worker in this process until SIGTERM/SIGINT."""
    asyncio.run(_serve(settings))


def _work_child() -> None:
    """One of several worker processes (a fresh interpreter, configured like the parent)."""
    child_started()
    work(start_process("worker"))


def supervise(processes: int) -> int:
    """Run ``processes`` workers until a signal (exit 0) or until one of them dies (1)."""
    return supervise_children("worker", _work_child, processes)
