"""Telegram Mini App ``initData``: who opened the page, as Telegram signed it.

Telegram hands a Mini App its launch parameters as a query string (``initData``) whose
``hash`` is ``HMAC-SHA256(key=HMAC-SHA256(key="WebAppData", msg=bot_token),
msg=data_check_string)``, the data-check-string being every other field as ``key=value``,
sorted by key and joined by newlines (core.telegram.org/bots/webapps, "Validating data
received via the Mini App"). Only Telegram and the bot know the bot token, so a valid hash
proves the ``user`` field. The hash does not expire, so ``auth_date`` is checked here too
(aiogram's own helper does not).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from urllib.parse import parse_qsl

#: How long after Telegram signed it an ``initData`` is accepted.
INIT_DATA_MAX_AGE = timedelta(minutes=10)
#: How far in the future ``auth_date`` may be (clocks differ a little).
CLOCK_SKEW = timedelta(seconds=60)
#: Real ``initData`` is well under 1 KB; refuse anything absurd before hashing it.
MAX_INIT_DATA_CHARS = 4096


class InitDataProblem(StrEnum):
    """Why an ``initData`` was refused."""

    MISSING = "missing"  # empty: the page was not opened from Telegram
    MALFORMED = "malformed"
    BAD_SIGNATURE = "bad_signature"
    STALE = "stale"


class InitDataError(Exception):
    """The ``initData`` does not prove a Telegram user.

    Attributes:
        problem: Why.
    """

    def __init__(self, problem: InitDataProblem) -> None:
        super().__init__(problem.value)  # never the data itself
        self.problem = problem


@dataclass(frozen=True, slots=True)
class WebAppUser:
    """The Telegram user an ``initData`` proves.

    Attributes:
        telegram_id: The user's Telegram id.
        auth_date: When Telegram signed the data.
    """

    telegram_id: int
    auth_date: datetime


def _secret_key(bot_token: str) -> bytes:
    return hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()


def init_data_hash(fields: dict[str, str], bot_token: str) -> str:
    """The ``hash`` Telegram puts on ``fields`` (every field but ``hash`` itself).

    Args:
        fields: The decoded ``initData`` fields, ``hash`` excluded.
        bot_token: The bot's token.
    """
    check_string = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    return hmac.new(_secret_key(bot_token), check_string.encode(), hashlib.sha256).hexdigest()


def verify_init_data(
    init_data: str,
    bot_token: str,
    *,
    now: datetime,
    max_age: timedelta = INIT_DATA_MAX_AGE,
) -> WebAppUser:
    """Check a Mini App's ``initData`` and return the user it proves.

    Checked in this order: size and shape; the hash, in constant time; ``auth_date`` not
    older than ``max_age`` nor in the future; a ``user`` object with an integer id.

    Args:
        init_data: The raw query string (``Telegram.WebApp.initData``, or the
            ``tgWebAppData`` launch parameter).
        bot_token: The bot's token.
        now: The current UTC time.
        max_age: How old ``auth_date`` may be.

    Raises:
        InitDataError: Why it proves nothing.
    """
    if not isinstance(init_data, str) or not init_data:
        raise InitDataError(InitDataProblem.MISSING)
    if len(init_data) > MAX_INIT_DATA_CHARS:
        raise InitDataError(InitDataProblem.MALFORMED)
    try:
        pairs = parse_qsl(init_data, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise InitDataError(InitDataProblem.MALFORMED) from None
    fields = dict(pairs)
    if len(fields) != len(pairs):  # a repeated field: which one did Telegram sign?
        raise InitDataError(InitDataProblem.MALFORMED)
    received = fields.pop("hash", "")
    if not received:
        raise InitDataError(InitDataProblem.MALFORMED)
    if not hmac.compare_digest(init_data_hash(fields, bot_token), received.lower()):
        raise InitDataError(InitDataProblem.BAD_SIGNATURE)
    # Signed by Telegram from here on: malformed content is still refused, not trusted.
    try:
        auth_date = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
        user = json.loads(fields["user"])
        telegram_id = user["id"]
    except (KeyError, ValueError, TypeError, OverflowError, OSError):
        raise InitDataError(InitDataProblem.MALFORMED) from None
    if not isinstance(telegram_id, int) or isinstance(telegram_id, bool) or telegram_id <= 0:
        raise InitDataError(InitDataProblem.MALFORMED)
    if auth_date < now - max_age or auth_date > now + CLOCK_SKEW:
        raise InitDataError(InitDataProblem.STALE)
    return WebAppUser(telegram_id=telegram_id, auth_date=auth_date)
