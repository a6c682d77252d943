"""Funding payments of a dYdX subaccount, as the Indexer reports them (one per market and
funding tick), kept in the ledger so P&L, ``/stats`` and the CSV export include them."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Identity, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, utcnow


class FundingPayment(Base):
    """A funding payment: positive when the subaccount received it, negative when it paid."""

    __tablename__ = "funding_payments"

    id: Mapped[int] = mapped_column(Identity(), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    owner_address: Mapped[str] = mapped_column(String(64))
    subaccount_number: Mapped[int] = mapped_column(Integer)
    market: Mapped[str] = mapped_column(String(32))
    # The block of the funding tick: with the subaccount and market, the payment's identity.
    height: Mapped[int]
    paid_at: Mapped[datetime]
    payment: Mapped[Decimal]
    rate: Mapped[Decimal]
    position_size: Mapped[Decimal]
    oracle_price: Mapped[Decimal]
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("owner_address", "subaccount_number", "market", "height"),
        Index("ix_funding_payments_user_id_paid_at", "user_id", "paid_at"),
    )
