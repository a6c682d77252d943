"""Texts shared by every feature: the command menu and /help."""

from __future__ import annotations

# The menu published with setMyCommands, in display order. Features add their commands here.
COMMANDS: list[tuple[str, str]] = [
    ("start", "Welcome and set-up status"),
    ("link", "Link your wallet by signing a message, or show the linked one"),
    ("key", "Connect, show or remove your dYdX API trading key"),
    ("webhook", "Your TradingView webhook: URL, passphrase, latest alerts"),
    ("positions", "Your open positions and collateral, live"),
    ("orders", "Your open orders, live"),
    ("close", "Close one position: /close ETH-USD"),
    ("panic", "Cancel all orders, close all positions, pause"),
    ("pnl", "Your PnL chart: /pnl 7d, 30d, 90d, 1y or all"),
    ("stats", "Win rate, profit factor, drawdown, execution: /stats 30d"),
    ("trades", "Your trade history, with a CSV export"),
    ("settings", "Sizing, slippage, risk limits, paper mode, timezone"),
    ("pause", "Stop executing alerts (they are still recorded)"),
    ("resume", "Execute alerts again"),
    ("why", "An alert's timeline: /why ALERT_ID"),
    ("notify", "Send trade notifications to your channel, or back here"),
    ("unlink", "Remove the wallet link"),
    ("help", "What every command does"),
    ("delete_me", "Delete your key, wallet link, webhook and data"),
]


def help_text() -> str:
    """The /help screen: one line per command."""
    lines = ["<b>Commands</b>"]
    lines += [f"/{command} — {description}" for command, description in COMMANDS]
    lines.append("\nNever send your seed phrase or main wallet key to anyone, including me.")
    return "\n".join(lines)


def unknown_command() -> str:
    """Answer to a message no feature understood."""
    return "I didn't understand that. /help lists what I can do."


def secret_deleted() -> str:
    """After deleting a message that held a private key or a seed phrase."""
    return (
        "I deleted your message: it looked like a private key or a seed phrase. Never send "
        "your seed phrase or main wallet key to anyone. To add an API trading key, use /key."
    )
