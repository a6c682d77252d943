"""The Mini App key form: the bot's offer, the chat fallback's warning, the page's answers.

Bot texts are Telegram HTML; page texts are plain (the page sets ``textContent``).
"""

from __future__ import annotations

from datetime import timedelta

from core.texts.key import WHERE_IS_THE_KEY

FORM_BUTTON = "🔐 Enter the key securely"
PASTE_BUTTON = "Paste it in the chat instead"


def offer_form(ttl: timedelta, *, replacing: bool = False) -> str:
    """/key without a key (or Replace): the Mini App form, the chat as a fallback."""
    intro = (
        "Let's replace your trading key. Your current key stays active until the new one "
        "passes every check."
        if replacing
        else "Let's connect your dYdX account with an <b>API trading key</b>."
    )
    minutes = int(ttl.total_seconds() // 60)
    return (
        f"{intro}\n\n{WHERE_IS_THE_KEY}\n\n"
        f"Tap <b>{FORM_BUTTON}</b>: a form opens inside Telegram and sends the key straight "
        "to tv2dydx over HTTPS, so it never passes through this chat. The form works once, "
        f"for {minutes} minutes.\n\n"
        f"Your Telegram app cannot open it? Tap <b>{PASTE_BUTTON}</b>."
    )


def paste_warning(*, form_available: bool) -> str:
    """Said before the chat conversation asks for anything: what pasting costs."""
    better = (
        " The secure form (send /key and tap its button) avoids this; use it if your app can."
        if form_available
        else ""
    )
    return (
        "⚠️ <b>Pasting a key sends it through Telegram's servers.</b> I delete your message "
        "as soon as I have read it, but a copy may stay on Telegram's servers and on your "
        f"other devices for a while.{better}"
    )


# The page ---------------------------------------------------------------------------------

NOT_IN_TELEGRAM = (
    "Open this form from the button in your chat with the bot, inside Telegram: it does not "
    "work in a browser."
)
BAD_INIT_DATA = (
    "Telegram's signature on this page is not valid. Close it and open the form again from "
    "the bot's button."
)
STALE_INIT_DATA = (
    "This page was opened too long ago. Close it and open the form again from the bot's button."
)
OTHER_USER = (
    "This form belongs to another Telegram account. Send /key in your own chat with the bot."
)
FORM_UNAVAILABLE = (
    "This form is no longer valid (it works for 10 minutes). Send /key for a new one."
)
FORM_USED = "This form was already used. Send /key to the bot for a new one."
EXCHANGE_UNAVAILABLE = (
    "dYdX could not be reached to check the key. Nothing was stored: try again in a minute."
)
NOTHING_STORED = "Nothing was stored."

_CREATE_KEY = "Create a trade-only key in the dYdX app under More → API Trading Keys."

# By the values of ``core.services.credentials.Refusal`` (texts do not import services).
_KEY_REFUSALS: dict[str, str] = {
    "MALFORMED_ADDRESS": (
        "That is not a dYdX account address: it starts with dydx1 and is about 43 characters."
    ),
    "KEY_INSTEAD_OF_ADDRESS": (
        "The account field holds a private key. Put your account's address (dydx1…) there "
        "and the key in the key field."
    ),
    "MNEMONIC": (
        "That is a seed phrase. Never give it to anyone, tv2dydx included: enter the API "
        "trading key's private key instead."
    ),
    "MALFORMED_KEY": (
        "That is not a private key: expected 64 characters 0-9 and a-f, optionally starting "
        "with 0x."
    ),
    "INVALID_KEY": (
        "Those 64 characters are not a valid private key; part of it may be missing or mistyped."
    ),
    "MASTER_KEY": (
        "This is your account's main key, which can also withdraw funds. Only a separate API "
        "trading key is accepted. " + _CREATE_KEY
    ),
    "NO_AUTHENTICATOR": (
        "dYdX has no API trading key with this private key on that account. Check the address "
        "and that the key is listed under More → API Trading Keys."
    ),
    "UNREADABLE_AUTHENTICATOR": (
        "One of this key's permissions on dYdX cannot be read, so it is refused. " + _CREATE_KEY
    ),
    "TOO_BROAD": (
        "Refused: on dYdX this key can also move funds (transfers or withdrawals). Only keys "
        "that can do nothing but place and cancel orders are accepted. " + _CREATE_KEY
    ),
    "CANNOT_TRADE": (
        "This key is authorised on the account, but not to place orders. " + _CREATE_KEY
    ),
    "ACCOUNT_TAKEN": (
        "This dYdX account is already connected to another Telegram account on this bot."
    ),
}


def key_refused(reason: str) -> str:
    """Why the form's key was refused (plain text, never the key)."""
    return f"{_KEY_REFUSALS.get(reason, _KEY_REFUSALS['INVALID_KEY'])} {NOTHING_STORED}"
