"""funding_payments: the Indexer's funding payments per subaccount, market and tick

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = sa.Numeric(precision=38, scale=18)


def upgrade() -> None:
    op.create_table(
        "funding_payments",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("owner_address", sa.String(length=64), nullable=False),
        sa.Column("subaccount_number", sa.Integer(), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("height", sa.BigInteger(), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payment", _MONEY, nullable=False),
        sa.Column("rate", _MONEY, nullable=False),
        sa.Column("position_size", _MONEY, nullable=False),
        sa.Column("oracle_price", _MONEY, nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_funding_payments_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_funding_payments")),
        sa.UniqueConstraint(
            "owner_address",
            "subaccount_number",
            "market",
            "height",
            name=op.f("uq_funding_payments_owner_address_subaccount_number_market_height"),
        ),
    )
    op.create_index(
        "ix_funding_payments_user_id_paid_at", "funding_payments", ["user_id", "paid_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_funding_payments_user_id_paid_at", table_name="funding_payments")
    op.drop_table("funding_payments")
