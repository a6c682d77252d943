"""Formatting, ids and keys shared by the chain state and the Indexer double."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import ROUND_UP, Decimal

from v4_proto.dydxprotocol.clob.order_pb2 import OrderId

from doubles.dydx.state.constants import INDEXER_UUID_NAMESPACE, USDC_QUANTUM

# --------------------------------------------------------------------------------------------
# Formatting and ids shared with the Indexer
# --------------------------------------------------------------------------------------------


def subaccount_uuid(address: str, subaccount_number: int) -> str:
    """Indexer id of a subaccount: ``uuidv5("{address}-{n}")``."""
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, f"{address}-{subaccount_number}"))


def order_uuid(
    address: str, subaccount_number: int, client_id: int, clob_pair_id: int, order_flags: int
) -> str:
    """Indexer id of an order (``order-table.ts uuid``)."""
    sub = subaccount_uuid(address, subaccount_number)
    name = f"{sub}-{client_id}-{clob_pair_id}-{order_flags}"
    return str(uuid.uuid5(INDEXER_UUID_NAMESPACE, name))


def fmt_decimal(value: Decimal) -> str:
    """Format like big.js ``toFixed()``: plain notation, no trailing zeros, never ``-0``."""
    if value == 0:
        return "0"
    text = format(value, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def iso(moment: datetime) -> str:
    """Format a UTC datetime as the Indexer does (``2025-11-12T11:19:52.470Z``)."""
    utc = moment.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _round_usdc_up(value: Decimal) -> Decimal:
    return value.quantize(USDC_QUANTUM, rounding=ROUND_UP)


def _sign(value: Decimal | int) -> int:
    return (value > 0) - (value < 0)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------

OrderKey = tuple[str, int, int, int, int]
"""(owner, subaccount number, client id, order flags, clob pair id) — the chain's OrderId."""
SubaccountKey = tuple[str, int]


def order_key(order_id: OrderId) -> OrderKey:
    """Turn a proto OrderId into a hashable key."""
    sub = order_id.subaccount_id
    return (sub.owner, sub.number, order_id.client_id, order_id.order_flags, order_id.clob_pair_id)
