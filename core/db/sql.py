"""Helpers for the plain SQL of the hot-path repositories."""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


def sql_literals(values: Iterable[StrEnum]) -> str:
    """``'A', 'B'``: enum values as SQL string literals, sorted so a statement's text (and so
    its prepared plan) is the same in every process.

    Only for enum members, never for input: the values are the program's own constants.
    """
    return ", ".join(f"'{value.value}'" for value in sorted(values, key=lambda v: v.value))
