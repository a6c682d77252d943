"""Telegram webhook mode, shared by the web server (producer) and the bot (consumer).

No aiogram here: the web server must not pay for importing it.
"""

from __future__ import annotations

import hashlib
import hmac

# Telegram webhook mode: the web server receives updates and hands them to the bot process
# through a Redis list, so the two processes stay independent and an update is acked to
# Telegram only once it is safely queued.
UPDATES_QUEUE = "tv2dydx:telegram:updates"
UPDATES_PROCESSING = "tv2dydx:telegram:updates:processing"
UPDATE_SEEN_PREFIX = "tv2dydx:telegram:seen:"
MAX_UPDATE_BYTES = 1024 * 1024


def webhook_path(secret: str) -> str:
    """The unguessable path Telegram posts updates to, derived from the webhook secret.

    The path and the secret header differ, so a path seen in a proxy log does not reveal
    the header value.
    """
    digest = hmac.new(secret.encode(), b"tv2dydx telegram webhook path", hashlib.sha256)
    return f"/tg/{digest.hexdigest()[:40]}"
