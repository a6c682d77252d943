"""Webhook mode: take the updates the web server queued in Redis and dispatch them.

A reliable-queue pattern: each update moves atomically to a processing list, is handled,
then removed, so a crash re-delivers it on restart instead of losing it. An update id seen
before (Telegram retried a delivery) is skipped.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable
from typing import Any, cast

import structlog
from aiogram import Bot, Dispatcher
from redis.asyncio import Redis

from core.adapters.telegram_webhook import (
    UPDATE_SEEN_PREFIX,
    UPDATES_PROCESSING,
    UPDATES_QUEUE,
    webhook_path,
)
from core.runtime.config import Settings

log = structlog.get_logger(__name__)
SEEN_TTL_SECONDS = 24 * 3600


async def register_webhook(bot: Bot, dispatcher: Dispatcher, settings: Settings) -> None:
    """Point Telegram at the web server's secret path, with the secret header."""
    assert settings.telegram_webhook_secret is not None  # checked by Settings
    secret = settings.telegram_webhook_secret.get_secret_value()
    await bot.set_webhook(
        url=f"{settings.public_base_url}{webhook_path(secret)}",
        secret_token=secret,
        allowed_updates=dispatcher.resolve_used_update_types(),
        drop_pending_updates=False,
    )


async def consume_updates(
    bot: Bot,
    dispatcher: Dispatcher,
    redis: Redis,
    stop: asyncio.Event,
    **workflow_data: Any,
) -> None:
    """Dispatch queued updates one at a time (in order, as FSM conversations need)."""
    # Updates that were in flight when the previous process died go back to the queue.
    moved = True
    while moved:
        moved = bool(await redis.lmove(UPDATES_PROCESSING, UPDATES_QUEUE, "LEFT", "RIGHT"))
    while not stop.is_set():
        raw = await redis.blmove(UPDATES_QUEUE, UPDATES_PROCESSING, 1, "RIGHT", "LEFT")
        if raw is None:
            continue
        update = json.loads(raw)
        seen_key = f"{UPDATE_SEEN_PREFIX}{update['update_id']}"
        if not await redis.exists(seen_key):
            try:
                await dispatcher.feed_raw_update(bot, update, **workflow_data)
            except Exception:  # a handler bug must not stop every other user's updates
                log.exception("telegram_update_failed", update_id=update["update_id"])
            await redis.set(seen_key, 1, ex=SEEN_TTL_SECONDS)
        await cast(Awaitable[int], redis.lrem(UPDATES_PROCESSING, 1, raw))
