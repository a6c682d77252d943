"""arq's ``Worker``, woken by the enqueue and claiming a batch of jobs in one round trip.

Two changes to how arq picks jobs up; how it runs, retries and records them is arq's own:

* **Woken, not only polling.** Whoever queues alert jobs
  (:class:`core.adapters.arq_queue.ArqJobQueue`) pushes a token onto ``{queue}:wake`` in the
  same script; between polls the worker waits on that list (``BLPOP``) instead of sleeping,
  so a job starts within a round trip of its enqueue rather than up to a poll interval
  later, and an idle worker polls every
  :data:`IDLE_POLL_SECONDS` instead of every few milliseconds. Jobs queued without a token
  (arq's own ``enqueue_job``, crons, retries) are found by that poll, as before.
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

# The longest a job queued without a wake token (a cron, a deferred retry, arq's own
# enqueue) waits to be seen; also the idle worker's Redis traffic: two calls per interval.
# Alerts, messages and the bot's jobs push tokens: they never wait for it (#15: 50 ms cost
# an idle worker ~40 Redis calls a second for crons that run every one to five seconds).
IDLE_POLL_SECONDS = 0.2

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
# for the other workers (who were woken too, and take them at once, as does this worker).
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
return claimed
"""


class TradingWorker(Worker):
    """An arq ``Worker`` that wakes on enqueue and claims its jobs in one round trip.

    Args:
        *args: arq ``Worker`` arguments.
        idle_poll: Longest wait between polls when no wake token arrives.
        lease: How long a claimed job stays claimed without renewal.
        peers: Worker processes sharing the queue (``WORKER_PROCESSES``): each claims its
            share of a burst of alert jobs, so the burst is placed on every core.
        **kwargs: arq ``Worker`` keyword arguments.
    """

    def __init__(
        self,
        *args: Any,
        idle_poll: float = IDLE_POLL_SECONDS,
        lease: float = IN_PROGRESS_LEASE_SECONDS,
        peers: int = 1,
        **kwargs: Any,
    ) -> None:
        # arq sleeps poll_delay between polls; the wait is ours (the BLPOP) instead.
        kwargs["poll_delay"] = 0
        super().__init__(*args, **kwargs)
        self._idle_poll = idle_poll
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
        await self.heart_beat()
        if time.monotonic() - self._renewed_at >= self._renew_every:
            await self._renew_leases()
        if self._left_for_peers:
            # Alert jobs were left to the other workers: take what they did not, at once.
            self._left_for_peers = False
            return
        # Returns at once when tokens were pushed meanwhile, so no enqueue goes unnoticed.
        # redis-py types BLPOP's timeout as whole seconds; Redis (>= 6) takes fractions.
        blpop: Any = self.pool.blpop
        await blpop([self._wake_key], timeout=self._idle_poll)

    async def _claim_due(self, slots: int) -> None:
        """Claim up to ``slots`` due jobs (this worker's share of them) and start them."""
        if self._poll_script is None:
            self._poll_script = self.pool.register_script(_POLL_SCRIPT)
        *pairs, left = await self._poll_script(
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
