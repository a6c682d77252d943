"""The job vocabulary of the services: job names, job ids and the queue they are put on.

Redis is transport only: every job's truth is in PostgreSQL, so a lost enqueue is repaired
by a sweeper, never by the caller. Services see the queue through :class:`JobQueue`; the
arq implementation (:class:`core.adapters.arq_queue.ArqJobQueue`) is wired by the edges
(``workers``, ``webhook_server``, ``bot``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

#: Executes one accepted alert (``workers.jobs.execute_alert``).
EXECUTE_ALERT = "execute_alert"
#: Does one manual request asked in the bot (``workers.jobs.run_manual_request``): /close,
#: /panic, a protection change. Only the worker holds the keys that sign them.
RUN_MANUAL_REQUEST = "run_manual_request"
#: Re-reads the authenticators of stored keys (``workers.jobs.recheck_keys``); also queued
#: once by each worker at its start, so every key is re-checked after a restart.
RECHECK_KEYS = "recheck_keys"
#: Drains the notifications outbox into Telegram (``workers.jobs.deliver_notifications``).
DELIVER_NOTIFICATIONS = "deliver_notifications"


def alert_job_id(alert_id: int) -> str:
    """The job id of an alert's execution: one job per alert, whoever enqueues it."""
    return f"alert:{alert_id}"


def manual_request_job_id(request_id: int) -> str:
    """The job id of a manual request: one job per request row."""
    return f"manual:{request_id}"


class JobQueue(Protocol):
    """Enqueues jobs by name. Arguments must never carry secrets (they are pickled)."""

    async def enqueue(self, function: str, *args: Any, job_id: str | None = None) -> bool:
        """Enqueue ``function(*args)``; with ``job_id``, a duplicate enqueue is a no-op.

        Returns:
            Whether a new job was queued (False: same job id already queued or done).
        """
        ...

    async def enqueue_many(self, function: str, jobs: Sequence[tuple[Any, ...]]) -> list[bool]:
        """Enqueue ``function(*arguments)`` for each ``(job_id, *arguments)`` at once.

        Returns:
            Per job, whether it was newly queued.
        """
        ...

    async def nudge_notifications(self) -> None:
        """Ask a worker to drain the outbox now (best effort, never raises)."""
        ...
