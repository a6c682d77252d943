"""The trader's controls: pause and resume, preferences, where notifications go, and why an
alert did what it did.

Preferences arrive as text (a preset button's value or what the trader typed) and are parsed
here, so a button and a typed value go through the same validation and a bad value changes
nothing.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol
from zoneinfo import available_timezones

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.alerts.schema import normalise_market
from core.db.models import Alert, Order, User
from core.db.repositories.control import ControlRepository
from core.db.uow import UnitOfWork
from core.domain.compliance import ComplianceStatus
from core.domain.preferences import (
    MAX_LEVERAGE,
    MAX_NOTIONAL_USD,
    MAX_OPEN_POSITIONS,
    MAX_SLIPPAGE_PCT,
    FlipMode,
    Preferences,
    SizeKind,
)
from core.domain.states import AlertState, OrderPurpose, OrderState
from core.runtime.logs import get_logger

MAX_SIZE_PCT = Decimal(1000)  # 10x equity, as an alert's size_pct; leverage caps bind first
MAX_ALLOWED_MARKETS = 40
MAX_INPUT_CHARS = 400
MAX_DECIMALS = 8
CHANNEL_LOST_NOTICE = "notify_channel_lost"

_NUMBER_RE = re.compile(r"^\d+(?:\.\d+)?$|^\.\d+$")
_UTC_OFFSET_RE = re.compile(r"^(?:UTC|GMT)?\s*([+-])\s*(\d{1,2})$")
_SIZE_RE = re.compile(r"^(\$)?\s*(\d[\d.,_]*k?|\.\d+)\s*(%|\$|[a-z]{0,12})$")
_BARE_BASE_RE = re.compile(r"^[A-Za-z0-9]{1,20}$")
_OFF_WORDS = frozenset({"off", "none", "no", "no limit", "unlimited", "-"})


class PreferenceField(StrEnum):
    """A preference /settings edits (short values: they travel in callback data)."""

    SIZE = "size"
    SLIPPAGE = "slip"
    LEVERAGE = "lev"
    NOTIONAL = "notional"
    POSITIONS = "positions"
    LOSS_LIMIT = "loss"
    MARKETS = "markets"
    FLIP = "flip"
    PAPER = "paper"
    TIMEZONE = "tz"


class PreferenceInputError(ValueError):
    """A preference value was refused; ``str(exc)`` says what is accepted."""


class ResumeRefusedError(Exception):
    """Trading cannot resume.

    Attributes:
        compliance: The compliance status that forbids it.
    """

    def __init__(self, compliance: ComplianceStatus) -> None:
        super().__init__(compliance.value)
        self.compliance = compliance


class NotifyRefusal(StrEnum):
    """Why a chat cannot receive the notifications."""

    NOT_FOUND = "not_found"  # unknown, or private and the bot is not in it
    NOT_A_CHANNEL = "not_a_channel"
    BOT_NOT_ADMIN = "bot_not_admin"
    BOT_CANNOT_POST = "bot_cannot_post"
    NOT_OWNER = "not_owner"
    POST_FAILED = "post_failed"
    BAD_REFERENCE = "bad_reference"


class NotifyRefusedError(Exception):
    """The chat was refused as the notification target.

    Attributes:
        reason: What is wrong.
        title: The chat's title when it was found.
    """

    def __init__(self, reason: NotifyRefusal, title: str | None = None) -> None:
        super().__init__(reason.value)
        self.reason = reason
        self.title = title


class ChannelNotFoundError(Exception):
    """The bot cannot see the chat."""


class ChannelPostError(Exception):
    """The bot could not post in the chat."""


@dataclass(frozen=True, slots=True)
class ChatInfo:
    """A chat as the Telegram Bot API shows it.

    Attributes:
        id: Chat id (``-100…`` for channels).
        title: Title.
        kind: ``channel``, ``supergroup``, ``group`` or ``private``.
        username: Public username, if any.
    """

    id: int
    title: str
    kind: str
    username: str | None = None


@dataclass(frozen=True, slots=True)
class Membership:
    """Someone's standing in a chat.

    Attributes:
        status: ``creator``, ``administrator``, ``member``, ``restricted``, ``left`` or
            ``kicked``.
        can_post_messages: Whether an administrator may post in a channel.
    """

    status: str
    can_post_messages: bool = False


class ChannelAccess(Protocol):
    """What checking a notification channel needs from Telegram (the bot implements it)."""

    async def chat(self, reference: str | int) -> ChatInfo:
        """Look a chat up by ``@username`` or id.

        Raises:
            ChannelNotFoundError: The bot cannot see it.
        """
        ...

    async def bot_membership(self, chat_id: int) -> Membership:
        """The bot's own standing in the chat."""
        ...

    async def membership(self, chat_id: int, telegram_id: int) -> Membership:
        """A user's standing in the chat (needs the bot to be an administrator).

        Raises:
            ChannelNotFoundError: The member list cannot be read.
        """
        ...

    async def post_test(self, chat_id: int) -> None:
        """Post the test message.

        Raises:
            ChannelPostError: The message was refused.
        """
        ...


