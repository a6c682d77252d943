"""Proto encoding helpers of the gRPC node double and its read-only view of the state."""

from __future__ import annotations

from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import Tx, TxRaw

from doubles.dydx.auth import AccountInfo, TimestampNonceState
from doubles.dydx.node.records import _AccountLike, _AuthenticatorLike

# --- helpers ----------------------------------------------------------------------------------


def _serializable_int(value: int) -> bytes:
    """dYdX ``dtypes.SerializableInt`` bytes: Go's ``big.Int.GobEncode``."""
    magnitude = abs(value)
    body = magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big") if magnitude else b""
    return bytes([(1 << 1) | (1 if value < 0 else 0)]) + body


def _timestamp(moment: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def _block_time_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _quantums(amount: Decimal, atomic_resolution: int) -> int:
    return int(Decimal(amount).scaleb(-atomic_resolution).to_integral_value(rounding=ROUND_FLOOR))


def _tx_from_raw(tx_bytes: bytes) -> Tx:
    raw = TxRaw.FromString(tx_bytes)
    tx = Tx()
    tx.body.MergeFromString(raw.body_bytes)
    tx.auth_info.MergeFromString(raw.auth_info_bytes)
    tx.signatures.extend(raw.signatures)
    return tx


def _raw_from_tx(tx: Tx) -> bytes:
    return bytes(
        TxRaw(
            body_bytes=tx.body.SerializeToString(),
            auth_info_bytes=tx.auth_info.SerializeToString(),
            signatures=list(tx.signatures),
        ).SerializeToString()
    )


class _StateView:
    """Adapts ChainState to the read-only :class:`auth.ChainView`."""

    def __init__(self, state: Any) -> None:
        self._state = state

    def account(self, address: str) -> AccountInfo | None:
        account: _AccountLike | None = self._state.get_account(address)
        if account is None:
            return None
        return AccountInfo(address, account.account_number, account.sequence, account.pub_key)

    def authenticator(self, address: str, authenticator_id: int) -> tuple[str, bytes] | None:
        record: _AuthenticatorLike | None = self._state.get_authenticator(address, authenticator_id)
        return None if record is None else (record.type, bytes(record.config))

    def nonce_state(self, address: str) -> TimestampNonceState:
        account: _AccountLike | None = self._state.get_account(address)
        if account is None:
            return TimestampNonceState()
        nonces = tuple(account.timestamp_nonces)
        ejected = account.max_ejected_nonce
        return TimestampNonceState(nonces, ejected, bool(nonces) or ejected > 0)
