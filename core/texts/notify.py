"""/notify: trade notifications in a channel the trader owns, or in this chat."""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the view types only: texts do not import the services at run time
    from core.services.control.notify import NotifyRefusal, NotifyTarget

_HOW = (
    "To get them in a channel you own:\n"
    "1. Add me to the channel as an administrator with “Post messages”.\n"
    "2. Send /notify @channelname (or the channel's id, -100…).\n"
    "/notify off sends them here again."
)


def status(channel_set: bool) -> str:
    """/notify without an argument."""
    if channel_set:
        return (
            "🔔 Trade notifications go to your channel.\n"
            "/notify @otherchannel moves them; /notify off sends them here again."
        )
    return f"🔔 Trade notifications come to this chat.\n\n{_HOW}"


def checking() -> str:
    """While checking the channel."""
    return "Checking the channel…"


def test_post() -> str:
    """The test message posted in the channel."""
    return (
        "✅ tv2dydx will post trade notifications here: fills, refusals and other events of "
        "your alerts."
    )


def channel_set(target: NotifyTarget) -> str:
    """After the channel passed every check."""
    return (
        f"✅ Trade notifications now go to <b>{escape(target.title)}</b>. I posted a test "
        "message there.\n"
        "If I lose the right to post, they come back here and I tell you. "
        "/notify off sends them here at once."
    )


def cleared(was_set: bool) -> str:
    """After /notify off."""
    if was_set:
        return "🔔 Trade notifications come to this chat again."
    return "Trade notifications already come to this chat."


# Keyed by the values of ``NotifyRefusal`` (a StrEnum), which texts do not import.
_REFUSALS: dict[str, str] = {
    "bad_reference": (
        "That doesn't look like a channel. Send /notify @channelname, or the channel's id "
        "(it starts with -100)."
    ),
    "not_found": (
        "I can't see that channel. If it is private, add me as an administrator with "
        "“Post messages” first, then send /notify again with its id (-100…)."
    ),
    "not_a_channel": "{title} is not a channel: notifications go to channels only.",
    "bot_not_admin": (
        "I'm not an administrator of {title}. Add me as an administrator with "
        "“Post messages”, then send /notify again."
    ),
    "bot_cannot_post": (
        "I'm an administrator of {title} but may not post. Turn on “Post messages” for me "
        "in the channel's administrators, then send /notify again."
    ),
    "not_owner": (
        "Only the owner of {title} can send its notifications there, and Telegram says "
        "that's not you."
    ),
    "post_failed": (
        "Telegram refused my test message in {title}. Check that I may post there, then "
        "send /notify again."
    ),
}


def refused(reason: NotifyRefusal, title: str | None) -> str:
    """A refused channel; nothing changed."""
    name = f"<b>{escape(title)}</b>" if title else "that chat"
    return f"❌ {_REFUSALS[reason].format(title=name)}\nNotifications still go where they did."


def channel_lost(title: str) -> str:
    """Sent to the private chat when the bot lost the right to post in the channel."""
    return (
        f"⚠️ I can no longer post in <b>{escape(title)}</b>, so trade notifications come "
        "to this chat again. Make me an administrator with “Post messages” and send "
        "/notify to move them back."
    )
