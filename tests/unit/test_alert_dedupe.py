"""The dedupe key of an alert: its alert_id, or the canonical alert within a window (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from core.alerts.dedupe import dedupe_key
from core.alerts.schema import parse_alert

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


def test_the_dedupe_key_is_the_alert_id_or_the_canonical_alert() -> None:
    base = {"market": "BTCUSD", "action": "buy", "size": "1", "time": "2026-05-01T12:00:00Z"}
    with_id = parse_alert({**base, "alert_id": "L-1"})
    assert dedupe_key(with_id, received_at=NOW, window_seconds=60) == ("id:L-1", "L-1")
    one = dedupe_key(parse_alert(base), received_at=NOW, window_seconds=60)
    spelled = dedupe_key(
        parse_alert({**base, "market": "BINANCE:BTCUSDT.P", "size": 1.0}),
        received_at=NOW,
        window_seconds=60,
    )
    assert one[0].startswith("sha256:")
    assert one[1] is None
    # 1.0 and "1" differ as decimals: a different message, a different key.
    assert spelled[0] != one[0]
    same = dedupe_key(
        parse_alert({**base, "market": "BINANCE:BTCUSDT.P"}), received_at=NOW, window_seconds=60
    )
    assert same == one
    later = dedupe_key(
        parse_alert({**base, "time": "2026-05-01T12:00:01Z"}), received_at=NOW, window_seconds=60
    )
    assert later != one


def test_without_time_identical_alerts_are_duplicates_only_within_the_window() -> None:
    alert = parse_alert({"market": "SOL_USD", "order": "buy", "size": "10"})
    first = dedupe_key(alert, received_at=NOW, window_seconds=60)
    assert dedupe_key(alert, received_at=NOW + timedelta(seconds=30), window_seconds=60) == first
    assert dedupe_key(alert, received_at=NOW + timedelta(seconds=90), window_seconds=60) != first
