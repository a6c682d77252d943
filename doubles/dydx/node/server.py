"""The gRPC node double's transaction processing: CheckTx, delivery, broadcast, GetTx."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import grpc
from google.protobuf.message import Message
from v4_proto.cosmos.base.abci.v1beta1.abci_pb2 import TxResponse
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.dydxprotocol.accountplus.tx_pb2 import MsgAddAuthenticator, MsgRemoveAuthenticator
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder
from v4_proto.dydxprotocol.sending.transfer_pb2 import MsgWithdrawFromSubaccount

from doubles.dydx import auth
from doubles.dydx.auth import SDK, ChainError, DecodedTx
from doubles.dydx.node.codec import _block_time_ms
from doubles.dydx.node.control import NodeControl
from doubles.dydx.node.records import (
    _BASE_GAS,
    _GAS_PER_BYTE,
    _MEMPOOL_CACHE_SIZE,
    USDC_ASSET_ID,
    USDC_ATOMIC_RESOLUTION,
    BroadcastRecord,
    TxOutcome,
    _TxResultLike,
)


class NodeServer(NodeControl):
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