@dataclass(frozen=True, slots=True)
class ControlStatus:
    """What /settings shows besides the preferences themselves.

    Attributes:
        paused: Whether alerts are recorded without being executed.
        compliance: The owner address's last compliance screening, if screened.
        notify_chat_id: The channel notifications go to; ``None`` for the private chat.
        preferences: The trading preferences.
    """

    paused: bool
    compliance: ComplianceStatus | None
    notify_chat_id: int | None
    preferences: Preferences


@dataclass(frozen=True, slots=True)
class Resumed:
    """The result of /resume.

    Attributes:
        changed: False when trading was not paused.
        compliance: The last compliance screening (``CLOSE_ONLY`` limits what executes).
        paper: Whether paper mode is on.
    """

    changed: bool
    compliance: ComplianceStatus | None
    paper: bool


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    """A chat that now receives the notifications.

    Attributes:
        chat_id: Its id.
        title: Its title.
    """

    chat_id: int
    title: str


@dataclass(frozen=True, slots=True)
class LostChannel:
    """A user whose notification channel stopped accepting the bot's posts."""

    user_id: int
    telegram_id: int


@dataclass(frozen=True, slots=True)
class Step:
    """One step of an alert's way to the exchange.

    Attributes:
        name: ``received``, ``queued``, ``picked_up``, ``signed``, ``broadcast``,
            ``accepted``, ``filled`` or ``notified``.
        at: When it happened; ``None`` when it did not (yet).
        since_previous: Time since the previous step that happened.
        since_received: Time since the alert was received.
        order: Which order the step belongs to when the alert placed several.
    """

    name: str
    at: datetime | None
    since_previous: timedelta | None
    since_received: timedelta | None
    order: OrderPurpose | None = None


@dataclass(frozen=True, slots=True)
class OrderSummary:
    """An order placed for the alert, as /why describes it."""

    purpose: OrderPurpose
    market: str
    side: str
    size: Decimal
    state: OrderState
    filled_size: Decimal
    average_price: Decimal | None
    paper: bool
    error: str | None


@dataclass(frozen=True, slots=True)
class Timeline:
    """What happened to one alert, step by step.

    Attributes:
        alert_id: Our alert id.
        external_id: TradingView's ``alert_id``, if the alert carried one.
        market: The market asked for.
        action: ``buy``, ``sell`` or ``close``.
        state: The alert's state now.
        reason: Why it was refused, skipped or failed, if it was.
        steps: The steps in order, those that did not happen included (``at`` is None).
        orders: The orders placed for it.
        timezone: The trader's timezone preference, to show the times in.
    """

    alert_id: int
    external_id: str | None
    market: str | None
    action: str | None
    state: AlertState
    reason: str | None
    steps: list[Step]
    orders: list[OrderSummary]
    timezone: str = "UTC"


