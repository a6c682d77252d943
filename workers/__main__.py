"""``python -m workers`` (``tv2dydx worker``).

Heavy imports (aiogram's models take seconds) come after the settings are validated, so a
configuration error or a health check answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
from typing import TYPE_CHECKING

from core.runtime.loopwatch import loop_stall_report
from core.runtime.startup import preflight_or_exit, settings_or_exit, start_process

if TYPE_CHECKING:
    from arq.connections import RedisSettings

    from core.runtime.config import Settings


def _redis_settings(settings: Settings) -> RedisSettings:
    from arq.connections import RedisSettings

    return RedisSettings.from_dsn(settings.redis_url.get_secret_value())


async def _serve(settings: Settings) -> None:
    from workers.settings import WorkerSettings
    from workers.worker import build_worker

    # Everything imported so far lives as long as the process: keep it out of the garbage
    # collector's full passes, which otherwise stall the event loop under an order burst.
    gc.collect()
    gc.freeze()
    worker = build_worker(settings, _redis_settings(settings), WorkerSettings)
    try:
        async with loop_stall_report(settings.loop_stall_report):
            await worker.async_run()
    except asyncio.CancelledError:
        pass  # SIGTERM/SIGINT: arq cancelled its main task and re-queued running jobs
    finally:
        await worker.close()


def main(argv: list[str] | None = None) -> int:
    """Run the worker, or with ``--check`` report whether one is healthy."""
    parser = argparse.ArgumentParser(prog="tv2dydx worker")
    parser.add_argument("--check", action="store_true", help="health check, exit 0 if healthy")
    args = parser.parse_args(argv)
    if args.check:
        from arq.worker import async_check_health

        from core.adapters.arq_queue import QUEUE_NAME

        settings = settings_or_exit()
        code = asyncio.run(async_check_health(_redis_settings(settings), queue_name=QUEUE_NAME))
        if code == 0:
            print("tv2dydx: worker healthy")
        else:
            print("tv2dydx: no healthy worker found", file=sys.stderr)
        return int(code)
    settings = start_process("worker")
    preflight_or_exit(settings)
    asyncio.run(_serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
