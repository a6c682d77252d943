"""arq workers: order execution, monitors and the notifications outbox."""
