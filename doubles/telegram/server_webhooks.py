"""The Telegram double's webhook delivery: updates POSTed to the bot, as Telegram does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import aiohttp

from .errors import OutageError
from .media import Upload
from .methods import (
    LOOPBACK_HOSTS,
    Params,
    normalize_params,
)
from .server_http import HttpApi, recorded_params
from .state import now
from .state_world import ApiCall, BotState, WebhookConfig, WebhookDelivery


class WebhookSender(HttpApi):
    """Posting each bot's updates to its webhook, one at a time and in order, retrying with
    back-off, and running a method the webhook answers with."""

    def start_webhook(self, bot: BotState) -> None:
        """Start posting ``bot``'s updates to its webhook, one at a time, in order."""
        config = bot.webhook
        if config is not None and self._loop is not None:
            config.task = self._loop.create_task(self._deliver_forever(bot, config))

    def stop_webhook(self, bot: BotState) -> None:
        """Stop posting to ``bot``'s webhook."""
        if bot.webhook is not None and bot.webhook.task is not None:
            bot.webhook.task.cancel()
            bot.webhook.task = None

    async def _deliver_forever(self, bot: BotState, config: WebhookConfig) -> None:
        delay = self._retry_delay
        while bot.webhook is config:
            if self.is_down:
                await self.wait_change(min(self._down_until - time.monotonic(), 1.0))
                continue
            if not bot.updates:
                await self.wait_change(60.0)
                continue
            update = bot.updates[0]
            if await self._deliver(bot, config, update):
                with contextlib.suppress(ValueError):
                    bot.updates.remove(update)
                delay = self._retry_delay
                self._notify()
            else:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _deliver(self, bot: BotState, config: WebhookConfig, update: dict[str, Any]) -> bool:
        headers = {"Content-Type": "application/json"}
        if config.secret_token:
            headers["X-Telegram-Bot-Api-Secret-Token"] = config.secret_token
        record = WebhookDelivery(update["update_id"], config.url, dict(headers))
        self._world.deliveries.append(record)
        error: str
        if urlsplit(config.url).hostname not in LOOPBACK_HOSTS or self._http is None:
            error = "Failed to resolve host: Name or service not known"
        else:
            try:
                async with self._http.post(
                    config.url,
                    data=json.dumps(update, ensure_ascii=False).encode(),
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=self._webhook_timeout),
                    ssl=False,
                ) as response:
                    record.status = response.status
                    if 200 <= response.status < 300:
                        await self._webhook_reply(bot, response, record)
                        self._notify()
                        return True
                    error = f"Wrong response from the webhook: {response.status} {response.reason}"
            except TimeoutError:
                error = "Read timeout expired"
            except aiohttp.ClientConnectorError:
                error = "Connection refused"
            except aiohttp.ClientError as failure:
                error = f"Connection error: {failure}"
        record.error = error
        config.last_error_date = now()
        config.last_error_message = error
        self._notify()
        return False

    async def _webhook_reply(
        self, bot: BotState, response: aiohttp.ClientResponse, record: WebhookDelivery
    ) -> None:
        """Run a method returned in a webhook's answer; Telegram ignores its outcome."""
        values: dict[str, Any] = {}
        uploads: dict[str, Upload] = {}
        content_type = response.content_type
        if content_type == "application/json":
            with contextlib.suppress(ValueError):
                body = json.loads(await response.text())
                if isinstance(body, dict):
                    values = body
        elif content_type == "application/x-www-form-urlencoded":
            values = dict(parse_qsl(await response.text()))
        elif content_type == "multipart/form-data":
            reader = aiohttp.MultipartReader(response.headers, response.content)
            while (part := await reader.next()) is not None:
                if not isinstance(part, aiohttp.BodyPartReader) or not part.name:
                    continue
                if part.filename:
                    upload = Upload(
                        part.filename,
                        part.headers.get("Content-Type", ""),
                        bytes(await part.read()),
                    )
                    uploads[part.name] = values[part.name] = upload
                else:
                    values[part.name] = await part.text()
        method = self._canonical(values.pop("method", None))
        if method is None:
            return
        record.reply_method = method
        params = normalize_params(values)
        call = ApiCall(
            seq=next(self._world.call_counter),
            method=method,
            params=recorded_params(params, uploads),
            bot_id=bot.identity.id,
            via="webhook_reply",
        )
        self._world.calls.append(call)
        with contextlib.suppress(OutageError):
            status, body = await self._execute(bot, method, Params(params, uploads), call)
            call.status, call.response = status, body
