"""The real-time position monitor (issue #11, item 3), venue-neutral.

A long-running task in the worker (:mod:`workers.monitor`) that:

- reads which subaccounts need watching from the ledger (:mod:`.watchlist`: those with an
  order whose outcome may still change, and, once brackets exist, a bracket not yet closed);
- takes a Redis lease on each (:mod:`.lease`, ``SET NX PX`` renewed at a third of its life),
  so with several workers each subaccount is watched by exactly one, and a dead holder's
  subaccounts are taken over once its leases expire;
- subscribes them on the venue's stream (:class:`core.exchange.stream.SubaccountStream`),
  catches up over REST after every (re)subscribe and every minute, and polls over REST
  every few seconds while a subscription is down (:mod:`.monitor`);
- hands what it sees to a :class:`~.listener.SubaccountListener`, one call at a time per
  subaccount; :class:`~.recording.LedgerRecorder` writes fills and order states to
  PostgreSQL through the execution path's settler (idempotent) and then runs an optional
  ``after_sync`` hook.
"""
