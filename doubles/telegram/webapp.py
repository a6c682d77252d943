"""Mini Apps: what a Telegram client hands a page when the user taps a ``web_app`` button.

Telegram opens the button's URL with the launch parameters in the fragment:
``#tgWebAppData=<initData, URL-encoded>&tgWebAppVersion=…&tgWebAppPlatform=…&
tgWebAppThemeParams=…``. ``initData`` is a query string (``query_id`` for inline-keyboard
launches, ``user`` as compact JSON, ``auth_date``, ``signature``, ``hash``) where

- ``hash`` = hex HMAC-SHA256 of the data-check-string (every other field as ``key=value``,
  sorted by key, joined by ``\\n``) keyed by HMAC-SHA256(key="WebAppData", msg=bot_token);
- ``signature`` = base64url (unpadded) Ed25519 signature by Telegram over
  ``"<bot_id>:WebAppData\\n"`` + the data-check-string without ``hash`` and ``signature``
  (for third parties without the token; here by the double's own Ed25519 key).

(core.telegram.org/bots/webapps, "Initializing Mini Apps" and "Validating data".)
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from .state import BotIdentity, UserProfile

WEB_APP_VERSION = "8.0"
PLATFORM = "android"
THEME = {"bg_color": "#ffffff", "text_color": "#000000", "button_color": "#2481cc"}


@lru_cache(maxsize=1)
def telegram_signing_key() -> Ed25519PrivateKey:
    """The double's stand-in for Telegram's Ed25519 key (``signature`` field)."""
    return Ed25519PrivateKey.generate()


def _check_string(fields: dict[str, str]) -> str:
    return "\n".join(f"{key}={fields[key]}" for key in sorted(fields))


def _user_object(user: UserProfile) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": user.id, "first_name": user.first_name}
    if user.last_name:
        obj["last_name"] = user.last_name
    if user.username:
        obj["username"] = user.username
    if user.language_code:
        obj["language_code"] = user.language_code
    if user.is_premium:
        obj["is_premium"] = True
    obj["allows_write_to_pm"] = True
    return obj


def sign_init_data(fields: dict[str, str], bot: BotIdentity) -> str:
    """Add ``signature`` and ``hash`` to ``fields`` as Telegram does; return the query string.

    Args:
        fields: Decoded fields (``query_id``, ``user``, ``auth_date``, ...), no hash yet.
        bot: The bot whose token keys the hash.
    """
    unsigned = {k: v for k, v in fields.items() if k not in ("hash", "signature")}
    message = f"{bot.id}:WebAppData\n{_check_string(unsigned)}".encode()
    signature = telegram_signing_key().sign(message)
    signed = {**unsigned, "signature": base64.urlsafe_b64encode(signature).decode().rstrip("=")}
    secret = hmac.new(b"WebAppData", bot.token.encode(), hashlib.sha256).digest()
    digest = hmac.new(secret, _check_string(signed).encode(), hashlib.sha256).hexdigest()
    return urlencode({**signed, "hash": digest}, quote_via=quote)


def init_data_for(user: UserProfile, bot: BotIdentity, *, auth_date: int | None = None) -> str:
    """The ``initData`` a client gives a Mini App opened from an inline keyboard button.

    Args:
        user: Who opened it.
        bot: The bot that sent the button.
        auth_date: Unix time Telegram signed at (default: now).
    """
    fields = {
        "query_id": "AAH" + secrets.token_urlsafe(18),
        "user": json.dumps(_user_object(user), separators=(",", ":"), ensure_ascii=False),
        "auth_date": str(int(time.time()) if auth_date is None else auth_date),
    }
    return sign_init_data(fields, bot)


def launch_url(url: str, init_data: str) -> str:
    """The URL a client opens: the button's, with the launch parameters in the fragment."""
    fragment = urlencode(
        {
            "tgWebAppData": init_data,
            "tgWebAppVersion": WEB_APP_VERSION,
            "tgWebAppPlatform": PLATFORM,
            "tgWebAppThemeParams": json.dumps(THEME, separators=(",", ":")),
        },
        quote_via=quote,
    )
    return f"{url.split('#', 1)[0]}#{fragment}"
