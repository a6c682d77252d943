"""Use cases. Services own the transaction (unit of work); edges call exactly one."""
