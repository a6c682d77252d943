"""arq's ``Worker``, woken by the enqueue and claiming a batch of jobs in one round trip.

Two changes to how arq picks jobs up; how it runs, retries and records them is arq's own:

* **Woken, not only polling.** Whoever queues alert jobs
  (:class:`core.adapters.arq_queue.ArqJobQueue`) pushes a token onto ``{queue}:wake`` in the
  same script; between polls the worker waits on that list (``BLPOP``) instead of sleeping,
  so a job starts within a round trip of its enqueue rather than up to a poll interval
  later. The wait lasts until the earliest deferred job is due (crons, which arq queues
  ahead of their time, and retries), at most :data:`IDLE_POLL_SECONDS`: an idle worker
  looks about once a second, when its next cron is due, instead of five times. Jobs queued
  without a token by other producers (arq's own ``enqueue_job``) are found by the next
  poll.
* **One round trip to find and claim a batch.** arq reads the due jobs (ZRANGEBYSCORE),
  then claims each with WATCH, EXISTS, ZSCORE and MULTI/EXEC: four sequential round trips
  a job, so the tenth alert of a burst waited for forty. The poll script reads the due jobs
  and performs the same checks, and writes the same in-progress key, for every job of the
  batch at once, atomically, so arq workers of either kind can share a queue.
* **A burst shared between workers.** With ``WORKER_PROCESSES`` > 1, a batch of alert jobs
  wakes that many workers (one token each, :class:`~core.adapters.arq_queue.ArqJobQueue`),
  and each claims its share of the free jobs (``ceil(free / workers)``, oldest first) and
  polls again at once for whatever the others left: ten alerts of one bar close are signed
  on every core instead of queuing behind each other on one event loop.

* **A renewed lease, not a half-hour lock.** arq 0.28 writes a job's in-progress key for
  ``max(timeout of every function and cron job, job_timeout falling back) + 10`` seconds
  (``Worker.__init__``: ``in_progress_timeout_s``), the same for every job: with one
  long cron (compliance screening, 1,800 s) a SIGKILLed worker's alert job stayed locked
  for 1,810 s. Here the key lives :data:`IN_PROGRESS_LEASE_SECONDS` and the worker renews
  the keys of the jobs it is running every :data:`LEASE_RENEW_SECONDS`, so a running job
  stays claimed however long its own timeout, and a dead worker's job is free again
  within the lease. A job's own timeout (``asyncio.wait_for``) is arq's, unchanged.

arq is pinned (``arq==0.28.0``): :meth:`TradingWorker._poll_iteration` keeps the bookkeeping
of arq's own (semaphore, ``job_counter``, ``tasks``, aborts, health check) and is checked
against it by the tests.
"""

from __future__ import annotations

import asyncio
import functools
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from arq.constants import in_progress_key_prefix
from arq.utils import timestamp_ms
from arq.worker import Worker, get_kwargs

from core.adapters.arq_queue import QUEUE_NAME, wake_key
from core.services.jobs import alert_job_id

if TYPE_CHECKING:
    from arq.connections import RedisSettings
    from redis.commands.core import AsyncScript

    from core.runtime.config import Settings
    from core.services.priority import PlacementGate

#: Job ids of alert jobs start so (``alert:{id}``): they place orders, so they come first.
_ALERT_JOB = alert_job_id(0).removesuffix("0")

# The longest an idle worker waits between polls: a job queued without a wake token by
# another producer (arq's own enqueue) waits up to this long. Crons and deferred jobs are
# not waited for: the wait ends when the earliest of them is due. Alerts, messages and the
# bot's jobs push tokens: they never wait for it. A retry that arq queues while a wait runs
# (``Retry(defer=...)``, no token) is on time if its defer is at least this long: the wait
# ends before the retry is due, and the next one ends when it is (alert jobs retry after 1 s
# and more). Each poll costs about three Redis calls (#15: five polls a second were ~1.5 ms
# of an idle worker's ~17 ms of CPU a second; its crons are most of the rest).
IDLE_POLL_SECONDS = 1.0
# The longest wait while every job slot is taken: a slot freed is used within this.
FULL_POLL_SECONDS = 0.2
# How far ahead of its time arq's beat queues a cron (``Worker.heart_beat``: two windows of
# ``max(poll_delay, 0.5)`` seconds; poll_delay is 0 here).
_CRON_AHEAD = timedelta(seconds=1)
# A wait shorter than this is not worth a BLPOP (whose timeout 0 would mean forever).
_SHORTEST_WAIT = 0.002

#: How long a claimed job stays claimed without renewal: a job whose worker died is run
#: again (by a restarted or another worker) at most this long after the last renewal.
IN_PROGRESS_LEASE_SECONDS = 10.0
#: How often a worker renews the in-progress keys of the jobs it runs.
LEASE_RENEW_SECONDS = IN_PROGRESS_LEASE_SECONDS / 4

