"""Texts shared by every feature: the command menu and /help."""

from __future__ import annotations

# The menu published with setMyCommands, in display order. Features add their commands here.
COMMANDS: list[tuple[str, str]] = [
    ("start", "Welcome and set-up status"),
    ("help", "What every command does"),
]

NEXT_STEP_DECLARATION = "First, please read and accept the declaration below."


def help_text() -> str:
    """The /help screen: one line per command."""
    lines = ["<b>Commands</b>"]
    lines += [f"/{command} — {description}" for command, description in COMMANDS]
    lines.append("\nNever send your seed phrase or main wallet key to anyone, including me.")
    return "\n".join(lines)


def unknown_command() -> str:
    """Answer to a message no feature understood."""
    return "I didn't understand that. /help lists what I can do."
