"""brackets: an entry's protection as durable intent; legs per (bracket, purpose, generation)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07 04:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MONEY = sa.Numeric(precision=38, scale=18)
_OPEN = sa.text("state NOT IN ('CLOSED', 'FAILED')")


def _enum(name: str, *values: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=24)


def upgrade() -> None:
    op.create_table(
        "brackets",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("entry_order_id", sa.BigInteger(), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("paper", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("market", sa.String(length=32), nullable=False),
        sa.Column("owner_address", sa.String(length=64), nullable=False),
        sa.Column("subaccount_number", sa.Integer(), nullable=False),
        sa.Column("position_side", _enum("bracket_side", "LONG", "SHORT"), nullable=False),
        sa.Column("tp_price", _MONEY, nullable=True),
        sa.Column("tp_pct", _MONEY, nullable=True),
        sa.Column("sl_price", _MONEY, nullable=True),
        sa.Column("sl_pct", _MONEY, nullable=True),
        sa.Column("trail_pct", _MONEY, nullable=True),
        sa.Column("be_trigger_pct", _MONEY, nullable=True),
        sa.Column(
            "state",
            _enum(
                "bracket_state",
                "REQUESTED",
                "PLACING",
                "RESTING",
                "LEG_FILLED",
                "CLOSED",
                "FAILED",
            ),
            nullable=False,
        ),
        sa.Column("target_size", _MONEY, server_default="0", nullable=False),
        sa.Column("reduced_size", _MONEY, server_default="0", nullable=False),
        sa.Column("generation", sa.Integer(), server_default="0", nullable=False),
        sa.Column("tp_trigger", _MONEY, nullable=True),
        sa.Column("sl_trigger", _MONEY, nullable=True),
        sa.Column("trail_anchor", _MONEY, nullable=True),
        sa.Column("breakeven_done", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("failure_reason", sa.String(), nullable=True),
        sa.Column("next_check_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), server_default="0", nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=True),
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
            ["entry_order_id"],
            ["orders.id"],
            name=op.f("fk_brackets_entry_order_id_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_brackets_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_brackets")),
        sa.UniqueConstraint("entry_order_id", name=op.f("uq_brackets_entry_order_id")),
    )
    op.create_index(op.f("ix_brackets_user_id"), "brackets", ["user_id"], unique=False)
    op.create_index("ix_brackets_due", "brackets", ["next_check_at"], postgresql_where=_OPEN)
    op.create_index(
        "ix_brackets_subaccount", "brackets", ["owner_address", "subaccount_number"], unique=False
    )
    op.add_column("orders", sa.Column("bracket_id", sa.BigInteger(), nullable=True))
    op.add_column("orders", sa.Column("generation", sa.Integer(), nullable=True))
    op.create_foreign_key(
        op.f("fk_orders_bracket_id_brackets"),
        "orders",
        "brackets",
        ["bracket_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_orders_bracket_id"), "orders", ["bracket_id"], unique=False)
    op.create_unique_constraint(
        op.f("uq_orders_bracket_id_purpose_generation"),
        "orders",
        ["bracket_id", "purpose", "generation"],
    )
    # Entries and closes stay one per alert; legs are unique per bracket and generation.
    op.drop_constraint(op.f("uq_orders_alert_id_purpose"), "orders", type_="unique")
    op.create_index(
        "uq_orders_alert_id_purpose",
        "orders",
        ["alert_id", "purpose"],
        unique=True,
        postgresql_where=sa.text("bracket_id IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "uq_orders_alert_id_purpose",
        table_name="orders",
        postgresql_where=sa.text("bracket_id IS NULL"),
    )
    # Legs of one alert share a purpose across generations: keep the first of each.
    op.execute(
        "DELETE FROM orders AS o USING orders AS older "
        "WHERE o.alert_id = older.alert_id AND o.purpose = older.purpose AND o.id > older.id"
    )
    op.create_unique_constraint(
        op.f("uq_orders_alert_id_purpose"), "orders", ["alert_id", "purpose"]
    )
    op.drop_constraint(op.f("uq_orders_bracket_id_purpose_generation"), "orders", type_="unique")
    op.drop_index(op.f("ix_orders_bracket_id"), table_name="orders")
    op.drop_constraint(op.f("fk_orders_bracket_id_brackets"), "orders", type_="foreignkey")
    op.drop_column("orders", "generation")
    op.drop_column("orders", "bracket_id")
    op.drop_index("ix_brackets_subaccount", table_name="brackets")
    op.drop_index("ix_brackets_due", table_name="brackets", postgresql_where=_OPEN)
    op.drop_index(op.f("ix_brackets_user_id"), table_name="brackets")
    op.drop_table("brackets")
