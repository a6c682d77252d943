"""trading ledger

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 18:04:29.265164
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_nonces",
        sa.Column("owner_address", sa.String(length=64), nullable=False),
        sa.Column("last_nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("owner_address", name=op.f("pk_account_nonces")),
    )
    op.create_table(
        "paper_accounts",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("balance", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_paper_accounts_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_paper_accounts")),
    )
    op.create_table(
        "paper_orders",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("tx_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.BigInteger(), nullable=False),
        sa.Column("order_flags", sa.Integer(), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column(
            "side",
            sa.Enum(
                "BUY",
                "SELL",
                name="paper_order_side",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("time_in_force", sa.String(length=16), nullable=False),
        sa.Column("size", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("trigger_price", sa.Numeric(precision=38, scale=18), nullable=True),
        sa.Column("reduce_only", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=24), nullable=False),
        sa.Column(
            "filled_size", sa.Numeric(precision=38, scale=18), server_default="0", nullable=False
        ),
        sa.Column("good_til_block", sa.BigInteger(), nullable=True),
        sa.Column("good_til_block_time", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_paper_orders_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_orders")),
        sa.UniqueConstraint("tx_hash", name=op.f("uq_paper_orders_tx_hash")),
        sa.UniqueConstraint(
            "user_id",
            "client_id",
            "order_flags",
            "market",
            name=op.f("uq_paper_orders_user_id_client_id_order_flags_market"),
        ),
    )
    op.create_index(
        "ix_paper_orders_live",
        "paper_orders",
        ["user_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('OPEN', 'UNTRIGGERED')"),
    )
    op.create_index(op.f("ix_paper_orders_user_id"), "paper_orders", ["user_id"], unique=False)
    op.create_table(
        "paper_positions",
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("size", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("entry_price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("realized_pnl", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_paper_positions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "market", name=op.f("pk_paper_positions")),
    )
    op.create_table(
        "paper_fills",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("paper_order_id", sa.BigInteger(), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column(
            "side",
            sa.Enum(
                "BUY",
                "SELL",
                name="paper_fill_side",
                native_enum=False,
                create_constraint=True,
                length=24,
            ),
            nullable=False,
        ),
        sa.Column("size", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("price", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("fee", sa.Numeric(precision=38, scale=18), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["paper_order_id"],
            ["paper_orders.id"],
            name=op.f("fk_paper_fills_paper_order_id_paper_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_paper_fills_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_paper_fills")),
    )
    op.create_index(
        op.f("ix_paper_fills_paper_order_id"), "paper_fills", ["paper_order_id"], unique=False
    )
    op.create_index(op.f("ix_paper_fills_user_id"), "paper_fills", ["user_id"], unique=False)
    op.add_column(
        "fills",
        sa.Column(
            "realized_pnl", sa.Numeric(precision=38, scale=18), server_default="0", nullable=False
        ),
    )
    op.add_column(
        "orders", sa.Column("position_before", sa.Numeric(precision=38, scale=18), nullable=True)
    )
    op.add_column(
        "orders", sa.Column("entry_before", sa.Numeric(precision=38, scale=18), nullable=True)
    )
    op.add_column(
        "orders", sa.Column("reference_price", sa.Numeric(precision=38, scale=18), nullable=True)
    )
    op.add_column(
        "orders",
        sa.Column(
            "realized_pnl", sa.Numeric(precision=38, scale=18), server_default="0", nullable=False
        ),
    )
    op.add_column("orders", sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("accepted_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("orders", sa.Column("filled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    op.drop_column("orders", "filled_at")
    op.drop_column("orders", "accepted_at")
    op.drop_column("orders", "signed_at")
    op.drop_column("orders", "realized_pnl")
    op.drop_column("orders", "reference_price")
    op.drop_column("orders", "entry_before")
    op.drop_column("orders", "position_before")
    op.drop_column("fills", "realized_pnl")
    op.drop_index(op.f("ix_paper_fills_user_id"), table_name="paper_fills")
    op.drop_index(op.f("ix_paper_fills_paper_order_id"), table_name="paper_fills")
    op.drop_table("paper_fills")
    op.drop_table("paper_positions")
    op.drop_index(op.f("ix_paper_orders_user_id"), table_name="paper_orders")
    op.drop_index(
        "ix_paper_orders_live",
        table_name="paper_orders",
        postgresql_where=sa.text("status IN ('OPEN', 'UNTRIGGERED')"),
    )
    op.drop_table("paper_orders")
    op.drop_table("paper_accounts")
    op.drop_table("account_nonces")
