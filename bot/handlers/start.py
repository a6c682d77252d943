"""/start (welcome + declaration) and /help. Public: work before the declaration."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command, CommandStart
from aiogram.types import CallbackQuery, Message

from bot.keyboards.key import add_key
from bot.keyboards.start import DeclarationCD, accept_declaration
from core.domain.compliance import DECLARATION
from core.services.key_entry import KeyEntryService
from core.services.users import SetupService, UserService, UserView
from core.texts import common
from core.texts import start as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(CommandStart())
async def start(
    message: Message,
    user: UserView,
    user_created: bool,
    setup: SetupService,
    key_entry: KeyEntryService,
) -> None:
    """Greet; ask for the declaration until the current version is accepted, then show the
    set-up checklist with the next step (the key's: with the Mini App form's button)."""
    first_name = message.from_user.first_name if message.from_user else None
    await message.answer(texts.welcome(first_name, returning=not user_created))
    if user.declaration_current:
        status = await setup.status(user.id)
        key_next = status.wallet_address is not None and status.owner_address is None
        markup = None
        if key_next and key_entry.form_available:
            markup = add_key((await key_entry.issue(user.id)).url)
        await message.answer(texts.setup_status(status), reply_markup=markup)
        return
    await message.answer(
        texts.declaration(DECLARATION, renewed=user.declaration_version is not None),
        reply_markup=accept_declaration(DECLARATION.version),
    )


@router.callback_query(DeclarationCD.filter())
async def accept(
    query: CallbackQuery, callback_data: DeclarationCD, user: UserView, users: UserService
) -> None:
    """Store the acceptance with its version and time."""
    if user.declaration_current:
        await query.answer(texts.ALREADY_ACCEPTED)
        return
    try:
        await users.accept_declaration(user.id, callback_data.version)
    except ValueError:
        await query.answer(texts.declaration_stale(), show_alert=True)
        return
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_reply_markup(reply_markup=None)
        await query.message.answer(texts.declaration_accepted())


@router.message(Command("help"))
async def help_command(message: Message) -> None:
    """Explain every command on one screen."""
    await message.answer(common.help_text())
