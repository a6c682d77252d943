"""arq ``WorkerSettings``: a plain class, per the arq docs. Redis settings and the
application settings are passed in by ``workers.__main__`` at start (no import-time config)."""

from __future__ import annotations

from arq import cron

from workers.context import bind_job_context, job, shutdown, startup
from workers.jobs.deliver_notifications import deliver_notifications
from workers.jobs.screen_compliance import screen_compliance
from workers.jobs.sweep_alerts import sweep_alerts

EVERY_TWO_SECONDS = set(range(0, 60, 2))
EVERY_FIVE_SECONDS = set(range(0, 60, 5))


class WorkerSettings:
    """Jobs, schedules and tuning of the tv2dydx worker."""

    functions = [  # noqa: RUF012 - arq reads class attributes
        job(deliver_notifications),
        job(screen_compliance),
    ]
    cron_jobs = [  # noqa: RUF012
        cron(job(deliver_notifications), second=EVERY_TWO_SECONDS, run_at_startup=True, timeout=60),
        # Hourly, taking only users not screened for about a day: daily per user, and a
        # worker that was down catches up at its next hour.
        cron(job(screen_compliance), minute={17}, second={0}, timeout=1800),
        # Alerts accepted while Redis was down reach the queue within seconds of its return.
        cron(job(sweep_alerts), second=EVERY_FIVE_SECONDS, run_at_startup=True, timeout=30),
    ]
    on_startup = startup
    on_shutdown = shutdown
    on_job_start = bind_job_context
    # arq's default 0.5 s poll is too slow for trading; 20 ms costs ~50 cheap Redis calls/s.
    poll_delay = 0.02
    max_jobs = 20
    job_timeout = 120
    health_check_interval = 10
    # On SIGTERM, stop taking jobs and let running ones finish (an order mid-broadcast, a
    # message mid-delivery) before cancelling; docker-compose gives the worker 30 s.
    job_completion_wait = 20
