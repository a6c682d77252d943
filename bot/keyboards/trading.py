"""Keyboards of /positions (protection changes) and /panic."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.texts import trading as texts


class PanicChoice(StrEnum):
    """What the trader answered."""

    CONFIRM = "yes"
    CANCEL = "no"


class PanicCD(CallbackData, prefix="panic"):
    """A /panic answer, bound to the token of the question it answers (single use)."""

    choice: PanicChoice
    token: str


def confirm_panic(token: str) -> InlineKeyboardMarkup:
    """The destructive answer first and explicit, then the way out."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.PANIC_CONFIRM_BUTTON,
        callback_data=PanicCD(choice=PanicChoice.CONFIRM, token=token),
    )
    builder.button(
        text=texts.PANIC_CANCEL_BUTTON,
        callback_data=PanicCD(choice=PanicChoice.CANCEL, token=token),
    )
    builder.adjust(1)
    return builder.as_markup()


class ProtectAction(StrEnum):
    """What a position's button asks for."""

    MOVE_STOP = "ms"
    REMOVE_TP = "rt"
    REMOVE_TP_YES = "ry"
    REMOVE_TP_NO = "rn"
    ADD = "ad"


class ProtectCD(CallbackData, prefix="prot"):
    """A protection change on one position (the market of the current venue)."""

    action: ProtectAction
    market: str


def position_actions(buttons: list[tuple[str, bool, bool]]) -> InlineKeyboardMarkup | None:
    """One row per position: move its stop-loss and remove its take-profit, or add
    protection when no stop-loss rests.

    Args:
        buttons: ``(market, has a stop-loss, has a take-profit)`` per position.
    """
    builder = InlineKeyboardBuilder()
    sizes: list[int] = []
    for market, stop, take in buttons:
        row = 0
        if stop:
            builder.button(
                text=f"{texts.MOVE_STOP_BUTTON} · {market}",
                callback_data=ProtectCD(action=ProtectAction.MOVE_STOP, market=market),
            )
            row += 1
        if take:
            builder.button(
                text=f"{texts.REMOVE_TP_BUTTON} · {market}",
                callback_data=ProtectCD(action=ProtectAction.REMOVE_TP, market=market),
            )
            row += 1
        if not stop:
            builder.button(
                text=f"{texts.ADD_PROTECTION_BUTTON} · {market}",
                callback_data=ProtectCD(action=ProtectAction.ADD, market=market),
            )
            row += 1
        sizes.append(row)
    if not sizes:
        return None  # no position
    builder.adjust(*sizes)
    return builder.as_markup()


def confirm_remove_tp(market: str) -> InlineKeyboardMarkup:
    """Remove the take-profit, or keep it."""
    builder = InlineKeyboardBuilder()
    builder.button(
        text=texts.REMOVE_TP_CONFIRM_BUTTON,
        callback_data=ProtectCD(action=ProtectAction.REMOVE_TP_YES, market=market),
    )
    builder.button(
        text=texts.REMOVE_TP_CANCEL_BUTTON,
        callback_data=ProtectCD(action=ProtectAction.REMOVE_TP_NO, market=market),
    )
    builder.adjust(1)
    return builder.as_markup()
