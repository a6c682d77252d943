"""Executing alerts: from an accepted alert to an order on the exchange, exactly once.

The protocol that makes a retried job, a killed worker or a lost answer harmless:

1. The order row is written **before** anything leaves the process: a client id from the
   subaccount's counter, the signed transaction bytes, state ``SUBMITTING``, committed
   (:mod:`.place`).
2. Then the bytes are broadcast. Whatever happens next (answer, timeout, crash), the order's
   outcome is decided by asking the exchange about that client id, never by sending a new
   order: an order the exchange has not seen is re-broadcast **byte for byte** while it can
   still land (the chain deduplicates identical bytes), and declared expired once its
   ``good_til_block`` has passed (:mod:`.settle`).
3. Every later step (fills, notifications, the alert's final state) is an idempotent write:
   fills are unique per exchange fill id, notifications per dedupe key, states move only
   forward through the state machine of :mod:`core.domain.states` (:mod:`.record`).

:mod:`.pipeline` reads top-down from a loaded alert to a settled order; the job, the
reconciliation cron (:mod:`.reconcile`) and ``/close`` run the same steps, and whichever
comes second finds nothing left to do.
"""
