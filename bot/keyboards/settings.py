"""Keyboards of /settings: the preference list, and presets per preference."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.keyboard import InlineKeyboardBuilder

from core.domain.preferences import PreferenceField, Preferences
from core.services.control.preference_input import PreferenceInputError, parse_preference
from core.texts import settings as texts


class SettingsAction(StrEnum):
    """What a /settings button does."""

    OPEN = "open"  # show one preference
    SET = "set"  # apply a preset value
    TYPE = "type"  # ask for a typed value
    BACK = "back"  # back to the list
    DONE = "done"  # close the screen


class SettingsCD(CallbackData, prefix="set"):
    """A /settings button. ``value`` is a preset, parsed like a typed value (no ``:``)."""

    action: SettingsAction
    field: PreferenceField | None = None
    value: str = ""


#: Preset values per preference: (label, value as the parser reads it).
PRESETS: dict[PreferenceField, list[tuple[str, str]]] = {
    PreferenceField.SIZE: [
        ("$25", "25"),
        ("$50", "50"),
        ("$100", "100"),
        ("$250", "250"),
        ("$500", "500"),
        ("1%", "1%"),
        ("2%", "2%"),
        ("5%", "5%"),
        ("10%", "10%"),
    ],
    PreferenceField.SLIPPAGE: [(f"{v}%", v) for v in ("0.1", "0.25", "0.5", "1", "2", "3")],
    PreferenceField.LEVERAGE: [(f"{v}x", v) for v in ("1", "2", "3", "5", "10", "20")],
    PreferenceField.NOTIONAL: [
        ("$100", "100"),
        ("$500", "500"),
        ("$1,000", "1000"),
        ("$5,000", "5000"),
        ("$10,000", "10000"),
        ("$50,000", "50000"),
    ],
    PreferenceField.POSITIONS: [(v, v) for v in ("1", "2", "3", "5", "10", "20")],
    PreferenceField.LOSS_LIMIT: [
        (texts.NO_LIMIT_BUTTON, "off"),
        ("$50", "50"),
        ("$100", "100"),
        ("$250", "250"),
        ("$500", "500"),
        ("$1,000", "1000"),
    ],
    PreferenceField.MARKETS: [
        (texts.ALL_MARKETS_BUTTON, "all"),
        ("BTC", "BTC-USD"),
        ("BTC, ETH", "BTC-USD,ETH-USD"),
        ("BTC, ETH, SOL", "BTC-USD,ETH-USD,SOL-USD"),
    ],
    PreferenceField.FLIP: [(texts.FLIP_BUTTON, "flip"), (texts.REDUCE_BUTTON, "reduce")],
    PreferenceField.PAPER: [(texts.PAPER_ON_BUTTON, "on"), (texts.PAPER_OFF_BUTTON, "off")],
    PreferenceField.TIMEZONE: [
        (zone, zone)
        for zone in (
            "UTC",
            "Europe/London",
            "Europe/Berlin",
            "America/New_York",
            "Asia/Singapore",
            "Asia/Tokyo",
        )
    ],
    PreferenceField.DIGEST: [
        (texts.DIGEST_OFF_BUTTON, "off"),
        *[(f"{hour:02d}:00", str(hour)) for hour in (7, 8, 9, 12, 18, 21)],
    ],
}

# Presets per row: long labels get their own row.
_PER_ROW = {
    PreferenceField.FLIP: 1,
    PreferenceField.PAPER: 1,
    PreferenceField.TIMEZONE: 2,
    PreferenceField.MARKETS: 2,
}


def _is_current(prefs: Preferences, field: PreferenceField, value: str) -> bool:
    try:
        return prefs.updated(**parse_preference(field, value)) == prefs
    except (PreferenceInputError, ValueError):
        return False


def overview() -> InlineKeyboardMarkup:
    """One button per preference, two per row, and Done."""
    builder = InlineKeyboardBuilder()
    for field, label in texts.FIELD_BUTTONS.items():
        builder.button(
            text=label, callback_data=SettingsCD(action=SettingsAction.OPEN, field=field)
        )
    builder.button(text=texts.DONE_BUTTON, callback_data=SettingsCD(action=SettingsAction.DONE))
    builder.adjust(2)
    return builder.as_markup()


def field(prefs: Preferences, field: PreferenceField) -> InlineKeyboardMarkup:
    """The presets of one preference (the current one ticked), Type a value, Back."""
    builder = InlineKeyboardBuilder()
    presets = PRESETS[field]
    for label, value in presets:
        mark = texts.CURRENT_MARK if _is_current(prefs, field, value) else ""
        builder.button(
            text=f"{mark}{label}",
            callback_data=SettingsCD(action=SettingsAction.SET, field=field, value=value),
        )
    builder.button(
        text=texts.TYPE_BUTTON, callback_data=SettingsCD(action=SettingsAction.TYPE, field=field)
    )
    builder.button(text=texts.BACK_BUTTON, callback_data=SettingsCD(action=SettingsAction.BACK))
    per_row = _PER_ROW.get(field, 3)
    full, rest = divmod(len(presets), per_row)
    builder.adjust(*([per_row] * full), *([rest] if rest else []), 2)
    return builder.as_markup()
