"""key_entry_requests: single-use tokens of the Mini App key form (#13), stored hashed

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 13:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "key_entry_requests",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("user_id", sa.BigInteger(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_key_entry_requests_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_entry_requests")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_key_entry_requests_token_hash")),
    )
    op.create_index(
        op.f("ix_key_entry_requests_user_id"), "key_entry_requests", ["user_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_key_entry_requests_user_id"), table_name="key_entry_requests")
    op.drop_table("key_entry_requests")
