"""/key: connect, show, replace and remove the dYdX API trading key.

A key is added through the Mini App form (a ``web_app`` button; the key goes to the web
server, never through the chat) when the site is https. The chat conversation is the
fallback, behind a warning: it asks for the owner address, then the private key. Every
message that carries a secret is deleted as soon as it is read, and the user is told. The
FSM data holds the owner address only; the key exists solely in the handler's local variable
on its way to the service.
"""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.exceptions import ClientDecodeError, TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message

from bot.keyboards import key as keyboards
from bot.keyboards.key import KeyAction, KeyCD
from core.exchange.errors import ExchangeUnavailableError
from core.security.secrets import looks_secret
from core.services.credentials import CredentialRefusedError, CredentialService, Refusal
from core.services.key_entry import FORM_TTL, KeyEntryService
from core.services.users import UserView
from core.texts import key as texts
from core.texts import key_entry as entry_texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")

# Refusals about the text itself: the user may simply paste the key again.
_RETYPE_KEY = frozenset({Refusal.MALFORMED_KEY, Refusal.INVALID_KEY, Refusal.MNEMONIC})
_NOT_A_COMMAND = F.text & ~F.text.startswith("/")


class KeyForm(StatesGroup):
    """The two steps of adding a key."""

    owner_address = State()
    private_key = State()


async def _delete(message: Message) -> bool:
    """Delete a user's message; False when Telegram refused."""
    try:
        return await message.delete()
    except (TelegramAPIError, ClientDecodeError):
        return False


async def _delete_and_say(message: Message) -> None:
    """Delete a secret-carrying message and tell the user what happened."""
    deleted = await _delete(message)
    await message.answer(texts.secret_deleted() if deleted else texts.secret_not_deleted())


async def _offer(
    message: Message,
    state: FSMContext,
    user_id: int,
    key_entry: KeyEntryService,
    *,
    replacing: bool = False,
) -> None:
    """Offer the Mini App form (with the chat as fallback), or, when Telegram cannot open
    it (a plain-http site), start the chat conversation behind its warning."""
    if not key_entry.form_available:
        await _start_conversation(message, state, replacing=replacing, form_available=False)
        return
    form = await key_entry.issue(user_id)
    await message.answer(
        entry_texts.offer_form(FORM_TTL, replacing=replacing),
        reply_markup=keyboards.add_key(form.url, replacing=replacing),
    )


async def _start_conversation(
    message: Message, state: FSMContext, *, replacing: bool, form_available: bool
) -> None:
    await state.set_state(KeyForm.owner_address)
    warning = entry_texts.paste_warning(form_available=form_available)
    await message.answer(f"{warning}\n\n{texts.ask_owner_address(replacing=replacing)}")


@router.message(Command("key"))
async def key_command(
    message: Message,
    state: FSMContext,
    user: UserView,
    credentials: CredentialService,
    key_entry: KeyEntryService,
) -> None:
    """Show the active key, or offer to add one when there is none."""
    await state.clear()
    if message.text and looks_secret(message.text):  # "/key <private key>"
        await _delete_and_say(message)
    view = await credentials.status(user.id)
    if view is None:
        await _offer(message, state, user.id, key_entry)
        return
    await message.answer(texts.status(view), reply_markup=keyboards.status_actions())


@router.callback_query(KeyCD.filter(F.action.in_({KeyAction.PASTE, KeyAction.PASTE_REPLACING})))
async def paste_instead(query: CallbackQuery, callback_data: KeyCD, state: FSMContext) -> None:
    """The fallback: the chat conversation, after saying what pasting costs."""
    await query.answer()
    if isinstance(query.message, Message):
        replacing = callback_data.action is KeyAction.PASTE_REPLACING
        await _start_conversation(query.message, state, replacing=replacing, form_available=True)


