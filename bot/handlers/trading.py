"""/positions, /orders, /close MARKET and /panic: the live account, from the exchange."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message

from bot.keyboards import trading as keyboards
from bot.keyboards.trading import PanicCD, PanicChoice
from core.domain.states import OrderPurpose
from core.exchange.errors import ExchangeError
from core.services.control.preference_input import parse_market
from core.services.control.service import ControlService
from core.services.manual import ManualRequestService, describe_failure
from core.services.trading import TradingNotReadyError, TradingService
from core.services.users import UserView
from core.texts import trading as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")

PANIC_CONFIRM_SECONDS = 60
_PANIC_KEY = "panic_question"  # FSM data key of the live confirmation


@router.message(Command("positions"))
async def positions(
    message: Message, user: UserView, trading: TradingService, control: ControlService
) -> None:
    """Open positions with their protection, and collateral, live."""
    await send_positions(message, user, trading, paper=(await control.preferences(user.id)).paper)


async def send_positions(
    message: Message, user: UserView, trading: TradingService, *, paper: bool
) -> None:
    """The /positions screen, with a row of protection buttons per protected position."""
    try:
        items = await trading.positions(user.id)
        account = await trading.account(user.id)
    except (TradingNotReadyError, ExchangeError) as exc:
        await message.answer(describe_failure(exc))
        return
    protection = await trading.protection(user.id, [item.market for item in items])
    buttons = [
        (
            market,
            any(leg.purpose is OrderPurpose.STOP_LOSS for b in brackets for leg in b.legs),
            any(leg.purpose is OrderPurpose.TAKE_PROFIT for b in brackets for leg in b.legs),
        )
        for market, brackets in sorted(protection.items())
    ]
    await message.answer(
        texts.positions(items, account, paper=paper, protection=protection),
        reply_markup=keyboards.position_actions(buttons),
    )


@router.message(Command("orders"))
async def orders(
    message: Message, user: UserView, trading: TradingService, control: ControlService
) -> None:
    """Open orders, live."""
    paper = (await control.preferences(user.id)).paper
    try:
        items = await trading.open_orders(user.id)
    except (TradingNotReadyError, ExchangeError) as exc:
        await message.answer(describe_failure(exc))
        return
    await message.answer(texts.orders(items, paper=paper))


@router.message(Command("close"))
async def close(
    message: Message, command: CommandObject, user: UserView, manual: ManualRequestService
) -> None:
    """Ask the worker (the only process holding the keys) to close one market's position
    with a reduce-only market order; its outcome comes through the outbox."""
    argument = (command.args or "").strip()
    if not argument:
        await message.answer(texts.close_usage())
        return
    try:
        market = parse_market(argument)
    except ValueError:
        await message.answer(texts.not_a_market(argument))
        return
    await message.answer(texts.closing(market))
    await manual.ask_close(user.id, market)


@router.message(Command("panic"))
async def panic(message: Message, state: FSMContext) -> None:
    """Ask first; the answer is bound to this question (a newer /panic replaces it)."""
    token = secrets.token_hex(6)
    await state.update_data({_PANIC_KEY: token})
    await message.answer(
        texts.confirm_panic(PANIC_CONFIRM_SECONDS), reply_markup=keyboards.confirm_panic(token)
    )


def _fresh(message: Message) -> bool:
    age = datetime.now(UTC) - message.date
    return age <= timedelta(seconds=PANIC_CONFIRM_SECONDS)


@router.callback_query(PanicCD.filter())
async def panic_answer(
    query: CallbackQuery,
    callback_data: PanicCD,
    state: FSMContext,
    user: UserView,
    manual: ManualRequestService,
) -> None:
    """Act on a live confirmation once; an old, replaced or used one does nothing. Trading
    is paused at once; the worker cancels and closes, and its report comes through the
    outbox."""
    message = query.message
    if not isinstance(message, Message):
        await query.answer(texts.panic_expired(), show_alert=True)
        return
    current = (await state.get_data()).get(_PANIC_KEY)
    if current != callback_data.token or not _fresh(message):
        await query.answer(texts.panic_expired(), show_alert=True)
        await message.edit_text(texts.panic_expired(), reply_markup=None)
        return
    # Single use: the token goes before anything can wait, so a second press is stale.
    await state.update_data({_PANIC_KEY: None})
    await query.answer()
    if callback_data.choice is PanicChoice.CANCEL:
        await message.edit_text(texts.panic_cancelled(), reply_markup=None)
        return
    await message.edit_text(texts.panic_running(), reply_markup=None)
    await manual.ask_panic(user.id)
