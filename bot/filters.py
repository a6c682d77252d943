"""Filters shared by routers."""

from __future__ import annotations

from aiogram.filters import Filter
from aiogram.types import TelegramObject

from core.services.users import UserView


class DeclarationAccepted(Filter):
    """Passes when the user accepted the declaration in force."""

    async def __call__(self, _event: TelegramObject, user: UserView | None = None) -> bool:
        """Check the ``user`` the user middleware put into the handler data."""
        return user is not None and user.declaration_current
