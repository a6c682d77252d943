"""The ledger: typed SQLAlchemy models. Unique constraints make duplicates impossible."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, TimestampMixin, utcnow
from core.db.columns import enum_type as _enum
from core.db.columns import id_column as _id
from core.db.columns import user_fk as _user_fk
from core.db.funding import FundingPayment as FundingPayment  # re-exported with the ledger
from core.db.models_manual import ManualRequest as ManualRequest  # on Base's metadata too
from core.db.models_paper import PaperAccount as PaperAccount
from core.db.models_paper import PaperFill as PaperFill
from core.db.models_paper import PaperOrder as PaperOrder
from core.db.models_paper import PaperPosition as PaperPosition
from core.domain.states import (
    AlertState,
    BracketState,
    NotificationState,
    OrderPurpose,
    OrderSide,
    OrderState,
    PositionSide,
)


class User(TimestampMixin, Base):
    """A Telegram user of the bot."""

    __tablename__ = "users"

    id: Mapped[int] = _id()
    telegram_id: Mapped[int] = mapped_column(unique=True)
    username: Mapped[str | None] = mapped_column(String(64))
    language_code: Mapped[str | None] = mapped_column(String(16))
    declaration_version: Mapped[str | None] = mapped_column(String(32))
    declaration_accepted_at: Mapped[datetime | None]
    paused: Mapped[bool] = mapped_column(default=False, server_default=false())
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default=sql_text("'{}'"))
    notify_chat_id: Mapped[int | None]
    compliance_status: Mapped[str | None] = mapped_column(String(32))
    compliance_checked_at: Mapped[datetime | None]


class Wallet(Base):
    """The Ethereum wallet a user proved control of (EIP-4361). One per user, one user each."""

    __tablename__ = "wallets"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    # Lower-case hex, so uniqueness does not depend on EIP-55 capitalisation.
    address: Mapped[str] = mapped_column(String(42), unique=True)
    chain_id: Mapped[int]
    linked_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("address = lower(address)", name="address_lowercase"),)


class WalletLinkRequest(Base):
    """A one-time wallet-link token and the EIP-4361 nonce issued with it."""

    __tablename__ = "wallet_link_requests"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    nonce: Mapped[str | None] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class KeyEntryRequest(Base):
    """A single-use token for the Mini App key form (only its hash), bound to its user."""

    __tablename__ = "key_entry_requests"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Credential(TimestampMixin, Base):
    """A permissioned dYdX API trading key, encrypted at rest (AES-256-GCM)."""

    __tablename__ = "credentials"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    owner_address: Mapped[str] = mapped_column(String(64))
    subaccount_number: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    key_address: Mapped[str] = mapped_column(String(64))
    authenticator_id: Mapped[int]
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    ciphertext: Mapped[bytes]
    # When the worker last re-read the owner's authenticators for this key (#13).
    authorization_checked_at: Mapped[datetime | None]

    __table_args__ = (
        # Two users trading one subaccount would collide on client ids and positions.
        UniqueConstraint("owner_address", "subaccount_number"),
    )


class Webhook(Base):
    """A personal TradingView webhook: URL token and body passphrase, both stored hashed."""

    __tablename__ = "webhooks"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    passphrase_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    __table_args__ = (
        # At most one live webhook per user.
        Index(
            "uq_webhooks_user_id_active",
            "user_id",
            unique=True,
            postgresql_where=sql_text("rotated_at IS NULL AND revoked_at IS NULL"),
        ),
    )


class Alert(Base):
    """A received alert, accepted or rejected after its token was recognised."""

    __tablename__ = "alerts"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    webhook_id: Mapped[int | None] = mapped_column(ForeignKey("webhooks.id", ondelete="SET NULL"))
    # (user, alert_id) or (user, sha256 of the canonical body); NULL for rejected alerts.
    dedupe_key: Mapped[str | None] = mapped_column(String(160))
    external_id: Mapped[str | None] = mapped_column(String(128))
    body_hash: Mapped[str] = mapped_column(String(64))
    strategy: Mapped[str | None] = mapped_column(String(64))
    market: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str | None] = mapped_column(String(16))
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    source_ip: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[AlertState] = mapped_column(_enum(AlertState, "alert_state"))
    reason: Mapped[str | None]
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    enqueued_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("user_id", "dedupe_key"),
        Index("ix_alerts_user_id_received_at", "user_id", "received_at"),
        # The sweeper looks for accepted alerts that never reached the queue.
        Index(
            "ix_alerts_unqueued",
            "received_at",
            postgresql_where=sql_text("state = 'ACCEPTED' AND enqueued_at IS NULL"),
        ),
    )


class SubaccountCounter(Base):
    """Next dYdX client_id per (owner, subaccount): allocated, never reused."""

    __tablename__ = "subaccount_counters"

    owner_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    subaccount_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_client_id: Mapped[int] = mapped_column(default=1, server_default="1")

    __table_args__ = (
        CheckConstraint("next_client_id BETWEEN 1 AND 4294967296", name="client_id_range"),
    )


class Order(TimestampMixin, Base):
    """An order tv2dydx placed (or tried to place), with its signed bytes for re-broadcast."""

    __tablename__ = "orders"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    alert_id: Mapped[int | None] = mapped_column(ForeignKey("alerts.id", ondelete="SET NULL"))
    parent_order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL")
    )
    purpose: Mapped[OrderPurpose] = mapped_column(_enum(OrderPurpose, "order_purpose"))
    paper: Mapped[bool] = mapped_column(default=False, server_default=false())
    market: Mapped[str] = mapped_column(String(32))
    owner_address: Mapped[str] = mapped_column(String(64))
    subaccount_number: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[int]
    clob_pair_id: Mapped[int | None] = mapped_column(Integer)
    order_flags: Mapped[int] = mapped_column(Integer)
    side: Mapped[OrderSide] = mapped_column(_enum(OrderSide, "order_side"))
    order_type: Mapped[str] = mapped_column(String(24))
    size: Mapped[Decimal]
    price: Mapped[Decimal | None]
    trigger_price: Mapped[Decimal | None]
    reduce_only: Mapped[bool] = mapped_column(default=False)
    time_in_force: Mapped[str] = mapped_column(String(16))
    good_til_block: Mapped[int | None]
    good_til_block_time: Mapped[datetime | None]
    state: Mapped[OrderState] = mapped_column(_enum(OrderState, "order_state"), index=True)
    tx_bytes: Mapped[bytes | None]
    tx_hash: Mapped[str | None] = mapped_column(String(64))
    exchange_code: Mapped[int | None] = mapped_column(Integer)
    codespace: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None]
    filled_size: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    average_price: Mapped[Decimal | None]
    fee: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    # The price the alert referred to (or the oracle when signing), for the slippage report.
    reference_price: Mapped[Decimal | None]
    # The position when the order was planned: realized PnL of its fills is computed from it.
    position_before: Mapped[Decimal | None]
    entry_before: Mapped[Decimal | None]
    realized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    # A take-profit / stop-loss leg: its bracket, and which placement of the bracket's legs
    # it belongs to (a resized leg is a new generation, so a new row).
    bracket_id: Mapped[int | None] = mapped_column(
        ForeignKey("brackets.id", ondelete="SET NULL", use_alter=True), index=True
    )
    generation: Mapped[int | None] = mapped_column(Integer)
    # Timeline for /why: signed (committed) → broadcast → answered → filled / closed.
    signed_at: Mapped[datetime | None]
    submitted_at: Mapped[datetime | None]
    accepted_at: Mapped[datetime | None]
    filled_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("owner_address", "subaccount_number", "client_id"),
        # One entry (or close) per alert: a retried job cannot create a second one. Legs
        # are unique per bracket, purpose and generation instead.
        Index(
            "uq_orders_alert_id_purpose",
            "alert_id",
            "purpose",
            unique=True,
            postgresql_where=sql_text("bracket_id IS NULL"),
        ),
        UniqueConstraint("bracket_id", "purpose", "generation"),
        CheckConstraint("size > 0", name="size_positive"),
        # The position monitor keeps watching a subaccount for a while after its last order.
        Index("ix_orders_created_at", "created_at"),
    )


class Bracket(TimestampMixin, Base):
    """The protection an entry asked for (take-profit, stop-loss, trailing, breakeven),
    committed with the entry so it survives any crash; its legs are ``orders`` rows."""

    __tablename__ = "brackets"

    id: Mapped[int] = _id()
    entry_order_id: Mapped[int] = mapped_column(
        ForeignKey("orders.id", ondelete="CASCADE"), unique=True
    )
    user_id: Mapped[int] = _user_fk()
    paper: Mapped[bool] = mapped_column(default=False, server_default=false())
    market: Mapped[str] = mapped_column(String(32))
    owner_address: Mapped[str] = mapped_column(String(64))
    subaccount_number: Mapped[int] = mapped_column(Integer)
    position_side: Mapped[PositionSide] = mapped_column(_enum(PositionSide, "bracket_side"))
    tp_price: Mapped[Decimal | None]
    tp_pct: Mapped[Decimal | None]
    sl_price: Mapped[Decimal | None]
    sl_pct: Mapped[Decimal | None]
    trail_pct: Mapped[Decimal | None]
    be_trigger_pct: Mapped[Decimal | None]
    state: Mapped[BracketState] = mapped_column(_enum(BracketState, "bracket_state"))
    # What the legs must cover: the entry's fills, less its legs' fills and reductions.
    target_size: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    # How much of the entry a reduce from elsewhere took away (newest brackets first).
    reduced_size: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    # The current placement of legs (0: none yet).
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tp_trigger: Mapped[Decimal | None]
    sl_trigger: Mapped[Decimal | None]
    trail_anchor: Mapped[Decimal | None]
    breakeven_done: Mapped[bool] = mapped_column(default=False, server_default=false())
    failure_reason: Mapped[str | None]
    next_check_at: Mapped[datetime] = mapped_column(default=utcnow)
    version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    closed_at: Mapped[datetime | None]

    __table_args__ = (
        # The cron takes brackets that may still need work and are due.
        Index(
            "ix_brackets_due",
            "next_check_at",
            postgresql_where=sql_text("state NOT IN ('CLOSED', 'FAILED')"),
        ),
        Index("ix_brackets_subaccount", "owner_address", "subaccount_number"),
    )


class Position(Base):
    """A perpetual position as last synced from the exchange (or the paper ledger)."""

    __tablename__ = "positions"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    paper: Mapped[bool] = mapped_column(default=False, server_default=false())
    market: Mapped[str] = mapped_column(String(32))
    side: Mapped[PositionSide | None] = mapped_column(_enum(PositionSide, "position_side"))
    size: Mapped[Decimal] = mapped_column(default=Decimal(0))
    entry_price: Mapped[Decimal | None]
    realized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0))
    unrealized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0))
    opened_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    synced_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (UniqueConstraint("user_id", "paper", "market"),)


class Fill(Base):
    """A fill as reported by the exchange (or simulated in paper mode)."""

    __tablename__ = "fills"

    id: Mapped[int] = _id()
    user_id: Mapped[int] = _user_fk()
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))
    paper: Mapped[bool] = mapped_column(default=False, server_default=false())
    exchange_fill_id: Mapped[str] = mapped_column(String(64))
    market: Mapped[str] = mapped_column(String(32))
    side: Mapped[OrderSide] = mapped_column(_enum(OrderSide, "fill_side"))
    size: Mapped[Decimal]
    price: Mapped[Decimal]
    fee: Mapped[Decimal] = mapped_column(default=Decimal(0))
    liquidity: Mapped[str | None] = mapped_column(String(8))
    # PnL this fill realized against the position it reduced (fee included), for the daily
    # loss limit and per-strategy stats.
    realized_pnl: Mapped[Decimal] = mapped_column(default=Decimal(0), server_default="0")
    filled_at: Mapped[datetime]

    __table_args__ = (UniqueConstraint("user_id", "exchange_fill_id"),)


class AccountNonce(Base):
    """Last timestamp nonce used per dYdX account, so stateful orders never reuse one."""

    __tablename__ = "account_nonces"

    owner_address: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_nonce: Mapped[int]


class Notification(Base):
    """Outbox of Telegram messages: written in the same transaction as the event."""

    __tablename__ = "notifications"

    id: Mapped[int] = _id()
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    chat_id: Mapped[int]
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str]
    attachment: Mapped[bytes | None]
    dedupe_key: Mapped[str | None] = mapped_column(String(160), unique=True)
    state: Mapped[NotificationState] = mapped_column(
        _enum(NotificationState, "notification_state"), default=NotificationState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]

    __table_args__ = (
        Index(
            "ix_notifications_due",
            "next_attempt_at",
            postgresql_where=sql_text("state = 'PENDING'"),
        ),
    )


class AuditLog(Base):
    """Append-only record of security-relevant actions (never secrets)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = _id()
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    actor: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
