"""The bot's session: ``getMe``, ``logOut``, ``close``, long polling with ``getUpdates`` and
the webhook methods."""

from __future__ import annotations

import re
import time
from typing import Any
from urllib.parse import urlsplit

from .. import errors
from ..errors import ApiError, bad_request
from ..media import Upload
from ..state_world import PollTicket, WebhookConfig
from .base import LOOPBACK_HOSTS, Answer, Context, method

_SECRET_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]*$")


@method("getMe")
async def get_me(ctx: Context) -> Any:
    """``getMe``: the bot's ``User`` with its capabilities."""
    return {
        **ctx.bot.identity.to_api(),
        "can_join_groups": True,
        "can_read_all_group_messages": False,
        "supports_inline_queries": False,
        "can_connect_to_business": False,
        "has_main_web_app": False,
    }


@method("logOut")
async def log_out(ctx: Context) -> Any:
    """``logOut``: acknowledged; nothing to log out from."""
    return True


@method("close")
async def close(ctx: Context) -> Any:
    """``close``: acknowledged."""
    return True


@method("getUpdates")
async def get_updates(ctx: Context) -> Any:
    """``getUpdates``: long polling with ``offset``, ``limit``, ``timeout`` and ``allowed_updates``.

    A newer ``getUpdates`` or a ``setWebhook`` ends a waiting request with 409, as Telegram does.
    """
    bot, params = ctx.bot, ctx.params
    if bot.webhook is not None:
        raise ApiError(409, errors.WEBHOOK_ACTIVE)
    allowed = params.json("allowed_updates", "allowed updates")
    if isinstance(allowed, list):
        bot.allowed_updates = frozenset(map(str, allowed)) if allowed else None
    offset = params.integer("offset") or 0
    limit = params.integer("limit") or 100
    limit = min(max(limit, 1), 100)
    timeout = max(params.integer("timeout") or 0, 0)
    if offset > 0:
        bot.updates = [update for update in bot.updates if update["update_id"] >= offset]
    elif offset < 0:
        bot.updates = bot.updates[offset:]

    ticket = PollTicket()
    if bot.active_poll is not None:
        bot.active_poll.terminated = errors.TERMINATED_BY_GET_UPDATES
    bot.active_poll = ticket
    ctx.world.notify()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if ticket.terminated == "shutdown":
                return []
            if ticket.terminated is not None:
                raise ApiError(409, ticket.terminated)
            ctx.host.check_outage()
            if bot.updates:
                return bot.updates[:limit]
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            await ctx.host.wait_change(remaining)
    finally:
        if bot.active_poll is ticket:
            bot.active_poll = None


@method("setWebhook")
async def set_webhook(ctx: Context) -> Any:
    """``setWebhook``: deliver updates by POST to ``url`` (an empty ``url`` removes it).

    Telegram demands HTTPS on ports 443, 80, 88 or 8443; the double accepts any http(s)
    URL so a test can listen on a loopback port, and only ever connects to loopback hosts.
    """
    bot, params = ctx.bot, ctx.params
    url = params.string("url") or ""
    if not url:
        return _remove_webhook(ctx)
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        raise bad_request("bad webhook: An HTTPS URL must be provided for webhook")
    secret = params.string("secret_token")
    if secret is not None:
        if len(secret) > 256:
            raise bad_request("secret token is too long")
        if not _SECRET_TOKEN_RE.match(secret):
            raise bad_request("secret token contains unallowed characters")
    max_connections = min(max(params.integer("max_connections") or 40, 1), 100)
    allowed = params.json("allowed_updates", "allowed updates")
    if isinstance(allowed, list):
        bot.allowed_updates = frozenset(map(str, allowed)) if allowed else None
    if params.flag("drop_pending_updates"):
        bot.updates.clear()
    config = WebhookConfig(
        url=url,
        secret_token=secret or None,
        max_connections=max_connections,
        ip_address=params.string("ip_address"),
        has_custom_certificate=isinstance(params.get("certificate"), Upload),
    )
    unchanged = bot.webhook is not None and bot.webhook.same_as(config)
    if bot.webhook is not None:
        ctx.host.stop_webhook(bot)
        config.last_error_date = bot.webhook.last_error_date
        config.last_error_message = bot.webhook.last_error_message
    bot.webhook = config
    if bot.active_poll is not None:
        bot.active_poll.terminated = errors.TERMINATED_BY_SET_WEBHOOK
    ctx.host.start_webhook(bot)
    ctx.world.notify()
    return Answer(True, "Webhook is already set" if unchanged else "Webhook was set")


@method("deleteWebhook")
async def delete_webhook(ctx: Context) -> Any:
    """``deleteWebhook``: back to ``getUpdates``; ``drop_pending_updates`` clears the queue."""
    return _remove_webhook(ctx)


def _remove_webhook(ctx: Context) -> Answer:
    bot = ctx.bot
    if ctx.params.flag("drop_pending_updates"):
        bot.updates.clear()
    if bot.webhook is None:
        return Answer(True, "Webhook is already deleted")
    ctx.host.stop_webhook(bot)
    bot.webhook = None
    ctx.world.notify()
    return Answer(True, "Webhook was deleted")


@method("getWebhookInfo")
async def get_webhook_info(ctx: Context) -> Any:
    """``getWebhookInfo``: the webhook, pending update count and the last delivery error."""
    bot = ctx.bot
    info: dict[str, Any] = {
        "url": bot.webhook.url if bot.webhook else "",
        "has_custom_certificate": bool(bot.webhook and bot.webhook.has_custom_certificate),
        "pending_update_count": len(bot.updates),
    }
    if bot.webhook is not None:
        host = urlsplit(bot.webhook.url).hostname or ""
        if host in LOOPBACK_HOSTS:
            info["ip_address"] = "::1" if host == "::1" else "127.0.0.1"
        if bot.webhook.last_error_date is not None:
            info["last_error_date"] = bot.webhook.last_error_date
            info["last_error_message"] = bot.webhook.last_error_message
        info["max_connections"] = bot.webhook.max_connections
        if bot.allowed_updates is not None:
            info["allowed_updates"] = sorted(bot.allowed_updates)
    return info
