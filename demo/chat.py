"""The chat as the demo page shows it, and the TradingView alert the side panel sends.

Snapshots are built on the Telegram double's own thread (inside its ``wait_until``), so they
never see half of an edit.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from doubles.telegram import ChatMessage, SimulatedUser

_HOOK_RE = re.compile(r"(https?://\S+?/hook/[A-Za-z0-9_-]{16,64})")
_PASSPHRASE_RE = re.compile(r"Passphrase:\n(\S+)")
_TEMPLATE_RE = re.compile(r"(\{\n.*?\n\})", re.DOTALL)
_MARKET_RE = re.compile(r'"market"\s*:\s*"([^"]*)"')
_PAIR_RE = re.compile(r"^([A-Z0-9]+?)[-_/]?(USDT|USDC|USD|PERP)?$")

#: What the side panel puts in for TradingView's placeholders; ``{{timenow}}`` and
#: ``{{close}}`` stay in the message and are filled in when it is fired, as TradingView does.
DEMO_PLACEHOLDERS = {
    "{{ticker}}": "ETH-USD",
    "{{strategy.order.action}}": "buy",
    "{{strategy.market_position}}": "long",
    "{{strategy.order.contracts}}": "0.1",
    "{{strategy.order.id}}": "Long",
}
#: Added to the demo's alert so the fill comes with a take-profit and a stop-loss.
DEMO_PROTECTION = {"tp_pct": "2", "sl_pct": "1"}


def _media(message: ChatMessage) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if message.photo_files:
        largest = message.photo_files[-1]
        out["photo"] = {
            "file_id": largest.file_id,
            "width": largest.width,
            "height": largest.height,
        }
    if message.document_file is not None:
        stored = message.document_file
        out["document"] = {
            "file_id": stored.file_id,
            "name": stored.filename or "file",
            "size": stored.size,
        }
    return out


def message_view(message: ChatMessage) -> dict[str, Any]:
    """One message as the page renders it (text and entities as Telegram stores them)."""
    version = message.current
    rows = [
        [{"text": button.text, "kind": button.kind, "value": button.value} for button in row]
        for row in _rows(message)
    ]
    view: dict[str, Any] = {
        "id": message.message_id,
        "from": "bot" if message.from_bot else "user",
        "date": message.date,
        "edited": bool(message.edits),
        "text": version.text if version.text is not None else (version.caption or ""),
        "entities": list(
            version.entities if version.text is not None else version.caption_entities
        ),
        "buttons": rows,
    }
    view.update(_media(message))
    return view


def _rows(message: ChatMessage) -> list[list[Any]]:
    rows: dict[int, list[Any]] = {}
    for button in message.buttons:
        rows.setdefault(button.row, []).append(button)
    return [rows[index] for index in sorted(rows)]


def snapshot(user: SimulatedUser) -> dict[str, Any]:
    """The visible chat (deleted messages vanish, as in Telegram) and its revision."""
    messages = [message_view(m) for m in user.messages if not m.deleted]
    body = {"messages": messages, "reply_keyboard": user.reply_keyboard}
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    return {"rev": digest, **body}


def issued_webhook(user: SimulatedUser, public_base_url: str) -> dict[str, str] | None:
    """The webhook URL, passphrase and alert message of the bot's latest /webhook answer."""
    for message in reversed(user.bot_messages):
        text = message.text or ""
        url = _HOOK_RE.search(text)
        passphrase = _PASSPHRASE_RE.search(text)
        template = _TEMPLATE_RE.search(text)
        if not (url and passphrase and template) or message.deleted:
            continue
        if not url.group(1).startswith(public_base_url + "/hook/"):
            continue
        return {
            "url": url.group(1),
            "passphrase": passphrase.group(1),
            "message": demo_alert_message(template.group(1)),
        }
    return None


def demo_alert_message(template: str) -> str:
    """The bot's alert message as a strategy's first long entry would fill it in."""
    try:
        fields = json.loads(template)
    except json.JSONDecodeError:
        return template
    if not isinstance(fields, dict):
        return template
    filled: dict[str, Any] = {}
    for key, value in fields.items():
        if isinstance(value, str):
            for placeholder, demo_value in DEMO_PLACEHOLDERS.items():
                value = value.replace(placeholder, demo_value)
        filled[key] = value
    for key, value in DEMO_PROTECTION.items():
        filled.setdefault(key, value)
    return json.dumps(filled, indent=2)


def market_of(body: str, markets: dict[str, Decimal]) -> str | None:
    """The dYdX market an alert body names (``ETH-USD``, ``ETHUSD``, ``BINANCE:ETHUSDT.P``)."""
    found = _MARKET_RE.search(body)
    if found is None:
        return None
    raw = found.group(1).upper().split(":")[-1].removesuffix(".P").removesuffix(".PERP")
    if raw in markets:
        return raw
    pair = _PAIR_RE.match(raw)
    candidate = f"{pair.group(1)}-USD" if pair else None
    return candidate if candidate in markets else None


def fill_placeholders(body: str, prices: dict[str, Decimal], now: datetime | None = None) -> str:
    """``{{timenow}}`` and ``{{close}}`` as TradingView fills them when the alert fires."""
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    body = body.replace("{{timenow}}", moment.strftime("%Y-%m-%dT%H:%M:%SZ"))
    market = market_of(body, prices)
    if market is not None:
        body = body.replace("{{close}}", str(prices[market]))
    return body
