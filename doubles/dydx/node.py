"""gRPC node of the dYdX v4 double: what ``dydx_v4_client.node.client.NodeClient`` talks to.

A ``grpc.aio`` server built from the v4_proto ``*Servicer`` classes, serving one
:class:`~doubles.dydx.state.ChainState` (shared with the Indexer double). It runs on the
double's own event loop; every handler runs to completion between awaits, so the state is only
touched from that loop.

Services:

* ``cosmos.tx.v1beta1.Service``: ``BroadcastTx`` (decode, authenticate as the chain's ante
  handler does — see :mod:`doubles.dydx.auth` — then apply the messages), ``Simulate``
  and ``GetTx``;
* ``cosmos.auth.v1beta1.Query/Account``, ``cosmos.bank.v1beta1.Query`` balances (always empty:
  the double keeps USDC in subaccounts only);
* ``cosmos.base.tendermint.v1beta1.Service``: ``GetLatestBlock``, ``GetNodeInfo``;
* ``dydxprotocol.accountplus.Query``, ``dydxprotocol.clob.Query`` (clob pairs),
  ``dydxprotocol.prices.Query``, ``dydxprotocol.perpetuals.Query`` and
  ``dydxprotocol.subaccounts.Query``.

Transaction answers follow cosmos-sdk's SYNC broadcast: ``tx_response{txhash, code, codespace,
raw_log}`` with ``height`` 0 (CheckTx has no height), and a byte-identical re-broadcast of a
transaction CheckTx already accepted answers ``code 19`` / ``sdk`` with an empty raw log (what
``CheckCometError`` makes of CometBFT's "tx already exists in cache"). Deviation from the chain,
kept because it helps tests: message-execution errors of non-clob messages (e.g. an invalid
``MsgAddAuthenticator``) are answered at once instead of only in the block result; the ante
changes (sequence) are still kept, as on the chain.

Tests drive faults with :meth:`NodeServer.reject_next`, :meth:`NodeServer.hang` and
:meth:`NodeServer.unavailable`, and read every received broadcast in
:attr:`NodeServer.broadcasts`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_grpc
from v4_proto.cosmos.auth.v1beta1.auth_pb2 import BaseAccount
from v4_proto.cosmos.bank.v1beta1 import query_pb2 as bank_query
from v4_proto.cosmos.bank.v1beta1 import query_pb2_grpc as bank_grpc
from v4_proto.cosmos.base.abci.v1beta1.abci_pb2 import GasInfo, TxResponse
from v4_proto.cosmos.base.abci.v1beta1.abci_pb2 import Result as AbciResult
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_grpc
from v4_proto.cosmos.base.tendermint.v1beta1 import types_pb2 as tm_types
from v4_proto.cosmos.base.v1beta1.coin_pb2 import Coin
from v4_proto.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.cosmos.tx.v1beta1 import service_pb2_grpc as tx_grpc
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import Tx, TxRaw
from v4_proto.dydxprotocol.accountplus import accountplus_pb2, models_pb2, params_pb2
from v4_proto.dydxprotocol.accountplus import query_pb2 as ap_query
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as ap_grpc
from v4_proto.dydxprotocol.accountplus.tx_pb2 import MsgAddAuthenticator, MsgRemoveAuthenticator
from v4_proto.dydxprotocol.clob import clob_pair_pb2
from v4_proto.dydxprotocol.clob import query_pb2 as clob_query
from v4_proto.dydxprotocol.clob import query_pb2_grpc as clob_grpc
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder
from v4_proto.dydxprotocol.perpetuals import perpetual_pb2
from v4_proto.dydxprotocol.perpetuals import query_pb2 as perp_query
from v4_proto.dydxprotocol.perpetuals import query_pb2_grpc as perp_grpc
from v4_proto.dydxprotocol.prices import market_price_pb2
from v4_proto.dydxprotocol.prices import query_pb2 as prices_query
from v4_proto.dydxprotocol.prices import query_pb2_grpc as prices_grpc
from v4_proto.dydxprotocol.sending.transfer_pb2 import MsgWithdrawFromSubaccount
from v4_proto.dydxprotocol.subaccounts import (
    asset_position_pb2,
    perpetual_position_pb2,
    subaccount_pb2,
)
from v4_proto.dydxprotocol.subaccounts import query_pb2 as sub_query
from v4_proto.dydxprotocol.subaccounts import query_pb2_grpc as sub_grpc
from v4_proto.tendermint.p2p.types_pb2 import DefaultNodeInfo
from v4_proto.tendermint.types.block_pb2 import Block as TmBlock
from v4_proto.tendermint.types.types_pb2 import BlockID
from v4_proto.tendermint.types.types_pb2 import Header as TmHeader

from doubles.dydx import auth
from doubles.dydx.auth import SDK, AccountInfo, ChainError, DecodedTx, TimestampNonceState

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


# --- the node ---------------------------------------------------------------------------------


class NodeServer:
    """A running gRPC node double.

    Create it with :func:`start_node`. Fault injection and the broadcast record are safe to use
    from any thread (tests usually run on another loop than the double's).

    Attributes:
        state: The served ChainState.
        host: Bound host.
        port: Bound port.
        clob_pair_filter_fail_closed: Make ``ClobPairIdFilter`` refuse non-clob messages (a
            later v4-chain revision) instead of skipping them (the released behaviour).
    """

    def __init__(self, state: Any, host: str) -> None:
        self.state = state
        self.host = host
        self.port = 0
        self.clob_pair_filter_fail_closed = False
        # A node run without a transaction index (``tx_index = "null"``) answers every GetTx
        # with "not found", included or not.
        self.tx_index = True
        self._server: grpc.aio.Server | None = None
        self._lock = threading.Condition()
        self._faults = _Faults()
        self._records: list[BroadcastRecord] = []
        self._cache: OrderedDict[str, None] = OrderedDict()
        self._included: dict[str, tuple[bytes, int, TxOutcome]] = {}
        self._view = _StateView(state)

    # ---------------------------------------------------------------- lifecycle

    @property
    def target(self) -> str:
        """``host:port`` for ``grpc.insecure_channel`` / ``make_insecure(node_url=...)``."""
        return f"{self.host}:{self.port}"

    async def stop(self, grace: float = 0.0) -> None:
        """Stop serving; pending calls (e.g. hanging ones) are cancelled after ``grace``."""
        if self._server is not None:
            await self._server.stop(grace)
            self._server = None

    # ---------------------------------------------------------------- fault injection

    def reject_next(
        self, n: int = 1, code: int = 5001, codespace: str = "clob", log: str = ""
    ) -> None:
        """Answer the next ``n`` broadcasts with an error, without processing them.

        Args:
            n: How many broadcasts.
            code: ABCI code to answer.
            codespace: Its codespace.
            log: Raw log to answer; defaults to ``"injected rejection"``.
        """
        with self._lock:
            for _ in range(n):
                self._faults.rejections.append(
                    _Rejection(code, codespace, log or "injected rejection")
                )

    def hang(
        self,
        seconds: float,
        n: int = 1,
        *,
        process_first: bool = True,
        when: BroadcastMatch | None = None,
    ) -> None:
        """Delay the answer of the next ``n`` broadcasts (of those ``when`` matches) by
        ``seconds``.

        The Python client sets no gRPC deadline, so without one of its own a product waits the
        whole delay. A broadcast takes the earliest queued hang it matches; one no hang
        matches is answered at once.

        Args:
            seconds: Delay.
            n: How many broadcasts.
            process_first: True: the transaction is processed (and accepted if valid) before
                the delay, as when a node is slow to answer — a retry of the same bytes then
                meets ``tx already in mempool`` (19). False: the delay comes first and a call
                the client abandons is never processed.
            when: Only broadcasts whose decoded messages it accepts are held (e.g.
                ``orders.placing(CONDITION_TYPE_TAKE_PROFIT)``, ``orders.cancelling()``);
                None: any broadcast.
        """
        with self._lock:
            for _ in range(n):
                self._faults.hangs.append(_Hang(seconds, process_first, when))

    def unavailable(self, n: int = 1, method: str = "BroadcastTx") -> None:
        """Abort the next ``n`` calls of ``method`` with gRPC ``UNAVAILABLE``.

        Args:
            n: How many calls.
            method: RPC method name (``"BroadcastTx"``, ``"Account"``...) or ``"*"`` for all.
        """
        with self._lock:
            self._faults.unavailable[method] = self._faults.unavailable.get(method, 0) + n

    def clear_faults(self) -> None:
        """Drop every pending injected fault."""
        with self._lock:
            self._faults = _Faults()

    # ---------------------------------------------------------------- the record

    @property
    def broadcasts(self) -> list[BroadcastRecord]:
        """Every ``BroadcastTx`` received so far, in arrival order (a snapshot list)."""
        with self._lock:
            return list(self._records)

    def wait_for_broadcasts(
        self,
        count: int,
        timeout: float = 5.0,
        predicate: Callable[[BroadcastRecord], bool] | None = None,
    ) -> list[BroadcastRecord]:
        """Block until ``count`` matching broadcasts have been answered (thread-safe).

        Args:
            count: How many records to wait for.
            timeout: Seconds to wait at most.
            predicate: Which records count; default all.

        Returns:
            The matching answered records.

        Raises:
            TimeoutError: Fewer arrived in time.
        """
        deadline = time.monotonic() + timeout

        def matching() -> list[BroadcastRecord]:
            return [
                r
                for r in self._records
                if r.status != "pending" and (predicate is None or predicate(r))
            ]

        with self._lock:
            while len(found := matching()) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{len(found)} of {count} broadcasts after {timeout}s")
                self._lock.wait(remaining)
            return found

    def clear_broadcasts(self) -> None:
        """Forget the broadcasts recorded so far."""
        with self._lock:
            self._records.clear()

    # ---------------------------------------------------------------- gates

    def _take_unavailable(self, method: str) -> bool:
        with self._lock:
            for key in (method, "*"):
                if self._faults.unavailable.get(key, 0) > 0:
                    self._faults.unavailable[key] -= 1
                    return True
        return False

    async def _gate(self, method: str, context: grpc.aio.ServicerContext) -> None:
        if self._take_unavailable(method):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: node unavailable")

    def _take_broadcast_faults(
        self, record: BroadcastRecord
    ) -> tuple[_Rejection | None, _Hang | None]:
        with self._lock:
            rejection = self._faults.rejections.popleft() if self._faults.rejections else None
            hangs = self._faults.hangs
            if any(h.when is not None for h in hangs):
                # Decoded now, so a held record shows what it holds before CheckTx runs.
                with contextlib.suppress(ChainError):
                    decoded = auth.decode_tx(record.tx_bytes)
                    record.messages = decoded.messages
                    record.type_urls = decoded.type_urls
                    record.selected_authenticators = decoded.selected_authenticators
            hang = next((h for h in hangs if h.when is None or h.when(record.messages)), None)
            if hang is not None:
                hangs.remove(hang)
        return rejection, hang

    def _finish(self, record: BroadcastRecord, status: str) -> None:
        with self._lock:
            if record.status == "pending":
                record.status = status
                record.answered_perf_ns = time.perf_counter_ns()
                self._lock.notify_all()

    # ---------------------------------------------------------------- CheckTx

    def check_tx(self, tx_bytes: bytes, record: BroadcastRecord | None = None) -> TxOutcome:
        """Run CheckTx on ``tx_bytes`` and apply it to the state if accepted.

        Runs synchronously on the double's loop. Exposed for benchmarks that bypass gRPC.

        Args:
            tx_bytes: Broadcast bytes.
            record: Record to fill with the decoded content, if any.

        Returns:
            The answer (code, codespace, raw log).
        """
        tx_hash = auth.tx_hash(tx_bytes)
        if tx_hash in self._cache:
            return TxOutcome(19, SDK, "")
        try:
            decoded = auth.decode_tx(tx_bytes)
        except ChainError as exc:
            return TxOutcome(exc.code, exc.codespace, exc.log)
        if record is not None:
            record.messages = decoded.messages
            record.type_urls = decoded.type_urls
            record.selected_authenticators = decoded.selected_authenticators
        try:
            ante = auth.run_ante(
                decoded,
                self._view,
                chain_id=self.state.chain_id,
                block_time_ms=_block_time_ms(self.state.block_time),
                clob_pair_filter_fail_closed=self.clob_pair_filter_fail_closed,
            )
        except ChainError as exc:
            return TxOutcome(exc.code, exc.codespace, exc.log)
        gas_wanted = decoded.auth_info.fee.gas_limit
        if self._is_clob_tx(decoded):
            # The clob decorator runs in CheckTx: a refusal there rolls back the ante changes.
            # The state files a deferred stateful placement's DeliverTx result under this hash.
            self.state.current_tx_hash = decoded.tx_hash
            try:
                result: _TxResultLike = self._deliver_clob(decoded.messages[0])
            finally:
                self.state.current_tx_hash = None
            if result.code != 0:
                return TxOutcome(result.code, result.codespace, result.log, gas_wanted)
            self._apply_ante(ante)
            outcome = TxOutcome(0, "", "", gas_wanted)
        else:
            # Other messages execute in the block, after the ante changes were committed.
            self._apply_ante(ante)
            outcome = self._deliver_other(decoded, gas_wanted)
        self._remember(decoded, outcome, short_term=ante.short_term)
        return outcome

    @staticmethod
    def _is_clob_tx(decoded: DecodedTx) -> bool:
        return any(
            isinstance(m, MsgPlaceOrder | MsgCancelOrder | MsgBatchCancel) for m in decoded.messages
        )

    def _apply_ante(self, ante: auth.AnteOutcome) -> None:
        for address, pub_key in ante.set_pub_keys.items():
            account = self.state.get_account(address)
            if account is not None and account.pub_key is None:
                account.pub_key = pub_key
        for address, nonce_state in ante.nonce_updates.items():
            account = self.state.get_account(address)
            if account is not None:
                account.timestamp_nonces = list(nonce_state.nonces)
                account.max_ejected_nonce = nonce_state.max_ejected
        for address in ante.increment_sequence:
            account = self.state.get_account(address)
            if account is not None:
                account.sequence += 1

    def _remember(self, decoded: DecodedTx, outcome: TxOutcome, *, short_term: bool) -> None:
        self._cache[decoded.tx_hash] = None
        while len(self._cache) > _MEMPOOL_CACHE_SIZE:
            self._cache.popitem(last=False)
        if not short_term:
            # Short-term clob txs never enter a block (only their matches do), so GetTx can't
            # find them on the chain either.
            self._included[decoded.tx_hash] = (decoded.raw, self.state.height + 1, outcome)

    def _deliver_clob(self, message: Message) -> _TxResultLike:
        if isinstance(message, MsgPlaceOrder):
            result: _TxResultLike = self.state.place_order(message.order)
        elif isinstance(message, MsgCancelOrder):
            which = message.WhichOneof("good_til_oneof")
            result = self.state.cancel_order(
                message.order_id,
                good_til_block=message.good_til_block if which == "good_til_block" else 0,
                good_til_block_time=(
                    message.good_til_block_time if which == "good_til_block_time" else 0
                ),
            )
        else:
            assert isinstance(message, MsgBatchCancel)
            result = self.state.batch_cancel(
                message.subaccount_id, list(message.short_term_cancels), message.good_til_block
            )
        return result

    def _deliver_other(self, decoded: DecodedTx, gas_wanted: int) -> TxOutcome:
        gas_used = _BASE_GAS + _GAS_PER_BYTE * len(decoded.raw)
        for index, message in enumerate(decoded.messages):
            try:
                self._execute(message)
            except ChainError as exc:
                failed = exc.wrap(f"failed to execute message; message index: {index}")
                return TxOutcome(failed.code, failed.codespace, failed.log, gas_wanted, gas_used)
        return TxOutcome(0, "", "", gas_wanted, gas_used)

    def _execute(self, message: Message) -> None:
        state = self.state
        if isinstance(message, MsgAddAuthenticator):
            if not auth.is_valid_address(message.sender):
                raise ChainError.registered(auth.ACCOUNTPLUS, 2)
            next_id = int(getattr(state, "_next_authenticator_id", 0))
            auth.validate_new_authenticator(message.authenticator_type, message.data, next_id)
            try:
                state.add_authenticator(message.sender, message.authenticator_type, message.data)
            except ValueError as exc:  # the state's own OnAuthenticatorAdded disagreed
                raise ChainError.internal() from exc
            return
        if isinstance(message, MsgRemoveAuthenticator):
            if state.get_authenticator(message.sender, message.id) is None:
                raise ChainError.registered(
                    auth.ACCOUNTPLUS,
                    1,
                    f"RemoveAuthenticator: failed to get authenticator {message.id} "
                    f"for address {message.sender}",
                )
            state.remove_authenticator(message.sender, message.id)
            return
        if isinstance(message, MsgWithdrawFromSubaccount) and message.asset_id == USDC_ASSET_ID:
            amount = Decimal(message.quantums).scaleb(USDC_ATOMIC_RESOLUTION)
            result = state.withdraw(message.sender.owner, message.sender.number, amount)
            if result.code != 0:
                raise ChainError(result.codespace, result.code, result.log)
            return
        raise ChainError.registered(
            SDK,
            6,
            f"the dYdX double does not execute {auth.type_url(message)} (only clob orders, "
            "authenticators and USDC withdrawals)",
        )

    def simulate(self, tx_bytes: bytes) -> TxOutcome:
        """Run the ante checks in simulate mode (no signature checks, no state change)."""
        decoded = auth.decode_tx(tx_bytes)
        auth.run_ante(
            decoded,
            self._view,
            chain_id=self.state.chain_id,
            block_time_ms=_block_time_ms(self.state.block_time),
            simulate=True,
            clob_pair_filter_fail_closed=self.clob_pair_filter_fail_closed,
        )
        gas_used = 0 if self._is_clob_tx(decoded) else _BASE_GAS + _GAS_PER_BYTE * len(tx_bytes)
        return TxOutcome(0, "", "", decoded.auth_info.fee.gas_limit, gas_used)

    async def broadcast(
        self, request: tx_service.BroadcastTxRequest, context: grpc.aio.ServicerContext
    ) -> tx_service.BroadcastTxResponse:
        """Handle ``BroadcastTx``: faults, CheckTx, record."""
        record = BroadcastRecord(
            received_perf_ns=time.perf_counter_ns(),
            received_wall_ns=time.time_ns(),
            tx_bytes=bytes(request.tx_bytes),
            tx_hash=auth.tx_hash(request.tx_bytes),
            mode=int(request.mode),
        )
        with self._lock:
            self._records.append(record)
        status = "error"
        try:
            if self._take_unavailable("BroadcastTx"):
                record.fault = "unavailable"
                # Settle the record first: the client may see the abort before we resume.
                self._finish(record, "aborted")
                await context.abort(grpc.StatusCode.UNAVAILABLE, "injected: node unavailable")
            rejection, hang = self._take_broadcast_faults(record)
            if hang is not None:
                record.fault = "hang"
                if not hang.process_first:
                    await asyncio.sleep(hang.seconds)
            if rejection is not None:
                record.fault = "reject"
                outcome = TxOutcome(rejection.code, rejection.codespace, rejection.log)
            else:
                outcome = self.check_tx(record.tx_bytes, record)
                record.processed = True
            record.code, record.codespace, record.raw_log = (
                outcome.code,
                outcome.codespace,
                outcome.raw_log,
            )
            record.height = self.state.height
            if hang is not None and hang.process_first:
                await asyncio.sleep(hang.seconds)
            response = self._tx_response(record, outcome, request.mode)
            status = "answered"
            return response
        except asyncio.CancelledError:
            status = "cancelled"  # the client went away (deadline, cancel) or the node stops
            raise
        finally:
            self._finish(record, status)

    @staticmethod
    def _tx_response(
        record: BroadcastRecord, outcome: TxOutcome, mode: int
    ) -> tx_service.BroadcastTxResponse:
        if mode == tx_service.BroadcastMode.BROADCAST_MODE_ASYNC:
            # ASYNC returns before CheckTx: only the hash.
            return tx_service.BroadcastTxResponse(tx_response=TxResponse(txhash=record.tx_hash))
        return tx_service.BroadcastTxResponse(
            tx_response=TxResponse(
                height=0,
                txhash=record.tx_hash,
                code=outcome.code,
                codespace=outcome.codespace,
                raw_log=outcome.raw_log,
            )
        )

    def included_tx(self, tx_hash: str) -> tuple[bytes, int, TxOutcome] | None:
        """``(tx_bytes, height, outcome)`` of an accepted, block-included transaction.

        A stateful placement that passed CheckTx but failed in DeliverTx shows its DeliverTx
        error, wrapped like cosmos-sdk's ``runMsgs`` does.
        """
        found = self._included.get(tx_hash.upper())
        if found is None:
            return None
        tx_bytes, height, outcome = found
        failed = getattr(self.state, "deliver_results", {}).get(tx_hash.upper())
        if failed is not None:
            outcome = TxOutcome(
                failed.code,
                failed.codespace,
                f"failed to execute message; message index: 0: {failed.log}",
                outcome.gas_wanted,
                outcome.gas_used,
            )
        return tx_bytes, height, outcome


# --- servicers --------------------------------------------------------------------------------


def _gated(
    method: str,
) -> Callable[[Callable[..., Awaitable[R]]], Callable[..., Awaitable[R]]]:
    """Apply :meth:`NodeServer.unavailable` faults to a servicer method."""

    def decorate(fn: Callable[..., Awaitable[R]]) -> Callable[..., Awaitable[R]]:
        async def wrapper(self: _Servicer, request: Any, context: grpc.aio.ServicerContext) -> R:
            await self.node._gate(method, context)
            return await fn(self, request, context)

        wrapper.__name__ = fn.__name__
        wrapper.__doc__ = fn.__doc__
        return wrapper

    return decorate


class _Servicer:
    def __init__(self, node: NodeServer) -> None:
        self.node = node

    @property
    def state(self) -> Any:
        return self.node.state


class _TxService(_Servicer, tx_grpc.ServiceServicer):
    async def BroadcastTx(
        self, request: tx_service.BroadcastTxRequest, context: grpc.aio.ServicerContext
    ) -> tx_service.BroadcastTxResponse:
        return await self.node.broadcast(request, context)

    @_gated("Simulate")
    async def Simulate(
        self, request: tx_service.SimulateRequest, context: grpc.aio.ServicerContext
    ) -> tx_service.SimulateResponse:
        tx_bytes = bytes(request.tx_bytes) if request.tx_bytes else _raw_from_tx(request.tx)
        try:
            outcome = self.node.simulate(tx_bytes)
        except ChainError as exc:
            await context.abort(
                grpc.StatusCode.UNKNOWN,
                f"{exc.log} With gas wanted: '0' and gas used: '{_BASE_GAS}' ",
            )
        return tx_service.SimulateResponse(
            gas_info=GasInfo(gas_wanted=outcome.gas_wanted, gas_used=outcome.gas_used),
            result=AbciResult(),
        )

    @_gated("GetTx")
    async def GetTx(
        self, request: tx_service.GetTxRequest, context: grpc.aio.ServicerContext
    ) -> tx_service.GetTxResponse:
        found = self.node.included_tx(request.hash) if self.node.tx_index else None
        if found is None or found[1] > self.state.height:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"tx not found: {request.hash}")
        assert found is not None
        tx_bytes, height, outcome = found
        return tx_service.GetTxResponse(
            tx=_tx_from_raw(tx_bytes),
            tx_response=TxResponse(
                height=height,
                txhash=request.hash.upper(),
                code=outcome.code,
                codespace=outcome.codespace,
                raw_log=outcome.raw_log,
                gas_wanted=outcome.gas_wanted,
                gas_used=outcome.gas_used,
            ),
        )


class _AuthQuery(_Servicer, auth_grpc.QueryServicer):
    @_gated("Account")
    async def Account(
        self, request: auth_query.QueryAccountRequest, context: grpc.aio.ServicerContext
    ) -> auth_query.QueryAccountResponse:
        if not auth.is_valid_address(request.address):
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"invalid address: {request.address}"
            )
        account: _AccountLike | None = self.state.get_account(request.address)
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"account {request.address} not found")
        assert account is not None
        base = BaseAccount(
            address=account.address,
            account_number=account.account_number,
            sequence=account.sequence,
        )
        if account.pub_key is not None:
            base.pub_key.Pack(PubKey(key=account.pub_key), type_url_prefix="/")
        packed = AnyProto()
        packed.Pack(base, type_url_prefix="/")
        return auth_query.QueryAccountResponse(account=packed)


class _BankQuery(_Servicer, bank_grpc.QueryServicer):
    @_gated("AllBalances")
    async def AllBalances(
        self, request: bank_query.QueryAllBalancesRequest, context: grpc.aio.ServicerContext
    ) -> bank_query.QueryAllBalancesResponse:
        return bank_query.QueryAllBalancesResponse()

    @_gated("Balance")
    async def Balance(
        self, request: bank_query.QueryBalanceRequest, context: grpc.aio.ServicerContext
    ) -> bank_query.QueryBalanceResponse:
        return bank_query.QueryBalanceResponse(balance=Coin(denom=request.denom, amount="0"))


class _TendermintService(_Servicer, tm_grpc.ServiceServicer):
    def _header(self) -> TmHeader:
        height = self.state.height
        return TmHeader(
            chain_id=self.state.chain_id,
            height=height,
            time=_timestamp(self.state.block_time),
            app_hash=hashlib.sha256(f"app-{height}".encode()).digest(),
        )

    @_gated("GetLatestBlock")
    async def GetLatestBlock(
        self, request: tm_query.GetLatestBlockRequest, context: grpc.aio.ServicerContext
    ) -> tm_query.GetLatestBlockResponse:
        header = self._header()
        block_hash = hashlib.sha256(f"block-{header.height}".encode()).digest()
        sdk_header = tm_types.Header(
            chain_id=header.chain_id,
            height=header.height,
            time=header.time,
            app_hash=header.app_hash,
        )
        return tm_query.GetLatestBlockResponse(
            block_id=BlockID(hash=block_hash),
            block=TmBlock(header=header),
            sdk_block=tm_types.Block(header=sdk_header),
        )

    @_gated("GetNodeInfo")
    async def GetNodeInfo(
        self, request: tm_query.GetNodeInfoRequest, context: grpc.aio.ServicerContext
    ) -> tm_query.GetNodeInfoResponse:
        return tm_query.GetNodeInfoResponse(
            default_node_info=DefaultNodeInfo(
                network=self.state.chain_id, version="0.38.17", moniker="dydx-double"
            ),
            application_version=tm_query.VersionInfo(
                name="dydxprotocol",
                app_name="dydxprotocold",
                version="9.5.0-double",
                cosmos_sdk_version="v0.50.14",
            ),
        )

    @_gated("GetSyncing")
    async def GetSyncing(
        self, request: tm_query.GetSyncingRequest, context: grpc.aio.ServicerContext
    ) -> tm_query.GetSyncingResponse:
        return tm_query.GetSyncingResponse(syncing=False)


class _AccountplusQuery(_Servicer, ap_grpc.QueryServicer):
    @_gated("Params")
    async def Params(
        self, request: ap_query.QueryParamsRequest, context: grpc.aio.ServicerContext
    ) -> ap_query.QueryParamsResponse:
        return ap_query.QueryParamsResponse(params=params_pb2.Params(is_smart_account_active=True))

    @_gated("GetAuthenticators")
    async def GetAuthenticators(
        self, request: ap_query.GetAuthenticatorsRequest, context: grpc.aio.ServicerContext
    ) -> ap_query.GetAuthenticatorsResponse:
        if not auth.is_valid_address(request.account):
            await context.abort(
                grpc.StatusCode.UNKNOWN, f"decoding bech32 failed: {request.account}"
            )
        records: list[_AuthenticatorLike] = self.state.get_authenticators(request.account)
        return ap_query.GetAuthenticatorsResponse(
            account_authenticators=[
                models_pb2.AccountAuthenticator(id=r.id, type=r.type, config=bytes(r.config))
                for r in records
            ]
        )

    @_gated("GetAuthenticator")
    async def GetAuthenticator(
        self, request: ap_query.GetAuthenticatorRequest, context: grpc.aio.ServicerContext
    ) -> ap_query.GetAuthenticatorResponse:
        record: _AuthenticatorLike | None = self.state.get_authenticator(
            request.account, request.authenticator_id
        )
        if record is None:
            error = ChainError.registered(
                auth.ACCOUNTPLUS,
                1,
                f"authenticator {request.authenticator_id} not found for account {request.account}",
            )
            await context.abort(grpc.StatusCode.UNKNOWN, error.log)
        assert record is not None
        return ap_query.GetAuthenticatorResponse(
            account_authenticator=models_pb2.AccountAuthenticator(
                id=record.id, type=record.type, config=bytes(record.config)
            )
        )

    @_gated("AccountState")
    async def AccountState(
        self, request: ap_query.AccountStateRequest, context: grpc.aio.ServicerContext
    ) -> ap_query.AccountStateResponse:
        account: _AccountLike | None = self.state.get_account(request.address)
        if account is None or not (account.timestamp_nonces or account.max_ejected_nonce):
            await context.abort(
                grpc.StatusCode.NOT_FOUND, f"account state not found for {request.address}"
            )
        assert account is not None
        return ap_query.AccountStateResponse(
            account_state=accountplus_pb2.AccountState(
                address=account.address,
                timestamp_nonce_details=accountplus_pb2.TimestampNonceDetails(
                    timestamp_nonces=list(account.timestamp_nonces),
                    max_ejected_nonce=account.max_ejected_nonce,
                ),
            )
        )


def _clob_pair(market: Any) -> clob_pair_pb2.ClobPair:
    return clob_pair_pb2.ClobPair(
        id=market.clob_pair_id,
        perpetual_clob_metadata=clob_pair_pb2.PerpetualClobMetadata(
            perpetual_id=market.clob_pair_id
        ),
        step_base_quantums=market.step_base_quantums,
        subticks_per_tick=market.subticks_per_tick,
        quantum_conversion_exponent=market.quantum_conversion_exponent,
        status=_CLOB_PAIR_STATUS.get(market.status, clob_pair_pb2.ClobPair.Status.STATUS_ACTIVE),
    )


def _market_price(market: Any) -> market_price_pb2.MarketPrice:
    exponent = _PRICE_EXPONENTS.get(market.ticker, -9)
    price = int(Decimal(market.oracle_price).scaleb(-exponent).to_integral_value(ROUND_FLOOR))
    return market_price_pb2.MarketPrice(id=market.market_id, exponent=exponent, price=price)


class _ClobQuery(_Servicer, clob_grpc.QueryServicer):
    @_gated("ClobPair")
    async def ClobPair(
        self, request: clob_query.QueryGetClobPairRequest, context: grpc.aio.ServicerContext
    ) -> clob_query.QueryClobPairResponse:
        market = self.state.market_by_clob_pair(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return clob_query.QueryClobPairResponse(clob_pair=_clob_pair(market))

    @_gated("ClobPairAll")
    async def ClobPairAll(
        self, request: clob_query.QueryAllClobPairRequest, context: grpc.aio.ServicerContext
    ) -> clob_query.QueryClobPairAllResponse:
        markets = sorted(self.state.markets.values(), key=lambda m: m.clob_pair_id)
        return clob_query.QueryClobPairAllResponse(clob_pair=[_clob_pair(m) for m in markets])


class _PricesQuery(_Servicer, prices_grpc.QueryServicer):
    def _by_market_id(self, market_id: int) -> Any:
        return next((m for m in self.state.markets.values() if m.market_id == market_id), None)

    @_gated("MarketPrice")
    async def MarketPrice(
        self, request: prices_query.QueryMarketPriceRequest, context: grpc.aio.ServicerContext
    ) -> prices_query.QueryMarketPriceResponse:
        market = self._by_market_id(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return prices_query.QueryMarketPriceResponse(market_price=_market_price(market))

    @_gated("AllMarketPrices")
    async def AllMarketPrices(
        self, request: prices_query.QueryAllMarketPricesRequest, context: grpc.aio.ServicerContext
    ) -> prices_query.QueryAllMarketPricesResponse:
        markets = sorted(self.state.markets.values(), key=lambda m: m.market_id)
        return prices_query.QueryAllMarketPricesResponse(
            market_prices=[_market_price(m) for m in markets]
        )


class _PerpetualsQuery(_Servicer, perp_grpc.QueryServicer):
    def _perpetual(self, market: Any) -> perpetual_pb2.Perpetual:
        open_interest = _quantums(self.state.open_interest(market.ticker), market.atomic_resolution)
        market_type = (
            perpetual_pb2.PerpetualMarketType.PERPETUAL_MARKET_TYPE_ISOLATED
            if market.market_type == "ISOLATED"
            else perpetual_pb2.PerpetualMarketType.PERPETUAL_MARKET_TYPE_CROSS
        )
        return perpetual_pb2.Perpetual(
            params=perpetual_pb2.PerpetualParams(
                id=market.clob_pair_id,
                ticker=market.ticker,
                market_id=market.market_id,
                atomic_resolution=market.atomic_resolution,
                market_type=market_type,
            ),
            funding_index=_serializable_int(0),
            open_interest=_serializable_int(open_interest),
        )

    @_gated("Perpetual")
    async def Perpetual(
        self, request: perp_query.QueryPerpetualRequest, context: grpc.aio.ServicerContext
    ) -> perp_query.QueryPerpetualResponse:
        market = self.state.market_by_clob_pair(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        return perp_query.QueryPerpetualResponse(perpetual=self._perpetual(market))

    @_gated("AllPerpetuals")
    async def AllPerpetuals(
        self, request: perp_query.QueryAllPerpetualsRequest, context: grpc.aio.ServicerContext
    ) -> perp_query.QueryAllPerpetualsResponse:
        markets = sorted(self.state.markets.values(), key=lambda m: m.clob_pair_id)
        return perp_query.QueryAllPerpetualsResponse(
            perpetual=[self._perpetual(m) for m in markets]
        )


class _SubaccountsQuery(_Servicer, sub_grpc.QueryServicer):
    def _subaccount(self, owner: str, number: int) -> subaccount_pb2.Subaccount:
        result = subaccount_pb2.Subaccount(
            id=subaccount_pb2.SubaccountId(owner=owner, number=number), margin_enabled=True
        )
        sub = self.state.get_subaccount(owner, number)
        if sub is None:
            # x/subaccounts answers an empty subaccount for an id it has never seen.
            return result
        usdc = _quantums(sub.usdc, USDC_ATOMIC_RESOLUTION)
        if usdc:
            result.asset_positions.append(
                asset_position_pb2.AssetPosition(
                    asset_id=USDC_ASSET_ID, quantums=_serializable_int(usdc)
                )
            )
        for ticker, position in sorted(sub.positions.items()):
            market = self.state.markets[ticker]
            quantums = _quantums(position.size, market.atomic_resolution)
            if quantums == 0:
                continue
            result.perpetual_positions.append(
                perpetual_position_pb2.PerpetualPosition(
                    perpetual_id=market.clob_pair_id,
                    quantums=_serializable_int(quantums),
                    funding_index=_serializable_int(0),
                    quote_balance=_serializable_int(0),
                )
            )
        return result

    @_gated("Subaccount")
    async def Subaccount(
        self, request: sub_query.QueryGetSubaccountRequest, context: grpc.aio.ServicerContext
    ) -> sub_query.QuerySubaccountResponse:
        return sub_query.QuerySubaccountResponse(
            subaccount=self._subaccount(request.owner, request.number)
        )

    @_gated("SubaccountAll")
    async def SubaccountAll(
        self, request: sub_query.QueryAllSubaccountRequest, context: grpc.aio.ServicerContext
    ) -> sub_query.QuerySubaccountAllResponse:
        keys = sorted(self.state.subaccounts)
        return sub_query.QuerySubaccountAllResponse(
            subaccount=[self._subaccount(owner, number) for owner, number in keys]
        )


async def start_node(state: Any, host: str = "127.0.0.1", port: int = 0) -> NodeServer:
    """Start the gRPC node double on the running event loop.

    Args:
        state: The ChainState to serve (only touched from this loop).
        host: Interface to bind (loopback).
        port: Port; 0 picks a free one.

    Returns:
        The running :class:`NodeServer`; ``await node.stop()`` when done.

    Example:
        >>> node = await start_node(state)  # doctest: +SKIP
        >>> channel = grpc.insecure_channel(node.target)  # doctest: +SKIP
        >>> config = NodeConfig(state.chain_id, "adv4tnt", USDC_DENOM, channel)  # doctest: +SKIP
        >>> client = await NodeClient.connect(config)  # doctest: +SKIP
    """
    node = NodeServer(state, host)
    server = grpc.aio.server()
    tx_grpc.add_ServiceServicer_to_server(_TxService(node), server)
    auth_grpc.add_QueryServicer_to_server(_AuthQuery(node), server)
    bank_grpc.add_QueryServicer_to_server(_BankQuery(node), server)
    tm_grpc.add_ServiceServicer_to_server(_TendermintService(node), server)
    ap_grpc.add_QueryServicer_to_server(_AccountplusQuery(node), server)
    clob_grpc.add_QueryServicer_to_server(_ClobQuery(node), server)
    prices_grpc.add_QueryServicer_to_server(_PricesQuery(node), server)
    perp_grpc.add_QueryServicer_to_server(_PerpetualsQuery(node), server)
    sub_grpc.add_QueryServicer_to_server(_SubaccountsQuery(node), server)
    node.port = server.add_insecure_port(f"{host}:{port}")
    if node.port == 0:
        raise OSError(f"could not bind the dYdX node double to {host}:{port}")
    await server.start()
    node._server = server
    return node


__all__ = ["BroadcastMatch", "BroadcastRecord", "NodeServer", "TxOutcome", "start_node"]
