"""/link (issue a one-time wallet-link page, or show the linked wallet) and /unlink."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.keyboards.link import UnlinkCD, UnlinkChoice, confirm_unlink, open_link
from core.services.users import UserView
from core.services.wallet_link.errors import AlreadyLinkedError
from core.services.wallet_link.service import LINK_TTL, WalletLinkService
from core.texts import link as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(Command("link"))
async def link(message: Message, user: UserView, wallet_link: WalletLinkService) -> None:
    """Send a fresh one-time link to the page, or the linked wallet's status."""
    try:
        issued = await wallet_link.issue_link(user.id)
    except AlreadyLinkedError as exc:
        await message.answer(texts.already_linked(exc.wallet))
        return
    await message.answer(texts.link_issued(LINK_TTL), reply_markup=open_link(issued.url))


@router.message(Command("unlink"))
async def unlink(message: Message, user: UserView, wallet_link: WalletLinkService) -> None:
    """Ask before removing the wallet link."""
    wallet = await wallet_link.status(user.id)
    if wallet is None:
        await message.answer(texts.nothing_to_unlink())
        return
    await message.answer(texts.confirm_unlink(wallet), reply_markup=confirm_unlink(wallet.address))


@router.callback_query(UnlinkCD.filter())
async def unlink_answer(
    query: CallbackQuery, callback_data: UnlinkCD, user: UserView, wallet_link: WalletLinkService
) -> None:
    """Unlink the address the question was about (only if still linked), or keep it."""
    if callback_data.choice is UnlinkChoice.KEEP:
        reply = texts.unlink_cancelled()
    else:
        removed = await wallet_link.unlink(user.id, address=f"0x{callback_data.address}")
        reply = texts.unlinked(removed) if removed is not None else texts.unlink_stale()
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.edit_text(reply, reply_markup=None)
