"""The idempotency key of an alert: its ``alert_id``, or a hash of the normalised alert."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from core.alerts.schema import AlertOrder


def dedupe_key(
    alert: AlertOrder, *, received_at: datetime, window_seconds: int
) -> tuple[str, str | None]:
    """The idempotency key of an alert within its user, and its external id.

    ``alert_id`` when given. Otherwise the SHA-256 of the canonical (normalised) alert; an
    alert without ``time`` also hashes the receive-time window, or a strategy repeating the
    same order (as TAC messages do) would be a "duplicate" forever.

    Returns:
        ``(key, alert_id)``; the key fits ``alerts.dedupe_key``.
    """
    if alert.alert_id is not None:
        return f"id:{alert.alert_id}", alert.alert_id
    canonical = alert.to_fields()
    if alert.time is None:
        canonical["_window"] = int(received_at.timestamp()) // window_seconds
    digest = hashlib.sha256(
        json.dumps(canonical, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"sha256:{digest}", None
