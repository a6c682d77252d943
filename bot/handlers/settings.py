"""/settings: trading preferences through inline buttons, or a typed value."""

from __future__ import annotations

from contextlib import suppress
from typing import Final

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message

from bot.keyboards import settings as keyboards
from bot.keyboards.settings import SettingsAction, SettingsCD
from core.domain.preferences import PreferenceField
from core.services.control.preference_input import PreferenceInputError
from core.services.control.service import ControlService
from core.services.users import UserView
from core.texts import settings as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")

_NOT_A_COMMAND = F.text & ~F.text.startswith("/")


class SettingsForm(StatesGroup):
    """Waiting for a typed value (the preference is in the FSM data).

    Leaving it resets the state only: the FSM data is shared with other features (the live
    /panic question), which ``state.clear()`` would silently invalidate.
    """

    value = State()


async def _show(message: Message, text: str, markup: InlineKeyboardMarkup | None) -> None:
    """Replace a screen in place; an unchanged screen is not an error."""
    with suppress(TelegramBadRequest):  # "message is not modified": same screen again
        await message.edit_text(text, reply_markup=markup)


@router.message(Command("settings"))
async def settings(
    message: Message, state: FSMContext, user: UserView, control: ControlService
) -> None:
    """Show every preference with a button each."""
    await state.set_state(None)
    status = await control.status(user.id)
    await message.answer(texts.overview(status), reply_markup=keyboards.overview())


@router.callback_query(SettingsCD.filter())
async def settings_button(
    query: CallbackQuery,
    callback_data: SettingsCD,
    state: FSMContext,
    user: UserView,
    control: ControlService,
) -> None:
    """Navigate the screens; a preset applies at once."""
    message = query.message
    if not isinstance(message, Message):
        await query.answer()
        return
    action, field = callback_data.action, callback_data.field
    if action is not SettingsAction.TYPE:
        await state.set_state(None)  # a button answers instead of a typed value
    if action is SettingsAction.DONE:
        await query.answer()
        await message.edit_reply_markup(reply_markup=None)
        return
    if field is None or action is SettingsAction.BACK:
        await query.answer()
        status = await control.status(user.id)
        await _show(message, texts.overview(status), keyboards.overview())
        return
    if action is SettingsAction.SET:
        try:
            prefs = await control.set_preference(user.id, field, callback_data.value)
        except PreferenceInputError as exc:
            await query.answer(str(exc), show_alert=True)
            return
        await query.answer(texts.saved_toast())
        status = await control.status(user.id)
        note = texts.saved(prefs, field)
        await _show(message, texts.overview(status, note=note), keyboards.overview())
        return
    prefs = await control.preferences(user.id)
    await query.answer()
    if action is SettingsAction.TYPE:
        await state.set_state(SettingsForm.value)
        await state.update_data(field=field.value, screen=message.message_id)
        await message.answer(texts.ask_value(prefs, field))
        return
    await _show(message, texts.field_screen(prefs, field), keyboards.field(prefs, field))


@router.message(Command("cancel"), StateFilter(SettingsForm))
async def cancel(message: Message, state: FSMContext) -> None:
    """Leave the typed value unchanged."""
    await state.set_state(None)
    await message.answer(texts.cancelled())


@router.message(SettingsForm.value, _NOT_A_COMMAND)
async def typed_value(
    message: Message, state: FSMContext, bot: Bot, user: UserView, control: ControlService
) -> None:
    """Apply a typed value; a bad one is explained and the question stays open."""
    data = await state.get_data()
    raw_field = str(data.get("field"))
    try:
        field = PreferenceField(raw_field)
    except ValueError:
        await state.set_state(None)
        await message.answer(texts.expired())
        return
    try:
        prefs = await control.set_preference(user.id, field, message.text or "")
    except PreferenceInputError as exc:
        await message.answer(texts.refused(str(exc)))
        return
    await state.set_state(None)
    screen = data.get("screen")
    if isinstance(screen, int):  # the screen asked from now shows a stale value: retire it
        with suppress(TelegramBadRequest):
            await bot.edit_message_reply_markup(
                chat_id=message.chat.id, message_id=screen, reply_markup=None
            )
    status = await control.status(user.id)
    await message.answer(
        texts.overview(status, note=texts.saved(prefs, field)), reply_markup=keyboards.overview()
    )


@router.message(SettingsForm.value, ~F.text)
async def non_text_value(message: Message) -> None:
    """Ask for text."""
    await message.answer(texts.text_only())
