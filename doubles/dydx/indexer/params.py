"""Query-parameter validation and error answers of the Indexer double's REST API."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from doubles.dydx.state import MAX_SUBACCOUNT_NUMBER

# --------------------------------------------------------------------------------------------
# Request validation
# --------------------------------------------------------------------------------------------


class _BadRequestError(Exception):
    def __init__(self, param: str, value: Any, msg: str = "Invalid value") -> None:
        super().__init__(msg)
        self.body = {"errors": [{"value": value, "msg": msg, "param": param, "location": "query"}]}


class _NotFoundError(Exception):
    """The resource does not exist (answered 404)."""


def _required(query: Any, name: str) -> str:
    value = query.get(name)
    if value is None or value == "":
        raise _BadRequestError(name, value, f"{name} is required")
    return str(value)


def _int_param(
    query: Any,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int | None = None,
) -> int | None:
    raw = query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _BadRequestError(name, raw) from None
    if value < minimum or (maximum is not None and value > maximum):
        raise _BadRequestError(name, raw)
    return value


def _subaccount_number(raw: Any, name: str = "subaccountNumber") -> int:
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise _BadRequestError(name, raw, f"{name} must be a non-negative integer") from None
    if not 0 <= value <= MAX_SUBACCOUNT_NUMBER:
        raise _BadRequestError(name, raw, f"{name} must be a non-negative integer")
    return value


def _bool_param(query: Any, name: str) -> bool | None:
    raw = query.get(name)
    if raw is None:
        return None
    # express-validator isBoolean() is strict: only "true", "false", "1", "0".
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise _BadRequestError(name, raw)


def _list_param(query: Any, name: str, allowed: tuple[str, ...]) -> list[str] | None:
    raw = query.get(name)
    if raw is None:
        return None
    values = [v for v in str(raw).split(",") if v]
    if not values or any(v not in allowed for v in values):
        raise _BadRequestError(name, raw, f"{name} must be one of {','.join(allowed)}")
    return values


def _iso_param(query: Any, name: str) -> datetime | None:
    raw = query.get(name)
    if raw is None:
        return None
    try:
        return datetime.fromisoformat(str(raw).replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise _BadRequestError(name, raw) from None


def _errors(status: int, msg: str, **extra: str) -> web.Response:
    return web.json_response({"errors": [{**extra, "msg": msg}]}, status=status)