def _decimal(text: str, what: str) -> Decimal:
    """A plain positive-looking number, with ``,`` thousands separators and a ``k`` suffix."""
    cleaned = text.strip().lower().replace(",", "").replace("_", "").replace(" ", "")
    factor = Decimal(1)
    if cleaned.endswith("k"):
        cleaned, factor = cleaned[:-1], Decimal(1000)
    if not _NUMBER_RE.match(cleaned):
        raise PreferenceInputError(f"{what}: send a number, e.g. {_EXAMPLES.get(what, '10')}.")
    if len(cleaned.partition(".")[2]) > MAX_DECIMALS:
        raise PreferenceInputError(f"{what}: at most {MAX_DECIMALS} decimal places.")
    try:
        value = Decimal(cleaned) * factor
        # 2.5k is 2500, not 2500.0 (normalize() alone would store 1E+3)
        return value.quantize(Decimal(1)) if value == value.to_integral() else value.normalize()
    except InvalidOperation:  # more digits than Decimal's context holds
        raise PreferenceInputError(f"{what}: that number is too large.") from None


def _bounded(value: Decimal, what: str, maximum: Decimal, unit: str = "") -> Decimal:
    if value <= 0 or value > maximum:
        raise PreferenceInputError(f"{what} must be above 0 and at most {maximum:,f}{unit}.")
    return value


def _strip(text: str, *suffixes: str) -> str:
    cleaned = text.strip().lower()
    for suffix in suffixes:
        if cleaned.endswith(suffix):
            return cleaned[: -len(suffix)].strip()
    return cleaned


_EXAMPLES = {
    "Default size": "$100, 5% or 0.01 ETH",
    "Slippage": "0.5",
    "Leverage cap": "3",
    "Max notional": "2500",
    "Daily loss limit": "200, or off",
    "Max open positions": "5",
}


def _size(text: str) -> dict[str, Any]:
    what = "Default size"
    match = _SIZE_RE.match(text.strip().lower())
    if match is None:
        raise PreferenceInputError(f"{what}: send e.g. {_EXAMPLES[what]}.")
    dollar, amount, unit = match.groups()
    if unit == "%" and not dollar:
        pct = _bounded(_decimal(amount, what), what, MAX_SIZE_PCT, "% of equity")
        return {"default_size_kind": SizeKind.PCT, "default_size_value": pct}
    if dollar or unit in {"", "$", "usd", "usdc"}:
        usd = _bounded(_decimal(amount, what), what, MAX_NOTIONAL_USD, " USD")
        return {"default_size_kind": SizeKind.USD, "default_size_value": usd}
    # "0.01 eth", "0.01 units": base units of whatever market the alert trades
    base = _bounded(_decimal(amount, what), what, MAX_NOTIONAL_USD)
    return {"default_size_kind": SizeKind.BASE, "default_size_value": base}


def parse_market(text: str) -> str:
    """A market as a trader types it (``btc``, ``ETHUSDT``, ``sol-usd``) as a dYdX ticker.

    Raises:
        ValueError: It is not a USD-quoted market symbol.
    """
    ticker = text.strip()
    if _BARE_BASE_RE.match(ticker) and not ticker.upper().endswith(("USD", "USDT", "USDC")):
        ticker = f"{ticker}-USD"  # "btc" means BTC-USD, dYdX's only quote
    return normalise_market(ticker)


def _markets(text: str) -> dict[str, Any]:
    cleaned = text.strip()
    if cleaned.lower() in {"all", "any", "*", "every", "all markets"}:
        return {"allowed_markets": ()}
    tickers = [part for part in re.split(r"[\s,;]+", cleaned) if part]
    if not tickers:
        raise PreferenceInputError("Allowed markets: send tickers like BTC-USD ETH-USD, or all.")
    if len(tickers) > MAX_ALLOWED_MARKETS:
        raise PreferenceInputError(f"Allowed markets: at most {MAX_ALLOWED_MARKETS} markets.")
    markets = []
    for ticker in tickers:
        try:
            markets.append(parse_market(ticker))
        except ValueError:
            shown = ticker[:32]
            raise PreferenceInputError(
                f"Allowed markets: {shown} is not a market like BTC-USD."
            ) from None
    return {"allowed_markets": tuple(markets)}


