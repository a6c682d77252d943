"""``ControlService``: pause and resume, preferences, the notification chat and /why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import User
from core.db.repositories.control import ControlRepository
from core.db.uow import UnitOfWork
from core.domain.compliance import ComplianceStatus
from core.domain.preferences import PreferenceField, Preferences
from core.runtime.logs import get_logger
from core.services.control.notify import (
    CHANNEL_LOST_NOTICE,
    ChannelAccess,
    LostChannel,
    NotifyTarget,
    chat_reference,
    check_channel,
)
from core.services.control.preference_input import (
    PreferenceInputError,
    parse_preference,
)
from core.services.control.timeline import (
    Timeline,
    build_timeline,
    notice_key_patterns,
    parse_alert_reference,
)


class ResumeRefusedError(Exception):
    """Trading cannot resume.

    Attributes:
        compliance: The compliance status that forbids it.
    """

    def __init__(self, compliance: ComplianceStatus) -> None:
        super().__init__(compliance.value)
        self.compliance = compliance


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


def _compliance(raw: str | None) -> ComplianceStatus | None:
    try:
        return ComplianceStatus(raw) if raw else None
    except ValueError:
        return None


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
        target = chat_reference(reference)
        async with UnitOfWork(self._sessionmaker) as uow:
            user = await uow.users.get(user_id)
            if user is None:
                raise LookupError(user_id)
            telegram_id = user.telegram_id
        chat = await check_channel(access, target, telegram_id)
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
            return build_timeline(alert, orders, notified, Preferences.from_json(settings).timezone)

    @staticmethod
    async def _lock(uow: UnitOfWork, user_id: int) -> User:
        user = await ControlRepository(uow.session).lock_user(user_id)
        if user is None:
            raise LookupError(user_id)
        return user
