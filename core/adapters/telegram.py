"""Telegram adapter: a configured aiogram ``Bot`` and the outbox's :class:`NotificationSender`."""

from __future__ import annotations

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BufferedInputFile

from core.runtime.config import Settings
from core.services.notifications import SendError

REQUEST_TIMEOUT = 30.0
CAPTION_LIMIT = 1024


def create_bot(settings: Settings) -> Bot:
    """A ``Bot`` talking to ``TELEGRAM_API_BASE`` with HTML parse mode by default."""
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base),
        timeout=REQUEST_TIMEOUT,
    )
    session.middleware(ResponseTypePin())
    return Bot(
        token=settings.bot_token.get_secret_value(),
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


class ResponseTypePin(BaseRequestMiddleware):
    """Keeps the ``Response[...]`` model of every method this bot called alive.

    aiogram builds ``Response[method.__returning__]`` on each answer, and pydantic caches
    parametrized generics weakly: after every garbage collection the next answer rebuilt the
    model (2-16 ms of CPU, a stall of the event loop, ~0.6 ms per alert on average). Holding a
    reference turns that into a dictionary hit.
    """

    def __init__(self) -> None:
        self._pinned: dict[object, type] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        """Pin the method's response model, then make the request."""
        returning = method.__returning__
        if returning not in self._pinned:
            self._pinned[returning] = Response[returning]  # type: ignore[valid-type]
        return await make_request(bot, method)


class TelegramSender:
    """Delivers outbox messages with aiogram, classifying failures as retryable or not."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def send(self, chat_id: int, text: str, attachment: bytes | None) -> None:
        """Send a text, or a PNG with the text as caption (split when too long)."""
        try:
            if attachment is None:
                await self._bot.send_message(chat_id, text)
            elif len(text) <= CAPTION_LIMIT:
                await self._bot.send_photo(
                    chat_id, BufferedInputFile(attachment, "chart.png"), caption=text
                )
            else:
                await self._bot.send_photo(chat_id, BufferedInputFile(attachment, "chart.png"))
                await self._bot.send_message(chat_id, text)
        except TelegramRetryAfter as exc:
            raise SendError("flood control", retryable=True, retry_after=exc.retry_after) from None
        except (TelegramNetworkError, TelegramServerError) as exc:
            raise SendError(f"Telegram unavailable: {exc.message}", retryable=True) from None
        except ClientDecodeError:
            # An HTML error page from a proxy in front of the Bot API (502 during outages).
            raise SendError("Telegram unavailable: undecodable answer", retryable=True) from None
        except (TelegramForbiddenError, TelegramBadRequest, TelegramUnauthorizedError) as exc:
            # Blocked by the user, chat gone, malformed message: retrying cannot help.
            raise SendError(exc.message, retryable=False) from None
        except TelegramAPIError as exc:
            raise SendError(exc.message, retryable=True) from None
