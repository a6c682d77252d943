"""Telegram webhook mode: accept updates and queue them for the bot process."""

from __future__ import annotations

import json
from collections.abc import Awaitable
from typing import cast

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from core.adapters.telegram_webhook import MAX_UPDATE_BYTES, UPDATES_QUEUE
from core.security.crypto import constant_time_equals
from webhook_server.keys import REDIS, SETTINGS

log = structlog.get_logger(__name__)
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"  # noqa: S105 - a header name


async def receive_update(request: web.Request) -> web.Response:
    """Check the secret header in constant time, then queue the raw update.

    Answers 200 only once the update is in Redis: otherwise Telegram retries it later.
    """
    settings = request.app[SETTINGS]
    expected = settings.telegram_webhook_secret
    given = request.headers.get(SECRET_HEADER, "")
    if expected is None or not constant_time_equals(given, expected.get_secret_value()):
        return web.json_response({"ok": False}, status=401)
    if request.content_length is not None and request.content_length > MAX_UPDATE_BYTES:
        return web.json_response({"ok": False}, status=413)
    body = await request.read()
    try:
        update = json.loads(body)
    except ValueError:
        return web.json_response({"ok": False, "error": "not JSON"}, status=400)
    if not isinstance(update, dict) or not isinstance(update.get("update_id"), int):
        return web.json_response({"ok": False, "error": "not an update"}, status=400)
    try:
        # redis-py types its async client's commands as `Awaitable | int`.
        await cast(Awaitable[int], request.app[REDIS].lpush(UPDATES_QUEUE, body))
    except (RedisError, OSError) as exc:
        log.warning("telegram_update_not_queued", update_id=update["update_id"], error=str(exc))
        return web.json_response({"ok": False}, status=503)
    return web.json_response({"ok": True})
