"""Everything the bot says, apart from the handlers. HTML parse mode."""

from __future__ import annotations

from html import escape

COMMANDS: list[tuple[str, str]] = [
    ("start", "Welcome and set-up status"),
    ("help", "What every command does"),
]


def welcome(first_name: str | None, *, returning: bool) -> str:
    """The /start greeting: what tv2dydx does and, above all, what it cannot do."""
    name = escape(first_name or "trader")
    hello = f"Welcome back, {name}." if returning else f"Hi {name}, welcome to <b>tv2dydx</b>."
    return (
        f"{hello}\n\n"
        "I turn your TradingView alerts into orders on <b>dYdX v4</b> and report every "
        "fill, P&amp;L and error right here.\n\n"
        "<b>Non-custodial:</b> I work with a dYdX <i>API trading key</i> that can only place "
        "and cancel orders. I can never withdraw or transfer your funds, and I will never "
        "ask for your seed phrase.\n\n"
        "Next step: /help shows what I can do."
    )


def help_text() -> str:
    """The /help screen: one line per command."""
    lines = ["<b>Commands</b>"]
    lines += [f"/{command} — {description}" for command, description in COMMANDS]
    lines.append("\nNever send your seed phrase or main wallet key to anyone, including me.")
    return "\n".join(lines)
