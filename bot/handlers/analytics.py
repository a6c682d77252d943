"""/stats and /trades (paged, with the CSV export): the trader's history from the ledger."""

from __future__ import annotations

from contextlib import suppress
from typing import Final

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.keyboards import analytics as keyboards
from bot.keyboards.analytics import TradesAction, TradesCD
from core.services.analytics.periods import parse_period_and_strategy
from core.services.analytics.service import AnalyticsService
from core.services.users import UserView
from core.texts import analytics as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(Command("stats"))
async def stats(
    message: Message, command: CommandObject, user: UserView, analytics: AnalyticsService
) -> None:
    """Statistics of the closed trades of a period, optionally of one strategy."""
    try:
        period, strategy = parse_period_and_strategy(command.args or "")
    except ValueError as exc:
        await message.answer(texts.usage_period(str(exc), "stats"))
        return
    await message.answer(texts.stats(await analytics.stats(user.id, period, strategy)))


@router.message(Command("trades"))
async def trades(message: Message, user: UserView, analytics: AnalyticsService) -> None:
    """The newest trades, with page and export buttons."""
    page = await analytics.trades(user.id)
    await message.answer(
        texts.trades(page),
        reply_markup=keyboards.trades(page.page, page.pages, exportable=bool(page.total)),
    )


@router.callback_query(TradesCD.filter(F.action == TradesAction.PAGE))
async def trades_page(
    query: CallbackQuery, callback_data: TradesCD, user: UserView, analytics: AnalyticsService
) -> None:
    """Another page, in the same message."""
    await query.answer()
    page = await analytics.trades(user.id, callback_data.page)
    if isinstance(query.message, Message):
        with suppress(TelegramBadRequest):  # "message is not modified": the same page again
            await query.message.edit_text(
                texts.trades(page),
                reply_markup=keyboards.trades(page.page, page.pages, exportable=bool(page.total)),
            )


@router.callback_query(TradesCD.filter(F.action == TradesAction.EXPORT))
async def export(query: CallbackQuery, user: UserView, analytics: AnalyticsService) -> None:
    """The whole history as a CSV document."""
    result = await analytics.export(user.id)
    if not result.fills or not isinstance(query.message, Message):
        await query.answer(texts.nothing_to_export(), show_alert=True)
        return
    await query.answer()
    await query.message.answer_document(
        BufferedInputFile(result.data, filename=result.filename),
        caption=texts.export_caption(result),
    )
