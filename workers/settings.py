"""arq ``WorkerSettings``: a plain class, per the arq docs. Redis settings and the
application settings are passed in by ``workers.__main__`` at start (no import-time config)."""

from __future__ import annotations

from arq import cron

from workers.context import job, shutdown, startup
from workers.jobs.deliver_notifications import deliver_notifications

EVERY_TWO_SECONDS = set(range(0, 60, 2))


class WorkerSettings:
    """Jobs, schedules and tuning of the tv2dydx worker."""

    functions = [job(deliver_notifications)]  # noqa: RUF012 - arq reads class attributes
    cron_jobs = [  # noqa: RUF012
        cron(job(deliver_notifications), second=EVERY_TWO_SECONDS, run_at_startup=True, timeout=60),
    ]
    on_startup = startup
    on_shutdown = shutdown
    # arq's default 0.5 s poll is too slow for trading; 20 ms costs ~50 cheap Redis calls/s.
    poll_delay = 0.02
    max_jobs = 20
    job_timeout = 120
    health_check_interval = 10
