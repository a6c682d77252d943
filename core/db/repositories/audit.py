"""Audit log."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db.models import AuditLog


class AuditRepository:
    """Append-only access to ``audit_log``."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    def record(
        self, action: str, *, user_id: int | None, actor: str = "user", **details: Any
    ) -> AuditLog:
        """Add an audit entry to the current transaction. ``details`` must hold no secrets."""
        entry = AuditLog(user_id=user_id, actor=actor, action=action, details=details)
        self._session.add(entry)
        return entry