def _timezone(text: str) -> dict[str, Any]:
    cleaned = text.strip().replace(" ", "_")
    offset = _UTC_OFFSET_RE.match(cleaned.upper().replace("_", ""))
    if cleaned.upper() in {"UTC", "GMT", "Z"}:
        return {"timezone": "UTC"}
    if offset is not None:
        sign, hours = offset.groups()
        if int(hours) > 14:
            raise PreferenceInputError("Timezone: UTC offsets go from -12 to +14.")
        # The IANA Etc/GMT zones have POSIX signs: UTC+2 is Etc/GMT-2.
        posix = "-" if sign == "+" else "+"
        return {"timezone": "UTC" if int(hours) == 0 else f"Etc/GMT{posix}{int(hours)}"}
    by_lower = {zone.lower(): zone for zone in available_timezones()}
    zone = by_lower.get(cleaned.lower())
    if zone is None:
        raise PreferenceInputError(
            "Timezone: send a name like Europe/Berlin or America/New_York, or an offset like UTC+2."
        )
    return {"timezone": zone}


def parse_preference(field: PreferenceField, text: str) -> dict[str, Any]:
    """The preference changes ``text`` asks for.

    Args:
        field: The preference being edited.
        text: A preset's value or what the trader typed.

    Raises:
        PreferenceInputError: The text is not a valid value (the message says what is).
    """
    if len(text) > MAX_INPUT_CHARS:
        raise PreferenceInputError("That is too long for a setting.")
    lowered = text.strip().lower()
    if field is PreferenceField.SIZE:
        return _size(text)
    if field is PreferenceField.SLIPPAGE:
        value = _decimal(_strip(text, "%"), "Slippage")
        return {"slippage_pct": _bounded(value, "Slippage", MAX_SLIPPAGE_PCT, "%")}
    if field is PreferenceField.LEVERAGE:
        value = _decimal(_strip(text, "x"), "Leverage cap")
        return {"max_leverage": _bounded(value, "Leverage cap", MAX_LEVERAGE, "x")}
    if field is PreferenceField.NOTIONAL:
        value = _decimal(_strip(text, "usdc", "usd", "$").lstrip("$"), "Max notional")
        return {"max_notional_usd": _bounded(value, "Max notional", MAX_NOTIONAL_USD, " USD")}
    if field is PreferenceField.POSITIONS:
        if not lowered.isdigit() or not 1 <= int(lowered) <= MAX_OPEN_POSITIONS:
            raise PreferenceInputError(
                f"Max open positions: send a whole number from 1 to {MAX_OPEN_POSITIONS}."
            )
        return {"max_open_positions": int(lowered)}
    if field is PreferenceField.LOSS_LIMIT:
        if lowered in _OFF_WORDS:
            return {"daily_loss_limit_usd": None}
        value = _decimal(_strip(text, "usdc", "usd", "$").lstrip("$"), "Daily loss limit")
        limit = _bounded(value, "Daily loss limit", MAX_NOTIONAL_USD, " USD")
        return {"daily_loss_limit_usd": limit}
    if field is PreferenceField.MARKETS:
        return _markets(text)
    if field is PreferenceField.FLIP:
        try:
            return {"flip": FlipMode(lowered)}
        except ValueError:
            raise PreferenceInputError("Flip behaviour: flip or reduce.") from None
    if field is PreferenceField.PAPER:
        if lowered in {"on", "paper", "true", "yes"}:
            return {"paper": True}
        if lowered in {"off", "live", "false", "no"}:
            return {"paper": False}
        raise PreferenceInputError("Paper mode: on or off.")
    return _timezone(text)


