"""Position protection as durable intent (issue #11).

An entry that asked for a take-profit / stop-loss has a **bracket**, committed in the same
transaction as the entry (:mod:`core.db.repositories.execution`).
:class:`.service.ProtectionService` moves brackets towards one invariant, one idempotent
step at a time, whoever calls it (the execution job after the entry settled, a cron every
second, the real-time monitor, ``/close`` and ``/panic``):

    While a position is open and its owner asked for a stop-loss, resting reduce-only
    stop-losses cover its whole size; no leg outlives its position.

The legs are ordinary orders, committed before they are broadcast (:mod:`.legs`); how much
each bracket must cover is decided by :mod:`.coverage`; trailing stops and breakeven are
evaluated by :mod:`.trailing` and moved on the venue by :mod:`.trailing_service`.
"""
