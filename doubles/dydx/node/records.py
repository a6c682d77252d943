"""Constants, state protocols, broadcast records and faults of the gRPC node double."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from google.protobuf.message import Message
from v4_proto.dydxprotocol.clob import clob_pair_pb2

# USDC is asset 0 with atomic resolution -6 on dYdX.
USDC_ASSET_ID = 0
USDC_ATOMIC_RESOLUTION = -6
# MarketPrice exponents (price = value · 10^exponent), picked like mainnet's; others get -9.
_PRICE_EXPONENTS = {"BTC-USD": -5, "ETH-USD": -6, "SOL-USD": -8}
# Roughly what a dYdX node reports for a non-clob tx; clob txs run on a free gas meter.
_BASE_GAS = 80_000
_GAS_PER_BYTE = 10
# CometBFT's default mempool cache size.
_MEMPOOL_CACHE_SIZE = 10_000

_CLOB_PAIR_STATUS = {
    "ACTIVE": clob_pair_pb2.ClobPair.Status.STATUS_ACTIVE,
    "PAUSED": clob_pair_pb2.ClobPair.Status.STATUS_PAUSED,
    "CANCEL_ONLY": clob_pair_pb2.ClobPair.Status.STATUS_CANCEL_ONLY,
    "POST_ONLY": clob_pair_pb2.ClobPair.Status.STATUS_POST_ONLY,
    "INITIALIZING": clob_pair_pb2.ClobPair.Status.STATUS_INITIALIZING,
    "FINAL_SETTLEMENT": clob_pair_pb2.ClobPair.Status.STATUS_FINAL_SETTLEMENT,
}

R = TypeVar("R")


# --- what the node needs from ChainState ------------------------------------------------------


class _TxResultLike(Protocol):
    code: int
    codespace: str
    log: str


class _AccountLike(Protocol):
    address: str
    account_number: int
    sequence: int
    pub_key: bytes | None
    timestamp_nonces: list[int]
    max_ejected_nonce: int


class _AuthenticatorLike(Protocol):
    id: int
    type: str
    config: bytes


# --- records and faults -----------------------------------------------------------------------


@dataclass
class BroadcastRecord:
    """One ``BroadcastTx`` call as the node saw it.

    Attributes:
        received_perf_ns: ``time.perf_counter_ns()`` when the call reached the handler.
        received_wall_ns: ``time.time_ns()`` at the same moment.
        tx_bytes: The broadcast bytes.
        tx_hash: Upper-case hex SHA-256 of ``tx_bytes``.
        mode: The requested ``BroadcastMode`` value.
        messages: Decoded messages (empty when the bytes did not decode).
        type_urls: Their type URLs.
        selected_authenticators: ``TxExtension`` ids, or None.
        fault: ``"reject"``, ``"hang"`` or ``"unavailable"`` when an injected fault applied.
        status: ``"pending"`` until answered, then ``"answered"``, ``"aborted"`` (injected
            gRPC error), ``"cancelled"`` (the client gave up, e.g. its deadline passed) or
            ``"error"`` (the double itself failed).
        processed: Whether the chain state saw the transaction (CheckTx ran).
        code: ABCI code of the answer (None until known).
        codespace: Its codespace.
        raw_log: Its raw log.
        height: Chain height when the transaction was processed.
        answered_perf_ns: ``time.perf_counter_ns()`` when the handler finished.
    """

    received_perf_ns: int
    received_wall_ns: int
    tx_bytes: bytes
    tx_hash: str
    mode: int
    messages: tuple[Message, ...] = ()
    type_urls: tuple[str, ...] = ()
    selected_authenticators: tuple[int, ...] | None = None
    fault: str | None = None
    status: str = "pending"
    processed: bool = False
    code: int | None = None
    codespace: str = ""
    raw_log: str = ""
    height: int = 0
    answered_perf_ns: int | None = None

    @property
    def accepted(self) -> bool:
        """True when CheckTx accepted the transaction (code 0 and it was processed)."""
        return self.processed and self.code == 0


@dataclass(frozen=True)
class _Rejection:
    code: int
    codespace: str
    log: str


#: Which broadcasts a fault applies to, from the transaction's decoded messages (empty when
#: the bytes do not decode); see :mod:`doubles.dydx.orders` for ready-made ones.
BroadcastMatch = Callable[[tuple[Message, ...]], bool]


@dataclass(frozen=True)
class _Hang:
    seconds: float
    process_first: bool
    when: BroadcastMatch | None = None


@dataclass
class _Faults:
    rejections: deque[_Rejection] = field(default_factory=deque)
    hangs: deque[_Hang] = field(default_factory=deque)
    unavailable: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class TxOutcome:
    """What CheckTx answered for one transaction.

    Attributes:
        code: ABCI code (0 = accepted).
        codespace: Codespace of a refusal.
        raw_log: The raw log.
        gas_wanted: The fee's gas limit.
        gas_used: Gas the double reports (0 for clob txs, which run on a free gas meter).
    """

    code: int
    codespace: str
    raw_log: str
    gas_wanted: int = 0
    gas_used: int = 0
