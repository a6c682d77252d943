"""Column helpers shared by the ledger's models: one naming and typing convention."""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import Enum, ForeignKey, Identity
from sqlalchemy.orm import Mapped, mapped_column


def enum_type(enum_cls: type[StrEnum], name: str) -> Enum:
    # VARCHAR + CHECK rather than a native PostgreSQL enum: adding a value later is a
    # plain constraint swap instead of an ALTER TYPE that cannot run in a transaction.
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=24,
        values_callable=lambda cls: [member.value for member in cls],
        validate_strings=True,
    )


def user_fk() -> Mapped[int]:
    return mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


def id_column() -> Mapped[int]:
    return mapped_column(Identity(), primary_key=True)
