"""Pytest fixtures for the Telegram Bot API double.

A fresh double per test: it starts in a few milliseconds, and a polling task a failed
test leaves behind can then only reach its own (stopped) double, never the next test's.

Example:
    >>> async def test_start(telegram_double, telegram_env):
    ...     settings = make_settings({**BASE_ENV, **telegram_env})
    ...     user = telegram_double.user(first_name="Alice")
    ...     await user.send("/start")
    ...     assert "Welcome" in (await user.next_message()).text
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.doubles.telegram import BotIdentity, TelegramDouble

TEST_BOT_USERNAME = "tv2dydx_test_bot"
TEST_BOT_NAME = "tv2dydx"


@pytest.fixture
def telegram_double() -> Iterator[TelegramDouble]:
    """Yield a started :class:`TelegramDouble` with one bot registered (``.bot``).

    Fails the test at teardown if the double hit an internal error, so a bug in the
    double is never mistaken for a product bug.
    """
    double = TelegramDouble().start()
    double.add_bot(username=TEST_BOT_USERNAME, first_name=TEST_BOT_NAME)
    yield double
    double.stop()
    assert not double.internal_errors, "TelegramDouble failed:\n" + "\n".join(
        double.internal_errors
    )


@pytest.fixture
def telegram_bot(telegram_double: TelegramDouble) -> BotIdentity:
    """Return the registered bot's identity (token, id, username, first_name)."""
    return telegram_double.bot


@pytest.fixture
def telegram_env(telegram_double: TelegramDouble) -> dict[str, str]:
    """Return ``{"TELEGRAM_API_BASE": ..., "BOT_TOKEN": ...}`` for the product's settings."""
    return telegram_double.env()
