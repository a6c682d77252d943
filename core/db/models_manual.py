"""Manual requests: what a trader asked the worker to do by hand (``/close``, ``/panic``, a
protection change), one row per request, so a re-delivered job never does it twice."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import CheckConstraint, ForeignKey, Identity, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow

#: States of a request: waiting for a worker, being worked on (a retry resumes), finished.
REQUEST_STATES = ("PENDING", "RUNNING", "DONE")


class ManualRequest(Base):
    """One manual action asked from the bot and done by the worker (which holds the keys).

    ``attempts`` counts the runs that started: a run that finds it above zero knows an
    earlier one may already have sent orders, and resumes from the ledger instead.
    """

    __tablename__ = "manual_requests"

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(24))
    market: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[str] = mapped_column(String(16), default="PENDING", server_default="PENDING")
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    outcome: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (CheckConstraint("state IN ('PENDING', 'RUNNING', 'DONE')", name="state"),)