def _compliance(raw: str | None) -> ComplianceStatus | None:
    try:
        return ComplianceStatus(raw) if raw else None
    except ValueError:
        return None


def parse_alert_reference(text: str) -> tuple[int | None, str]:
    """Split what /why was given into our id (when numeric) and the raw reference.

    ``#12`` and ``12`` are our id 12 (or, failing that, a TradingView id ``12``).
    """
    reference = text.strip()
    digits = reference.removeprefix("#")
    if digits.isdigit() and len(digits) <= 18:
        return int(digits), reference
    return None, reference


def _latency(at: datetime | None, reference: datetime | None) -> timedelta | None:
    if at is None or reference is None:
        return None
    return at - reference


def _steps(alert: Alert, orders: Sequence[Order], notified: datetime | None) -> list[Step]:
    received = alert.received_at
    raw: list[tuple[str, datetime | None, OrderPurpose | None]] = [
        ("received", received, None),
        ("queued", alert.enqueued_at, None),
        ("picked_up", alert.started_at, None),
    ]
    several = len(orders) > 1
    for order in orders:
        purpose = order.purpose if several else None
        raw += [
            ("signed", order.signed_at, purpose),
            ("broadcast", order.submitted_at, purpose),
            ("accepted", order.accepted_at, purpose),
            ("filled", order.filled_at, purpose),
        ]
    if not orders:
        raw += [(name, None, None) for name in ("signed", "broadcast", "accepted", "filled")]
    raw.append(("notified", notified, None))
    steps = []
    previous: datetime | None = None
    for name, at, purpose in raw:
        steps.append(
            Step(
                name=name,
                at=at,
                since_previous=_latency(at, previous) if name != "received" else None,
                since_received=_latency(at, received) if name != "received" else None,
                order=purpose,
            )
        )
        if at is not None:
            previous = at
    return steps


def notice_key_patterns(alert_id: int, order_ids: Sequence[int]) -> list[str]:
    """``LIKE`` patterns of the outbox dedupe keys that report on an alert or its orders.

    The execution worker keys its notices ``<kind>:alert:<id>`` or ``<kind>:order:<id>``
    (optionally with a suffix after another ``:``).
    """
    patterns = [f"%alert:{alert_id}", f"%alert:{alert_id}:%"]
    for order_id in order_ids:
        patterns += [f"%order:{order_id}", f"%order:{order_id}:%"]
    return patterns


