"""The paper venue's ledger: virtual accounts, orders, fills and positions per user."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, TimestampMixin, utcnow
from core.db.columns import enum_type as _enum
from core.db.columns import id_column as _id
from core.db.columns import user_fk as _user_fk
from core.domain.states import OrderSide


class PaperAccount(TimestampMixin, Base):
    """A paper-trading account: virtual USDC per user (positions and fills carry ``paper``)."""

    __tablename__ = "paper_accounts"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    balance: Mapped[Decimal]


class PaperOrder(Base):
    """An order on the simulated venue (what a node and the Indexer would hold)."""

    __tablename__ = "paper_orders"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    tx_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int]
    order_flags: Mapped[int] = mapped_column(Integer)
    market: Mapped[str] = mapped_column(String(32))
    side: Mapped[OrderSide] = mapped_column(_enum(OrderSide, "paper_order_side"))
    kind: Mapped[str] = mapped_column(String(24))
    time_in_force: Mapped[str] = mapped_column(String(16))
    size: Mapped[Decimal]
    price: Mapped[Decimal]
    trigger_price: Mapped[Decimal | None]
    reduce_only: Mapped[bool] = mapped_column(default=False)
    status: Mapped[str] = mapped_column(String(24))
    filled_size: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    good_til_block: Mapped[int | None]
    good_til_block_time: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("user_id", "client_id", "order_flags", "market"),
        Index(
            "ix_paper_orders_live",
            "user_id",
            postgresql_where=sql_text("status IN ('OPEN', 'UNTRIGGERED')"),
        ),
    )


class PaperFill(Base):
    """A simulated fill on the paper venue."""

    __tablename__ = "paper_fills"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    paper_order_id: Mapped[int] = mapped_column(
        ForeignKey("paper_orders.id", ondelete="CASCADE"), index=True
    )
    market: Mapped[str] = mapped_column(String(32))
    side: Mapped[OrderSide] = mapped_column(_enum(OrderSide, "paper_fill_side"))
    size: Mapped[Decimal]
    price: Mapped[Decimal]
    fee: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaperPosition(Base):
    """A simulated position: signed size (positive long), entry price, realized PnL."""

    __tablename__ = "paper_positions"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    market: Mapped[str] = mapped_column(String(32), primary_key=True)
    size: Mapped[Decimal] = mapped_column(default=Decimal(0))
    entry_price: Mapped[Decimal] = mapped_column(default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
