"""/webhook: issue, show, rotate and revoke the TradingView webhook."""

from __future__ import annotations

from typing import Final

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message

from bot.keyboards.webhook import WebhookAction, WebhookCD, confirm, manage
from core.services.users import UserView
from core.services.webhooks import WebhookService
from core.texts import webhook as texts

router: Final[Router] = Router(name=__name__)
router.message.filter(F.chat.type == "private")


@router.message(Command("webhook"))
async def webhook(message: Message, user: UserView, webhooks: WebhookService) -> None:
    """Create the webhook (secrets shown once) or show it, with the latest alerts."""
    overview = await webhooks.overview(user.id)
    if overview.issued is not None:
        await message.answer(texts.issued(overview.issued), reply_markup=manage())
        return
    await message.answer(texts.overview(overview.status), reply_markup=manage())


@router.callback_query(WebhookCD.filter())
async def webhook_button(
    query: CallbackQuery, callback_data: WebhookCD, user: UserView, webhooks: WebhookService
) -> None:
    """Ask before rotating or revoking; then act and replace the question."""
    await query.answer()
    if not isinstance(query.message, Message):
        return
    action = callback_data.action
    if action is WebhookAction.ROTATE:
        await query.message.answer(texts.confirm_rotate(), reply_markup=confirm(action))
    elif action is WebhookAction.REVOKE:
        await query.message.answer(texts.confirm_revoke(), reply_markup=confirm(action))
    elif action is WebhookAction.CONFIRM_ROTATE:
        issued = await webhooks.rotate(user.id)
        await query.message.edit_text(texts.issued(issued), reply_markup=manage())
    elif action is WebhookAction.CONFIRM_REVOKE:
        done = await webhooks.revoke(user.id)
        await query.message.edit_text(texts.revoked(done), reply_markup=None)
    else:
        await query.message.edit_text(texts.cancelled(), reply_markup=None)