class ControlService:
    """Pause / resume, preferences, the notification chat and alert timelines."""

    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession]) -> None:
        self._sessionmaker = sessionmaker
        self._log = get_logger(__name__)

    async def status(self, user_id: int) -> ControlStatus:
        """The user's pause state, compliance, notification chat and preferences."""
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            return ControlStatus(
                paused=user.paused,
                compliance=_compliance(user.compliance_status),
                notify_chat_id=user.notify_chat_id,
                preferences=Preferences.from_json(user.settings),
            )

    async def preferences(self, user_id: int) -> Preferences:
        """The user's trading preferences (defaults for anything never set)."""
        return (await self.status(user_id)).preferences

    async def pause(self, user_id: int) -> bool:
        """Stop executing the user's alerts (they are still received and recorded).

        Returns:
            Whether this call paused trading (False: it was paused already).
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await self._lock(uow, user_id)
            if user.paused:
                return False
            user.paused = True
            uow.audit.record("trading_paused", user_id=user_id)
            await uow.commit()
        self._log.info("trading_paused", user_id=user_id)
        return True

    async def resume(self, user_id: int) -> Resumed:
        """Execute the user's alerts again.

        Raises:
            ResumeRefusedError: The owner address is BLOCKED by dYdX's compliance screen.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await self._lock(uow, user_id)
            compliance = _compliance(user.compliance_status)
            if compliance is not None and not compliance.may_trade:
                raise ResumeRefusedError(compliance)
            paper = Preferences.from_json(user.settings).paper
            if not user.paused:
                return Resumed(changed=False, compliance=compliance, paper=paper)
            user.paused = False
            uow.audit.record("trading_resumed", user_id=user_id)
            await uow.commit()
        self._log.info("trading_resumed", user_id=user_id)
        return Resumed(changed=True, compliance=compliance, paper=paper)

    async def update_preferences(self, user_id: int, **changes: Any) -> Preferences:
        """Apply validated changes to the user's preferences.

        Raises:
            PreferenceInputError: A value is out of bounds; nothing was changed.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await self._lock(uow, user_id)
            current = Preferences.from_json(user.settings)
            try:
                updated = current.updated(**changes)
            except ValueError as exc:
                raise PreferenceInputError(str(exc)) from None
            if updated == current:
                return current
            user.settings = updated.to_json()
            changed = sorted(changes)
            uow.audit.record("preferences_updated", user_id=user_id, fields=changed)
            await uow.commit()
        self._log.info("preferences_updated", user_id=user_id, fields=changed)
        return updated

    async def set_preference(self, user_id: int, field: PreferenceField, text: str) -> Preferences:
        """Parse ``text`` for ``field`` and store it.

        Raises:
            PreferenceInputError: The value is not accepted; nothing was changed.
        """
        return await self.update_preferences(user_id, **parse_preference(field, text))

    async def set_notify_chat(
        self, user_id: int, reference: str, access: ChannelAccess
    ) -> NotifyTarget:
        """Send the user's notifications to a channel they own, where the bot may post.

        Checks, in order: the chat exists and is a channel, the bot is an administrator
        allowed to post, the user is its owner; then posts a test message and stores it.

        Args:
            user_id: The user.
            reference: ``@username`` or the numeric chat id.
            access: Telegram, as the bot sees it.

        Raises:
            NotifyRefusedError: A check failed; nothing was changed.
        """
        target = _chat_reference(reference)
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            telegram_id = user.telegram_id
        try:
            chat = await access.chat(target)
        except ChannelNotFoundError:
            raise NotifyRefusedError(NotifyRefusal.NOT_FOUND) from None
        if chat.kind != "channel":
            raise NotifyRefusedError(NotifyRefusal.NOT_A_CHANNEL, chat.title)
        bot = await access.bot_membership(chat.id)
        if bot.status != "administrator":
            raise NotifyRefusedError(NotifyRefusal.BOT_NOT_ADMIN, chat.title)
        if not bot.can_post_messages:
            raise NotifyRefusedError(NotifyRefusal.BOT_CANNOT_POST, chat.title)
        try:
            owner = await access.membership(chat.id, telegram_id)
        except ChannelNotFoundError:
            raise NotifyRefusedError(NotifyRefusal.NOT_OWNER, chat.title) from None
        if owner.status != "creator":
            raise NotifyRefusedError(NotifyRefusal.NOT_OWNER, chat.title)
        try:
            await access.post_test(chat.id)
        except ChannelPostError:
            raise NotifyRefusedError(NotifyRefusal.POST_FAILED, chat.title) from None
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await self._lock(uow, user_id)
            user.notify_chat_id = chat.id
            uow.audit.record("notify_chat_set", user_id=user_id, chat_id=chat.id)
            await uow.commit()
        self._log.info("notify_chat_set", user_id=user_id, chat_id=chat.id)
        return NotifyTarget(chat_id=chat.id, title=chat.title)

    async def clear_notify_chat(self, user_id: int) -> bool:
        """Send notifications to the private chat again.

        Returns:
            Whether a channel was set.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await self._lock(uow, user_id)
            if user.notify_chat_id is None:
                return False
            user.notify_chat_id = None
            uow.audit.record("notify_chat_cleared", user_id=user_id)
            await uow.commit()
        self._log.info("notify_chat_cleared", user_id=user_id)
        return True

    async def channel_lost(self, chat_id: int, notice: str) -> list[LostChannel]:
        """The bot can no longer post in ``chat_id``: route its users' notifications (those
        still undelivered included) back to their private chats, and tell them there (through
        the outbox).

        Args:
            chat_id: The channel.
            notice: The message for each user's private chat.

        Returns:
            The users moved back to their private chat.
        """
        async with UnitOfWork(self._sessionmaker) as uow:
            repo = ControlRepository(uow.session)
            moved = []
            for user in await repo.users_notified_in(chat_id):
                user.notify_chat_id = None
                # What was still waiting for the channel would fail there: deliver it privately.
                await repo.reroute_pending(user.id, chat_id, user.telegram_id)
                uow.audit.record("notify_chat_lost", user_id=user.id, chat_id=chat_id)
                await uow.notifications.enqueue(
                    chat_id=user.telegram_id,
                    kind=CHANNEL_LOST_NOTICE,
                    text=notice,
                    user_id=user.id,
                )
                moved.append(LostChannel(user_id=user.id, telegram_id=user.telegram_id))
            await uow.commit()
        if moved:
            self._log.info("notify_chat_lost", chat_id=chat_id, users=len(moved))
        return moved

    async def timeline(self, user_id: int, reference: str) -> Timeline | None:
        """The steps one of the user's alerts went through, with their latencies.

        Args:
            user_id: The user (another user's alert is never found).
            reference: Our alert id (``12`` or ``#12``), or the TradingView ``alert_id``.

        Returns:
            The timeline, or ``None`` when the user has no such alert.
        """
        alert_id, raw = parse_alert_reference(reference)
        async with UnitOfWork(self._sessionmaker) as uow:
            repo = ControlRepository(uow.session)
            alert = await repo.alert_of_user(user_id, alert_id) if alert_id is not None else None
            if alert is None and raw:
                alert = await repo.latest_alert_with_external_id(user_id, raw[:128])
            if alert is None:
                return None
            orders = await repo.orders_of_alert(alert.id)
            user = await uow.users.get(user_id)
            settings = user.settings if user is not None else None
            notified = await repo.first_notice_sent(
                user_id,
                notice_key_patterns(alert.id, [order.id for order in orders]),
                alert.received_at,
            )
            return Timeline(
                alert_id=alert.id,
                external_id=alert.external_id,
                market=alert.market,
                action=alert.action,
                state=alert.state,
                reason=alert.reason,
                steps=_steps(alert, orders, notified),
                orders=[
                    OrderSummary(
                        purpose=order.purpose,
                        market=order.market,
                        side=order.side.value,
                        size=order.size,
                        state=order.state,
                        filled_size=order.filled_size,
                        average_price=order.average_price,
                        paper=order.paper,
                        error=order.error,
                    )
                    for order in orders
                ],
                timezone=Preferences.from_json(settings).timezone,
            )

    @staticmethod
    async def _lock(uow: UnitOfWork, user_id: int) -> User:
        user = await ControlRepository(uow.session).lock_user(user_id)
        if user is None:
            raise LookupError(user_id)
        return user


def _chat_reference(text: str) -> str | int:
    """``@name`` / ``t.me/name`` / ``-100…`` as what getChat takes.

    Raises:
        NotifyRefusedError: It is none of those.
    """
    cleaned = text.strip()
    for prefix in ("https://t.me/", "http://t.me/", "t.me/"):
        if cleaned.lower().startswith(prefix):
            cleaned = "@" + cleaned[len(prefix) :].strip("/")
    if re.fullmatch(r"-100\d{5,15}", cleaned):
        return int(cleaned)
    if re.fullmatch(r"@[A-Za-z][A-Za-z0-9_]{3,31}", cleaned):
        return cleaned
    raise NotifyRefusedError(NotifyRefusal.BAD_REFERENCE)
