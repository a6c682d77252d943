"""A protocol-faithful, offline double of the Telegram Bot API (tests only).

Products reach it only through configuration: ``TELEGRAM_API_BASE`` is the double's
``base_url`` and ``BOT_TOKEN`` a token registered with it (fixtures ``telegram_double``,
``telegram_bot`` and ``telegram_env`` in ``tests/fixtures/telegram.py``).

A user story::

    user = telegram_double.user(id=1001, first_name="Alice", username="alice")
    sent = await user.send("/start")              # a message update, /start entity included
    menu = await user.next_message()              # the bot's next message to Alice
    assert menu.text == "Welcome, Alice!"         # markup parsed, as Telegram stores it
    assert menu.keyboard == [[("Connect", "connect"), ("Help", "https://example.com")]]
    answer = await user.press(menu, "connect")    # waits for answerCallbackQuery
    await user.wait_edited(menu)                  # menu.text is now the edited text
    assert sent.deleted                           # if the bot deleted /start

Channels: ``telegram_double.channel("Signals", can_post_messages=False)``.
What the bot did: ``telegram_double.calls`` / ``.calls_to("sendMessage")`` (method, params,
status, response) and ``telegram_double.sent`` (every message bots sent).
Faults: ``telegram_double.set_down(2.0)`` (502 from nginx; ``mode="reset"`` or
``"server_error"``) and ``telegram_double.flood(1, retry_after=3)`` (429).
"""

from __future__ import annotations

from .actors import SimulatedUser
from .channel_actor import SimulatedChannel
from .media import PNG_SIGNATURE, StoredFile, Upload
from .server import OUTAGE_MODES, TelegramDouble
from .state import BotIdentity, Button, ChatMessage, MessageVersion
from .state_world import ApiCall, CallbackAnswer, WebhookConfig, WebhookDelivery

__all__ = [
    "OUTAGE_MODES",
    "PNG_SIGNATURE",
    "ApiCall",
    "BotIdentity",
    "Button",
    "CallbackAnswer",
    "ChatMessage",
    "MessageVersion",
    "SimulatedChannel",
    "SimulatedUser",
    "StoredFile",
    "TelegramDouble",
    "Upload",
    "WebhookConfig",
    "WebhookDelivery",
]