@router.message(Command("cancel"), StateFilter(KeyForm))
async def cancel(message: Message, state: FSMContext) -> None:
    """Leave the conversation."""
    await state.clear()
    await message.answer(texts.cancelled())


@router.message(KeyForm.owner_address, _NOT_A_COMMAND)
async def owner_address_step(
    message: Message, state: FSMContext, credentials: CredentialService
) -> None:
    """Step 1: the owner address (a pasted secret is deleted even here)."""
    text = message.text or ""
    if looks_secret(text):
        await _delete_and_say(message)
    try:
        owner = credentials.check_owner_address(text)
    except CredentialRefusedError as exc:
        await message.answer(texts.refusal(exc.reason))
        return
    await state.update_data(owner_address=owner)
    await state.set_state(KeyForm.private_key)
    await message.answer(texts.ask_private_key(owner))


@router.message(KeyForm.private_key, _NOT_A_COMMAND)
async def private_key_step(
    message: Message, state: FSMContext, user: UserView, credentials: CredentialService
) -> None:
    """Step 2: the private key. The message is deleted before anything else happens."""
    private_key_text = message.text or ""
    await _delete_and_say(message)
    owner = (await state.get_data()).get("owner_address")
    if not isinstance(owner, str):
        await state.clear()
        await message.answer(texts.conversation_expired())
        return
    await message.answer(texts.checking())
    try:
        view = await credentials.add_key(user.id, owner, private_key_text)
    except CredentialRefusedError as exc:
        if exc.reason not in _RETYPE_KEY:
            await state.clear()
        await message.answer(texts.refusal(exc.reason, owner))
        return
    except ExchangeUnavailableError:
        await message.answer(texts.retry_later())
        return
    await state.clear()
    await message.answer(texts.key_added(view))


@router.message(StateFilter(KeyForm.private_key), ~F.text)
async def non_text_key(message: Message) -> None:
    """A photo or file at the key step may show the key: delete it too."""
    await _delete_and_say(message)
    await message.answer(texts.text_only())


@router.message(StateFilter(KeyForm.owner_address), ~F.text)
async def non_text_address(message: Message) -> None:
    """Ask for text."""
    await message.answer(texts.text_only())


@router.message(StateFilter(None), F.text.func(looks_secret))
async def stray_secret(message: Message) -> None:
    """A key or seed phrase sent outside the conversation: delete it all the same."""
    deleted = await _delete(message)
    await message.answer(
        texts.secret_outside_conversation() if deleted else texts.secret_not_deleted()
    )


@router.callback_query(KeyCD.filter(F.action == KeyAction.REPLACE))
async def replace(
    query: CallbackQuery, state: FSMContext, user: UserView, key_entry: KeyEntryService
) -> None:
    """Offer the form again; the current key stays until the new one is accepted."""
    await query.answer()
    await state.clear()
    if isinstance(query.message, Message):
        await _offer(query.message, state, user.id, key_entry, replacing=True)


@router.callback_query(KeyCD.filter(F.action == KeyAction.REMOVE))
async def remove(query: CallbackQuery, user: UserView, credentials: CredentialService) -> None:
    """Ask for confirmation before removing."""
    await query.answer()
    view = await credentials.status(user.id)
    if not isinstance(query.message, Message):
        return
    if view is None:
        await query.message.answer(texts.nothing_to_remove())
        return
    await query.message.answer(texts.confirm_remove(view), reply_markup=keyboards.confirm_remove())


@router.callback_query(KeyCD.filter(F.action == KeyAction.REMOVE_CONFIRM))
async def remove_confirmed(
    query: CallbackQuery, user: UserView, credentials: CredentialService
) -> None:
    """Remove the key."""
    removed = await credentials.remove(user.id)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(texts.removed() if removed else texts.nothing_to_remove())


@router.callback_query(KeyCD.filter(F.action == KeyAction.REMOVE_ABORT))
async def remove_aborted(query: CallbackQuery) -> None:
    """Keep the key."""
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(texts.kept())
