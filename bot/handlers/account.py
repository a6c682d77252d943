"""/delete_me: works with or without an accepted declaration (a privacy right)."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.keyboards.account import DeleteChoice, DeleteMeCD, confirm_delete
from core.services.account import AccountService
from core.services.users import UserView
from core.texts import account as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(Command("delete_me"))
async def delete_me(message: Message) -> None:
    """Explain what will be deleted and ask."""
    await message.answer(texts.CONFIRM, reply_markup=confirm_delete())


@router.callback_query(DeleteMeCD.filter())
async def delete_me_answer(
    query: CallbackQuery, callback_data: DeleteMeCD, user: UserView, account: AccountService
) -> None:
    """Act on the answer, then remove the buttons so it cannot be pressed twice."""
    await query.answer()
    if callback_data.choice is DeleteChoice.CANCEL:
        reply = texts.CANCELLED
    else:
        keep = callback_data.choice is DeleteChoice.KEEP
        await account.delete_me(user.id, keep_history=keep)
        reply = texts.DONE_KEEP if keep else texts.DONE_ALL
    if isinstance(query.message, Message):
        await query.message.edit_text(reply, reply_markup=None)
