"""``python -m workers`` (``tv2dydx worker``).

Heavy imports (aiogram's models take seconds) come after the settings are validated, so a
configuration error or a health check answers at once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from core.runtime.startup import preflight_or_exit, settings_or_exit, start_process
from workers.processes import redis_settings, supervise, work


def main(argv: list[str] | None = None) -> int:
    """Run the worker (``WORKER_PROCESSES`` of them), or with ``--check`` report whether one
    is healthy."""
    parser = argparse.ArgumentParser(prog="tv2dydx worker")
    parser.add_argument("--check", action="store_true", help="health check, exit 0 if healthy")
    args = parser.parse_args(argv)
    if args.check:
        from arq.worker import async_check_health

        from core.adapters.arq_queue import QUEUE_NAME

        settings = settings_or_exit()
        code = asyncio.run(async_check_health(redis_settings(settings), queue_name=QUEUE_NAME))
        if code == 0:
            print("tv2dydx: worker healthy")
        else:
            print("tv2dydx: no healthy worker found", file=sys.stderr)
        return int(code)
    settings = start_process("worker")
    preflight_or_exit(settings)
    if settings.worker_processes == 1:
        work(settings)
        return 0
    return supervise(settings.worker_processes)


if __name__ == "__main__":
    raise SystemExit(main())
