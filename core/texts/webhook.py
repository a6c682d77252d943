"""/webhook: the TradingView webhook URL, its passphrase and the latest alerts."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from core.domain.states import AlertState

if TYPE_CHECKING:  # the view types only: texts do not import the services at run time
    from core.services.webhooks import AlertView, IssuedWebhook, WebhookStatus

ROTATE_BUTTON = "🔄 New URL and passphrase"
REVOKE_BUTTON = "⛔ Revoke the webhook"
CONFIRM_ROTATE_BUTTON = "Yes, replace them now"
CONFIRM_REVOKE_BUTTON = "Yes, revoke it now"
CANCEL_BUTTON = "Cancel"

_STATES = {
    AlertState.ACCEPTED: "accepted",
    AlertState.PROCESSING: "executing",
    AlertState.EXECUTED: "executed",
    AlertState.SKIPPED: "skipped",
    AlertState.EXPIRED: "expired",
    AlertState.FAILED: "failed",
}


def _alert_line(alert: AlertView) -> str:
    when = alert.received_at.strftime("%m-%d %H:%M:%S")
    market = escape(alert.market or "?")
    action = escape(alert.action or "?")
    if alert.state is AlertState.REJECTED:
        result = f"refused: {escape(alert.reason or 'unknown reason')}"
    else:
        result = _STATES.get(alert.state, alert.state.value.lower())
        if alert.reason:
            result += f" ({escape(alert.reason)})"
    return f"<code>{when}</code> #{alert.id} {market} {action} — {result}"


def recent_alerts(status: WebhookStatus) -> str:
    """The latest alerts, newest first (UTC)."""
    if not status.recent:
        return "<b>Latest alerts</b>\nNone received yet."
    lines = ["<b>Latest alerts</b> (UTC, newest first)"]
    lines += [_alert_line(alert) for alert in status.recent]
    lines.append("/why and an alert's #number show what happened to it, step by step.")
    return "\n".join(lines)


def issued(webhook: IssuedWebhook) -> str:
    """The new secrets, the alert message and the set-up steps (shown once)."""
    return (
        "<b>Your TradingView webhook</b>\n\n"
        f"Webhook URL:\n<code>{escape(webhook.url)}</code>\n\n"
        f"Passphrase:\n<code>{escape(webhook.passphrase)}</code>\n\n"
        "Alert message (copy all of it):\n"
        f"<pre>{escape(webhook.alert_message)}</pre>\n\n"
        "<b>Set-up</b>\n"
        "1. In TradingView, open your strategy's alert → Notifications → Webhook URL, and "
        "paste the URL.\n"
        "2. Replace the alert's Message with the alert message above.\n"
        "3. Create the alert; each one it sends shows up here under /webhook.\n\n"
        "I show these only now and keep just their fingerprints: save them. Anyone who has "
        "both can place trades for you, so never share them. If they leak, tap "
        f"“{ROTATE_BUTTON}”."
    )


def overview(status: WebhookStatus) -> str:
    """/webhook when the webhook exists already."""
    if status.active_since is None:
        head = "You have no webhook. Send /webhook to create one."
    else:
        since = status.active_since.strftime("%Y-%m-%d %H:%M UTC")
        head = (
            f"<b>Your TradingView webhook</b> is active (since {since}).\n"
            "Its URL and passphrase were shown once, when created. Lost them? Tap "
            f"“{ROTATE_BUTTON}”: the old ones stop working at once."
        )
    return f"{head}\n\n{recent_alerts(status)}"


def confirm_rotate() -> str:
    """Before rotating."""
    return (
        "Replace the URL and passphrase? The current ones stop working immediately: "
        "update every TradingView alert that uses them."
    )


def confirm_revoke() -> str:
    """Before revoking."""
    return (
        "Revoke the webhook? Alerts sent to it are refused from now on. Send /webhook "
        "later for a new one."
    )


def revoked(done: bool) -> str:
    """After revoking."""
    if done:
        return "Revoked: the webhook URL and passphrase no longer work."
    return "There was no active webhook to revoke."


def cancelled() -> str:
    """After cancelling a rotation or revocation."""
    return "Nothing changed: your webhook still works."
