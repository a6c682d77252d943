"""/pnl: the P&L chart as a photo; the period buttons redraw it in the same message."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import BufferedInputFile, CallbackQuery, InputMediaPhoto, Message

from bot.keyboards import analytics as keyboards
from bot.keyboards.analytics import PnlCD
from core.services.analytics.periods import DEFAULT_PERIOD, Period
from core.services.analytics.pnl import PnlService, PnlView
from core.services.analytics.rendering import RendererBusyError
from core.services.users import UserView
from core.texts import analytics as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


def _photo(view: PnlView) -> BufferedInputFile:
    assert view.png is not None
    return BufferedInputFile(view.png, filename=f"pnl-{view.period.value}.png")


def _caption(view: PnlView) -> str:
    assert view.summary is not None
    return texts.pnl_caption(view.summary, view.period, view.paper)


@router.message(Command("pnl"))
async def pnl(message: Message, command: CommandObject, user: UserView, pnl: PnlService) -> None:
    """The chart of a period (30 days without an argument)."""
    argument = (command.args or "").strip()
    period = Period.parse(argument) if argument else DEFAULT_PERIOD
    if period is None:
        await message.answer(texts.usage_period(argument, "pnl"))
        return
    try:
        view = await pnl.pnl(user.id, period)
    except RendererBusyError:
        await message.answer(texts.renderer_busy())
        return
    if view.empty:
        await message.answer(texts.no_pnl(view.paper))
        return
    await message.answer_photo(
        _photo(view), caption=_caption(view), reply_markup=keyboards.periods(period)
    )


@router.callback_query(PnlCD.filter())
async def switch_period(
    query: CallbackQuery, callback_data: PnlCD, user: UserView, pnl: PnlService
) -> None:
    """Redraw the chart for another period in the same message (editMessageMedia)."""
    message = query.message
    try:
        view = await pnl.pnl(user.id, callback_data.period)
    except RendererBusyError:
        await query.answer(texts.renderer_busy(), show_alert=True)
        return
    if view.empty or not isinstance(message, Message):
        await query.answer(texts.no_pnl(view.paper), show_alert=True)
        return
    await query.answer()
    await message.edit_media(
        InputMediaPhoto(media=_photo(view), caption=_caption(view)),
        reply_markup=keyboards.periods(callback_data.period),
    )
