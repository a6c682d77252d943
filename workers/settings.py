"""arq ``WorkerSettings``: a plain class, per the arq docs. Redis settings and the
application settings are passed in by ``workers.processes`` at start (no import-time config)."""

from __future__ import annotations

from arq import cron, func

from core.services.jobs import EXECUTE_ALERT, RECHECK_KEYS, RUN_MANUAL_REQUEST
from workers.context import bind_job_context, bookkeeping, job, shutdown, startup
from workers.jobs.advance_brackets import advance_brackets
from workers.jobs.daily_digest import daily_digest
from workers.jobs.deliver_notifications import deliver_notifications
from workers.jobs.execute_alert import execute_alert
from workers.jobs.paper_triggers import paper_triggers
from workers.jobs.recheck_keys import recheck_keys
from workers.jobs.reconcile_orders import reconcile_orders
from workers.jobs.run_manual_request import run_manual_request, sweep_manual_requests
from workers.jobs.screen_compliance import screen_compliance
from workers.jobs.sweep_alerts import sweep_alerts

EVERY_SECOND = set(range(60))
EVERY_TWO_SECONDS = set(range(0, 60, 2))
EVERY_FIVE_SECONDS = set(range(0, 60, 5))
EVERY_FIVE_MINUTES = set(range(2, 60, 5))


class WorkerSettings:
    """Jobs, schedules and tuning of the tv2dydx worker."""

    functions = [  # noqa: RUF012 - arq reads class attributes
        # A job waits up to ~20 s for an order's outcome; past 60 s something hangs and arq
        # re-runs it, which resumes the same order (never a second one).
        func(job(execute_alert), name=EXECUTE_ALERT, timeout=60, max_tries=8),
        bookkeeping(deliver_notifications),
        bookkeeping(screen_compliance),
        # /close, /panic and protection changes from the bot (only the worker signs): the
        # trader waits, so not bookkeeping. A run waits for its closes' outcomes; /panic may
        # close several positions.
        func(job(run_manual_request), name=RUN_MANUAL_REQUEST, timeout=120, max_tries=8),
        # Queued by each worker at its start (workers.context.startup): every key re-checked.
        func(bookkeeping(recheck_keys), name=RECHECK_KEYS, timeout=120),
    ]
    cron_jobs = [  # noqa: RUF012
        cron(
            bookkeeping(deliver_notifications),
            second=EVERY_TWO_SECONDS,
            run_at_startup=True,
            timeout=60,
        ),
        # A bounded batch of the users not screened for about a day, every five minutes:
        # daily per user (~86,000 users a day), and a worker that was down catches up.
        cron(bookkeeping(screen_compliance), minute=EVERY_FIVE_MINUTES, second={0}, timeout=120),
        # Each stored key's authenticators, re-read daily and after a start: a key that may
        # now do more than trade stops trading (#13). Off the hot path; bounded batches.
        cron(bookkeeping(recheck_keys), minute=EVERY_FIVE_MINUTES, second={30}, timeout=120),
        # Alerts accepted while Redis was down reach the queue within seconds of its return.
        cron(bookkeeping(sweep_alerts), second=EVERY_FIVE_SECONDS, run_at_startup=True, timeout=30),
        # Manual requests whose enqueue the bot could not make (Redis down), or whose job gave up.
        cron(bookkeeping(sweep_manual_requests), second=EVERY_FIVE_SECONDS, timeout=30),
        # Orders a killed worker or a timed-out job left with an open outcome.
        cron(
            bookkeeping(reconcile_orders),
            second=EVERY_FIVE_SECONDS,
            run_at_startup=True,
            timeout=120,
        ),
        cron(
            bookkeeping(paper_triggers), second=EVERY_TWO_SECONDS, run_at_startup=True, timeout=60
        ),
        # Brackets a killed job left, and resting legs while nothing reports fills sooner.
        cron(bookkeeping(advance_brackets), second=EVERY_SECOND, run_at_startup=True, timeout=60),
        cron(bookkeeping(daily_digest), minute=EVERY_FIVE_MINUTES, second={30}, timeout=120),
    ]
    # arq 0.28 would hold every job's in-progress key for the longest timeout above + 10 s;
    # workers.worker.TradingWorker instead holds it for a 10 s lease it renews while the job
    # runs, so an alert job of a killed worker runs again within about 10 s.
    on_startup = startup
    on_shutdown = shutdown
    on_job_start = bind_job_context
    # No poll_delay: the worker (workers.worker.TradingWorker) waits for a wake token that
    # the enqueue pushes, or until its next cron or deferred job is due (at most
    # IDLE_POLL_SECONDS, 1 s, when none is).
    # A job mostly waits (on the node, then for its fill): slots are cheap, and too few make
    # a burst of alerts queue behind the previous burst's jobs still waiting for fills.
    max_jobs = 100
    job_timeout = 120
    health_check_interval = 10
    # On SIGTERM, stop taking jobs and let running ones finish (an order mid-broadcast, a
    # message mid-delivery) before cancelling; docker-compose gives the worker 30 s.
    job_completion_wait = 20
