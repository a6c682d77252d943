"""What one execution needs about the trader, and small readings of the ledger's rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.db.models import Order, User
from core.db.repositories.execution import LoadedAlert
from core.domain.compliance import ComplianceStatus
from core.domain.preferences import Preferences
from core.exchange.orders import OrderFlags


@dataclass(frozen=True, slots=True)
class Trader:
    """The trader an order is placed for.

    Attributes:
        user_id: Our user.
        chat_id: Where their messages go.
        prefs: Their settings.
        compliance: Their last compliance screen, if any.
        paused: Whether they paused trading.
    """

    user_id: int
    chat_id: int
    prefs: Preferences
    compliance: ComplianceStatus | None
    paused: bool

    @classmethod
    def of_alert(cls, loaded: LoadedAlert) -> Trader:
        """The trader of an alert loaded by the hot path."""
        return cls(
            user_id=loaded.user_id,
            chat_id=loaded.chat_id,
            prefs=Preferences.from_json(loaded.settings),
            compliance=parse_compliance(loaded.compliance_status),
            paused=loaded.paused,
        )

    @classmethod
    def of_user(cls, user: User, prefs: Preferences) -> Trader:
        """The trader behind a user row, with ``prefs`` (possibly adjusted by the caller)."""
        return cls(
            user_id=user.id,
            chat_id=chat_of(user),
            prefs=prefs,
            compliance=parse_compliance(user.compliance_status),
            paused=user.paused,
        )


def parse_compliance(status: str | None) -> ComplianceStatus | None:
    """A stored compliance status, or None when missing or unknown."""
    try:
        return ComplianceStatus(status) if status else None
    except ValueError:
        return None


def chat_of(user: User) -> int:
    """Where a user's messages go."""
    return user.notify_chat_id or user.telegram_id


def flags_of(order: Order) -> OrderFlags:
    """The exchange's order flags of a ledger order."""
    return OrderFlags(order.order_flags)


def day_start(now: datetime, prefs: Preferences) -> datetime:
    """Midnight of ``now``'s day in the trader's time zone (the daily loss limit's day)."""
    local = now.astimezone(prefs.zone)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


def alert_age(fields: dict[str, object], received_at: datetime, now: datetime) -> timedelta:
    """How old an alert is: from TradingView's time when sent and earlier than receipt."""
    sent = fields.get("time")
    oldest = received_at
    if isinstance(sent, str):
        try:
            oldest = min(oldest, datetime.fromisoformat(sent))
        except (ValueError, TypeError):
            oldest = received_at
    return now - oldest
