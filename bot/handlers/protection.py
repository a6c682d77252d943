"""/positions' protection buttons: move a position's stop-loss, remove its take-profit."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.keyboards import trading as keyboards
from bot.keyboards.trading import ProtectAction, ProtectCD
from core.exchange.errors import ExchangeError
from core.services.control.service import ControlService
from core.services.manual import ManualRequestService, describe_failure
from core.services.protection.manual import ProtectionInputError, parse_stop
from core.services.trading import TradingNotReadyError, TradingService
from core.services.users import UserView
from core.texts import trading as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")

_MARKET_KEY = "stop_market"  # FSM data key: the position whose stop-loss is being moved


class StopForm(StatesGroup):
    """Waiting for the new stop-loss of one position."""

    price = State()


class AddForm(StatesGroup):
    """Adding protection to one position: its stop-loss, then its take-profit."""

    stop = State()
    take = State()


_STOP_KEY = "new_stop"  # FSM data key: the stop-loss typed, until the take-profit comes
_NONE = frozenset({"none", "no", "-", "skip"})


@router.callback_query(ProtectCD.filter(F.action == ProtectAction.MOVE_STOP))
async def ask_stop(query: CallbackQuery, callback_data: ProtectCD, state: FSMContext) -> None:
    """Ask for the new stop-loss."""
    await state.set_state(StopForm.price)
    await state.update_data({_MARKET_KEY: callback_data.market})
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(texts.ask_stop(callback_data.market))


@router.message(Command("cancel"), StateFilter(StopForm, AddForm))
async def cancel_stop(message: Message, state: FSMContext) -> None:
    """Keep the stop-loss as it is."""
    await state.clear()
    await message.answer(texts.kept())


@router.message(StateFilter(StopForm.price), F.text)
async def move_stop(
    message: Message,
    state: FSMContext,
    user: UserView,
    trading: TradingService,
    control: ControlService,
    manual: ManualRequestService,
) -> None:
    """Validate here (read only), then have the worker move it: the protection message
    says "Stop-loss moved" once the new stop-loss rests."""
    market = str((await state.get_data()).get(_MARKET_KEY, ""))
    try:
        stop = parse_stop(message.text or "")
        await trading.check_protection_change(user.id, market, stop, None, adding=False)
    except ProtectionInputError as exc:
        await message.answer(str(exc))  # still waiting: the trader may send another price
        return
    except (TradingNotReadyError, ExchangeError) as exc:
        await state.clear()
        await message.answer(describe_failure(exc))
        return
    await state.clear()
    paper = (await control.preferences(user.id)).paper
    await manual.ask_move_stop(user.id, market, stop, paper=paper)
    await message.answer(texts.change_queued(market))


@router.callback_query(ProtectCD.filter(F.action == ProtectAction.REMOVE_TP))
async def ask_remove_tp(query: CallbackQuery, callback_data: ProtectCD) -> None:
    """Ask first."""
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            texts.confirm_remove_tp(callback_data.market),
            reply_markup=keyboards.confirm_remove_tp(callback_data.market),
        )


@router.callback_query(
    ProtectCD.filter(F.action.in_({ProtectAction.REMOVE_TP_YES, ProtectAction.REMOVE_TP_NO}))
)
async def remove_tp(
    query: CallbackQuery, callback_data: ProtectCD, user: UserView, manual: ManualRequestService
) -> None:
    """Have the worker cancel the take-profit once confirmed (a second press finds none:
    nothing changes); it says what it did."""
    await query.answer()
    message = query.message
    if not isinstance(message, Message):
        return
    if callback_data.action is ProtectAction.REMOVE_TP_NO:
        await message.edit_text(texts.kept(), reply_markup=None)
        return
    await message.edit_reply_markup(reply_markup=None)
    await manual.ask_remove_take_profit(user.id, callback_data.market)
    await message.answer(texts.change_queued(callback_data.market))


@router.callback_query(ProtectCD.filter(F.action == ProtectAction.ADD))
async def ask_protection(query: CallbackQuery, callback_data: ProtectCD, state: FSMContext) -> None:
    """Ask for the stop-loss first."""
    await state.set_state(AddForm.stop)
    await state.update_data({_MARKET_KEY: callback_data.market})
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(texts.ask_protection_stop(callback_data.market))


@router.message(StateFilter(AddForm.stop), F.text)
async def protection_stop(message: Message, state: FSMContext) -> None:
    """Keep the stop-loss (its checks against the market come with the take-profit)."""
    market = str((await state.get_data()).get(_MARKET_KEY, ""))
    try:
        parse_stop(message.text or "")
    except ProtectionInputError as exc:
        await message.answer(str(exc))
        return
    await state.update_data({_STOP_KEY: message.text or ""})
    await state.set_state(AddForm.take)
    await message.answer(texts.ask_protection_take(market))


@router.message(StateFilter(AddForm.take), F.text)
async def protection_take(
    message: Message,
    state: FSMContext,
    user: UserView,
    trading: TradingService,
    control: ControlService,
    manual: ManualRequestService,
) -> None:
    """Check the protection here (read only; a price the market refuses asks again from the
    stop-loss), then have the worker create it."""
    data = await state.get_data()
    market = str(data.get(_MARKET_KEY, ""))
    answer = (message.text or "").strip()
    try:
        stop = parse_stop(str(data.get(_STOP_KEY, "")))
        take = None if answer.lower() in _NONE else parse_stop(answer)
    except ProtectionInputError as exc:
        await message.answer(str(exc))  # still waiting for the take-profit
        return
    try:
        await trading.check_protection_change(user.id, market, stop, take, adding=True)
    except ProtectionInputError as exc:
        await state.set_state(AddForm.stop)
        await message.answer(f"{exc}\n{texts.ask_protection_stop(market)}")
        return
    except (TradingNotReadyError, ExchangeError) as exc:
        await state.clear()
        await message.answer(describe_failure(exc))
        return
    await state.clear()
    paper = (await control.preferences(user.id)).paper
    await manual.ask_protect(user.id, market, stop, take, paper=paper)
    await message.answer(texts.change_queued(market))
