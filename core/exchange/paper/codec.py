"""The paper venue's transactions: a canonical JSON encoding of an order or a cancel.

Signing produces the canonical encoding of the request (the "transaction"); its SHA-256 is the
transaction hash, so a caller can persist the bytes before broadcasting and re-broadcast them
after a crash. One request has exactly one encoding, hence one hash: the venue's idempotence
rests on it, so :func:`decode` refuses any other spelling of the same request.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.domain.states import OrderSide
from core.exchange.orders import OrderFlags, OrderKind, OrderRequest, SignedTx, TimeInForce

#: Marks the encoding, so bytes of another format are never mistaken for a paper order.
_FORMAT = "tv2dydx-paper/1"

_ORDER_KEYS = frozenset(
    {
        "format",
        "type",
        "owner",
        "subaccount",
        "market",
        "side",
        "size",
        "kind",
        "price",
        "client_id",
        "trigger_price",
        "reduce_only",
        "time_in_force",
        "good_til_block",
        "good_til_block_time",
    }
)
_CANCEL_KEYS = frozenset(
    {
        "format",
        "type",
        "owner",
        "subaccount",
        "market",
        "client_id",
        "flags",
        "good_til_block",
        "good_til_block_time",
    }
)


@dataclass(frozen=True, slots=True)
class CancelTx:
    """The cancel of one of the account's orders, as its transaction carries it.

    Attributes:
        market: Ticker of the order's market.
        client_id: The order's client id.
        flags: The order's flags (short-term or long-term).
        good_til_block: Expiry block of a short-term cancel.
        good_til_block_time: Expiry time of a stateful cancel (UTC-aware).
    """

    market: str
    client_id: int
    flags: OrderFlags
    good_til_block: int | None
    good_til_block_time: datetime | None


class MalformedTxError(ValueError):
    """The bytes are not a paper transaction of this account."""


def tx_hash(tx_bytes: bytes) -> str:
    """The transaction hash of paper bytes: upper-case hex SHA-256."""
    return hashlib.sha256(tx_bytes).hexdigest().upper()


def encode_order(request: OrderRequest, owner: str) -> SignedTx:
    """The signed (canonically encoded) paper transaction of an order.

    Args:
        request: The order.
        owner: The paper account's address (``paper:<user id>``).
    """
    return _signed(_order_payload(request, owner))


def encode_cancel(tx: CancelTx, owner: str) -> SignedTx:
    """The signed (canonically encoded) paper transaction of a cancel.

    Args:
        tx: The cancel.
        owner: The paper account's address (``paper:<user id>``).
    """
    return _signed(_cancel_payload(tx, owner))


def decode(tx_bytes: bytes, owner: str) -> OrderRequest | CancelTx:
    """Parse and validate paper transaction bytes.

    Args:
        tx_bytes: The bytes as broadcast.
        owner: The paper account that must have signed them.

    Raises:
        MalformedTxError: Not a canonical paper transaction of ``owner``.
    """
    try:
        payload = json.loads(tx_bytes.decode("utf-8"))
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT:
            raise MalformedTxError("not a paper transaction")
        if payload.get("owner") != owner or payload.get("subaccount") != 0:
            raise MalformedTxError("a paper transaction of another account")
        decoded: OrderRequest | CancelTx
        if payload.get("type") == "order" and payload.keys() == _ORDER_KEYS:
            trigger = _optional(payload, "trigger_price", str)
            decoded = OrderRequest(
                market=_field(payload, "market", str),
                side=OrderSide(_field(payload, "side", str)),
                size=_decimal(payload, "size"),
                kind=OrderKind(_field(payload, "kind", str)),
                price=_decimal(payload, "price"),
                client_id=_field(payload, "client_id", int),
                trigger_price=None if trigger is None else Decimal(trigger),
                reduce_only=_field(payload, "reduce_only", bool),
                time_in_force=TimeInForce(_field(payload, "time_in_force", str)),
                good_til_block=_optional(payload, "good_til_block", int),
                good_til_block_time=_datetime(payload, "good_til_block_time"),
            )
            canonical = _canonical(_order_payload(decoded, owner))
        elif payload.get("type") == "cancel" and payload.keys() == _CANCEL_KEYS:
            decoded = CancelTx(
                market=_field(payload, "market", str),
                client_id=_field(payload, "client_id", int),
                flags=OrderFlags(_field(payload, "flags", int)),
                good_til_block=_optional(payload, "good_til_block", int),
                good_til_block_time=_datetime(payload, "good_til_block_time"),
            )
            canonical = _canonical(_cancel_payload(decoded, owner))
        else:
            raise MalformedTxError("unknown paper transaction type or fields")
    except MalformedTxError:
        raise
    except (ValueError, TypeError, KeyError, InvalidOperation) as exc:
        # UnicodeDecodeError and JSONDecodeError are ValueErrors too.
        raise MalformedTxError(type(exc).__name__) from None
    # One request has exactly one encoding, hence one hash: idempotence rests on it.
    if canonical != tx_bytes:
        raise MalformedTxError("not the canonical encoding")
    return decoded


def _dec(value: Decimal) -> str:
    return format(value.normalize(), "f")


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def _canonical(payload: Mapping[str, Any]) -> bytes:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _signed(payload: Mapping[str, Any]) -> SignedTx:
    tx_bytes = _canonical(payload)
    return SignedTx(tx_bytes=tx_bytes, tx_hash=tx_hash(tx_bytes))


def _order_payload(request: OrderRequest, owner: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "type": "order",
        "owner": owner,
        "subaccount": 0,
        "market": request.market,
        "side": request.side.value,
        "size": _dec(request.size),
        "kind": request.kind.value,
        "price": _dec(request.price),
        "client_id": request.client_id,
        "trigger_price": None if request.trigger_price is None else _dec(request.trigger_price),
        "reduce_only": request.reduce_only,
        "time_in_force": request.time_in_force.value,
        "good_til_block": request.good_til_block,
        "good_til_block_time": _time(request.good_til_block_time),
    }


def _cancel_payload(tx: CancelTx, owner: str) -> dict[str, Any]:
    return {
        "format": _FORMAT,
        "type": "cancel",
        "owner": owner,
        "subaccount": 0,
        "market": tx.market,
        "client_id": tx.client_id,
        "flags": int(tx.flags),
        "good_til_block": tx.good_til_block,
        "good_til_block_time": _time(tx.good_til_block_time),
    }


def _field(payload: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    value = payload[key]
    # bool is an int subclass: a flag must not pass as a number, nor a number as a flag.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise MalformedTxError(f"{key} has the wrong type")
    return value


def _optional(payload: Mapping[str, Any], key: str, kind: type[Any]) -> Any:
    return None if payload[key] is None else _field(payload, key, kind)


def _decimal(payload: Mapping[str, Any], key: str) -> Decimal:
    return Decimal(_field(payload, key, str))


def _datetime(payload: Mapping[str, Any], key: str) -> datetime | None:
    text = _optional(payload, key, str)
    if text is None:
        return None
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise MalformedTxError(f"{key} is not timezone-aware")
    return value