# KEYS: in-progress keys of running jobs. ARGV: the lease (ms). Extends a key only while it
# exists and lives less than the lease: a finished job's key (deleted, or kept 60 s by arq
# after a cron) is never recreated nor shortened.
_RENEW_SCRIPT = """
for i = 1, #KEYS do
  local ttl = redis.call('PTTL', KEYS[i])
  if ttl > 0 and ttl < tonumber(ARGV[1]) then
    redis.call('PEXPIRE', KEYS[i], ARGV[1])
  end
end
return 0
"""

# KEYS: the queue. ARGV: now (ms), in-progress expiry (ms), the workers sharing the queue,
# the most jobs to claim, the in-progress key prefix, how many due jobs to read and from
# which offset. Reads the due jobs, oldest first, as arq's poll does; of those free to run
# (not running elsewhere: arq's own check), claims this worker's share, at most the limit,
# the oldest. Returns the claimed jobs as id, score pairs, then how many free jobs it left
# for the other workers (who were woken too, and take them at once, as does this worker),
# then the score (ms) of the earliest job not yet due, or -1.
# It touches in-progress keys it was not given in KEYS: one Redis server, never a cluster.
_POLL_SCRIPT = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT',
                       ARGV[7], ARGV[6])
local free = {}
for i = 1, #due, 2 do
  if redis.call('EXISTS', ARGV[5] .. due[i]) == 0 then
    free[#free + 1] = i
  end
end
local share = math.min(math.ceil(#free / tonumber(ARGV[3])), tonumber(ARGV[4]))
local claimed = {}
for n = 1, share do
  local i = free[n]
  redis.call('PSETEX', ARGV[5] .. due[i], ARGV[2], '1')
  claimed[#claimed + 1] = due[i]
  claimed[#claimed + 1] = due[i + 1]
end
claimed[#claimed + 1] = #free - share
local later = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf', 'WITHSCORES',
                         'LIMIT', 0, 1)
claimed[#claimed + 1] = later[2] or '-1'
return claimed
"""


class TradingWorker(Worker):
    """An arq ``Worker`` that wakes on enqueue and claims its jobs in one round trip.

    Args:
        *args: arq ``Worker`` arguments.
        idle_poll: Longest wait between polls when no wake token arrives.
        full_poll: The same while every job slot is taken.
        lease: How long a claimed job stays claimed without renewal.
        peers: Worker processes sharing the queue (``WORKER_PROCESSES``): each claims its
            share of a burst of alert jobs, so the burst is placed on every core.
        **kwargs: arq ``Worker`` keyword arguments.
    """

    def __init__(
        self,
        *args: Any,
        idle_poll: float = IDLE_POLL_SECONDS,
        full_poll: float = FULL_POLL_SECONDS,
        lease: float = IN_PROGRESS_LEASE_SECONDS,
        peers: int = 1,
        **kwargs: Any,
    ) -> None:
        # arq sleeps poll_delay between polls; the wait is ours (the BLPOP) instead.
        kwargs["poll_delay"] = 0
        super().__init__(*args, **kwargs)
        self._idle_poll = idle_poll
        self._full_poll = min(full_poll, idle_poll)
        self._next_due_ms = -1  # the earliest deferred job the last poll saw
        self._wake_key = wake_key(self.queue_name)
        self._poll_script: AsyncScript | None = None
        self._renew_script: AsyncScript | None = None
        # arq's rule would be the longest timeout of any function + 10 s (see module doc).
        self.in_progress_timeout_s = lease
        self._renew_every = lease / 4
        self._renewed_at = 0.0
        self._peers = max(1, peers)
        self._left_for_peers = False

    async def _poll_iteration(self) -> None:
        # arq's own iteration (``Worker._poll_iteration``), with its read of the due jobs
        # and their claims made in one script (:meth:`_claim_due`).
        # arq beats after the claim; here before it, so the crons it queues (ahead of their
        # time) count in this poll's earliest deferred job, which ends the wait below.
        await self.heart_beat()
        slots = min(self.queue_read_limit, self.max_jobs - self.job_counter)
        if self.burst and self.max_burst_jobs >= 0:
            slots = min(slots, self.max_burst_jobs - self._jobs_started())
            if slots < 1:
                return
        if self.allow_pick_jobs and slots > 0:
            await self._claim_due(slots)
        if self.allow_abort_jobs:
            await self._cancel_aborted_jobs()
        for job_id, task in list(self.tasks.items()):
            if task.done():
                del self.tasks[job_id]
                task.result()  # as arq: an error of run_job itself is raised here
        if time.monotonic() - self._renewed_at >= self._renew_every:
            await self._renew_leases()
        if self._left_for_peers:
            # Alert jobs were left to the other workers: take what they did not, at once.
            self._left_for_peers = False
            return
        wait = self._wait()
        if wait < _SHORTEST_WAIT:
            return
        # Returns at once when tokens were pushed meanwhile, so no enqueue goes unnoticed.
        # redis-py types BLPOP's timeout as whole seconds; Redis (>= 6) takes fractions.
        blpop: Any = self.pool.blpop
        await blpop([self._wake_key], timeout=wait)

    def _wait(self) -> float:
        """How long to wait for a wake token before polling again (seconds)."""
        wait = self._full_poll if self.job_counter >= self.max_jobs else self._idle_poll
        if self._next_due_ms >= 0:
            wait = min(wait, (self._next_due_ms - timestamp_ms()) / 1000)
        if self.cron_jobs:
            # The next cron is queued by the beat, up to _CRON_AHEAD before its time.
            now = datetime.now(tz=self.timezone)
            for cron_job in self.cron_jobs:
                if cron_job.next_run is not None:
                    at = cron_job.next_run - _CRON_AHEAD
                    at = at if at > now else cron_job.next_run
                    wait = min(wait, (at - now).total_seconds())
        if self.tasks:
            # Running jobs' leases are renewed in the loop: never sleep past the renewal.
            wait = min(wait, self._renewed_at + self._renew_every - time.monotonic())
        return wait

    async def _claim_due(self, slots: int) -> None:
        """Claim up to ``slots`` due jobs (this worker's share of them) and start them."""
        if self._poll_script is None:
            self._poll_script = self.pool.register_script(_POLL_SCRIPT)
        *pairs, left, next_due = await self._poll_script(
            keys=[self.queue_name],
            args=[
                timestamp_ms(),
                int(self.in_progress_timeout_s * 1000),
                self._peers,
                slots,
                in_progress_key_prefix,
                self.queue_read_limit,
                self._queue_read_offset,
            ],
        )
        # Jobs left to the other workers: poll again at once for what they do not take.
        self._left_for_peers = int(left) > 0
        self._next_due_ms = int(float(next_due))
        gate: PlacementGate | None = self.ctx.get("priority")
        for raw_id, score in zip(pairs[::2], pairs[1::2], strict=True):
            job_id = raw_id.decode()
            if self._running(job_id):
                # Its lease lapsed while this worker still runs it (a loop stalled past the
                # lease): the claim renewed the lease; one process never runs a job twice.
                continue
            # A free slot was counted (``slots``), so no acquire waits.
            await self.sem.acquire()
            self.job_counter += 1
            if gate is not None and job_id.startswith(_ALERT_JOB):
                # Placing first: bookkeeping waits from the claim until the broadcast.
                gate.claimed(job_id)
            task = self.loop.create_task(self.run_job(job_id, int(score)))
            task.add_done_callback(functools.partial(self._finished, job_id))
            self.tasks[job_id] = task

    def _finished(self, job_id: str, _task: asyncio.Task[Any]) -> None:
        self._release_sem_dec_counter_on_complete()
        gate: PlacementGate | None = self.ctx.get("priority")
        if gate is not None:
            gate.release(job_id)  # a job that ended before it started (expired, aborted)

    def _running(self, job_id: str) -> bool:
        task = self.tasks.get(job_id)
        return task is not None and not task.done()

    async def _renew_leases(self) -> None:
        """Extend the in-progress keys of the jobs this worker is running."""
        self._renewed_at = time.monotonic()
        running = [job_id for job_id, task in self.tasks.items() if not task.done()]
        if not running:
            return
        if self._renew_script is None:
            self._renew_script = self.pool.register_script(_RENEW_SCRIPT)
        await self._renew_script(
            keys=[in_progress_key_prefix + job_id for job_id in running],
            args=[int(self.in_progress_timeout_s * 1000)],
        )


def build_worker(
    settings: Settings,
    redis_settings: RedisSettings,
    worker_settings: type,
    **overrides: Any,
) -> TradingWorker:
    """The worker for ``worker_settings`` (a plain arq ``WorkerSettings`` class).

    Args:
        settings: The application settings, handed to jobs in ``ctx["settings"]``.
        redis_settings: Where the queue lives.
        worker_settings: Jobs, schedules and tuning, as arq's ``create_worker`` reads them.
        **overrides: Worker arguments replacing those of ``worker_settings``.
    """
    # As arq's own create_worker: class attributes become Worker arguments.
    tuning: dict[str, Any] = get_kwargs(dict(vars(worker_settings)))
    tuning.update(overrides)
    tuning.setdefault("peers", settings.worker_processes)
    return TradingWorker(
        **tuning,
        queue_name=QUEUE_NAME,
        redis_settings=redis_settings,
        ctx={"settings": settings},
    )
