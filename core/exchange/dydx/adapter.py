"""``DydxExchange``: the exchange port on dYdX v4, for one trader's subaccount and API key.

Transactions are built and signed with dydx-v4-client's pure building blocks (``Builder``,
``Wallet``, ``KeyPair``: CPU only, about 0.1 ms per signature, so on the loop) and sent with our
own ``grpc.aio`` client (:mod:`core.exchange.dydx.node`); the client's ``NodeClient`` is never
called, its gRPC calls block the event loop and have no deadline.

Permissioned-key signing: the API key signs, ``TxExtension`` selects the owner's
authenticator, the sign doc carries the *owner's* account number, and the order belongs to
the owner's subaccount. Short-term orders and cancels skip the chain's sequence check (the
sequence is 0); stateful orders and their cancels use a timestamp nonce (>= 2**40) so they
never collide with the owner's own trading, which shares the account sequence.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from coincurve import PrivateKey
from dydx_v4_client.key_pair import KeyPair  # type: ignore[import-untyped]
from dydx_v4_client.node.builder import (  # type: ignore[import-untyped]
    DEFAULT_FEE,
    Builder,
    TxOptions,
)
from dydx_v4_client.node.message import (  # type: ignore[import-untyped]
    cancel_order,
    order,
    order_id,
    place_order,
)
from dydx_v4_client.wallet import Wallet  # type: ignore[import-untyped]
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import TxRaw
from v4_proto.dydxprotocol.clob.order_pb2 import Order

from core.exchange.dydx.constants import CAPABILITIES
from core.exchange.dydx.errors import block_failure, error_from_chain, is_already_placed
from core.exchange.dydx.network import DydxNetwork
from core.exchange.dydx.node import BroadcastAnswer, tx_hash
from core.exchange.dydx.order_codes import CONDITIONS, SIDES, TIME_IN_FORCE, unix_seconds
from core.exchange.dydx.parsing import LIVE_ORDER_STATUSES, indexer_order_id
from core.exchange.dydx.quantize import price_to_subticks, size_to_quantums
from core.exchange.errors import SigningUnavailableError
from core.exchange.orders import (
    MAX_CLIENT_ID,
    CancelResult,
    OrderFlags,
    OrderRequest,
    PlaceResult,
    SignedTx,
    TxResult,
)
from core.exchange.port import Account, Fill, MarketInfo, OpenOrder, Position, VenueCapabilities
from core.exchange.venue import NonceSource
from core.runtime.logs import get_logger

#: A sequence at or above this is a timestamp nonce in milliseconds (``x/accountplus``).
MIN_TIMESTAMP_NONCE = 2**40
MEMO = "tv2dydx"
#: The Indexer's largest page.
MAX_INDEXER_LIMIT = 1000
# Short-term transactions skip the sequence check, and SIGN_MODE_DIRECT signs whatever is set.
_SHORT_TERM_SEQUENCE = 0


class DydxExchange:
    """The :class:`~core.exchange.port.Exchange` port on dYdX v4 for one trader.

    Build it with :meth:`DydxVenue.trader <core.exchange.dydx.venue.DydxVenue.trader>`.
    The API key lives only in this object's memory; it never appears in ``repr``, logs or
    errors.

    Args:
        network: Shared per-process resources (node, Indexer, caches).
        owner_address: The subaccount owner (``dydx1…``).
        subaccount_number: The trading subaccount.
        authenticator_id: The owner's authenticator that authorises the API key.
        private_key: The API key's 32 private key bytes; None reads only.
        nonces: Timestamp nonces for stateful orders.

    Raises:
        ValueError: The key is not a valid secp256k1 private key, or an id is out of range.
    """

    def __init__(
        self,
        network: DydxNetwork,
        *,
        owner_address: str,
        subaccount_number: int,
        authenticator_id: int,
        private_key: bytes | None,
        nonces: NonceSource,
    ) -> None:
        if subaccount_number < 0 or authenticator_id < 0:
            raise ValueError("subaccount number and authenticator id must not be negative")
        if private_key is not None and len(private_key) != 32:
            raise ValueError("the API trading key must be 32 bytes")
        try:  # None: read-only (a process without the keyring reads, never signs)
            self._key = None if private_key is None else KeyPair(PrivateKey(bytes(private_key)))
        except ValueError:
            raise ValueError("the API trading key is not a valid secp256k1 private key") from None
        self._network = network
        self._owner = owner_address
        self._subaccount_number = subaccount_number
        self._authenticator_id = authenticator_id
        self._nonces = nonces
        self._builder = Builder(network.chain_id, "", MEMO)
        self._log = get_logger(
            __name__, owner=owner_address, subaccount=subaccount_number, exchange="dydx"
        )

    def __repr__(self) -> str:
        return (
            f"DydxExchange(owner_address={self._owner!r}, "
            f"subaccount_number={self._subaccount_number}, "
            f"authenticator_id={self._authenticator_id})"
        )

    __str__ = __repr__

    def __reduce__(self) -> Any:
        # Never serialise the key into a job payload, a cache or a crash dump.
        raise TypeError("a DydxExchange holds a private key and cannot be pickled")

    # ---------------------------------------------------------------- identity

    @property
    def is_paper(self) -> bool:
        """Always False: orders go to the chain."""
        return False

    @property
    def capabilities(self) -> VenueCapabilities:
        """dYdX v4's capabilities (the short-term order window)."""
        return CAPABILITIES

    @property
    def owner_address(self) -> str:
        """The subaccount owner (``dydx1…``)."""
        return self._owner

    @property
    def subaccount_number(self) -> int:
        """The trading subaccount number."""
        return self._subaccount_number

    @property
    def authenticator_id(self) -> int:
        """The owner's authenticator selected in every transaction."""
        return self._authenticator_id

    # ---------------------------------------------------------------- reads

    async def block_height(self) -> int:
        """The latest block height (cached for about a second).

        Raises:
            ExchangeUnavailableError: The node did not answer.
        """
        return await self._network.block_height()

    async def indexer_height(self) -> int:
        """The latest block the Indexer processed (``/v4/height``, never cached); raises
        ``ExchangeUnavailableError`` when the Indexer does not answer."""
        return await self._network.indexer.height()

    async def tx_result(self, tx_hash: str) -> TxResult | None:
        """DeliverTx's result of a transaction (``GetTx``), None when no block has it.

        Raises:
            ExchangeUnavailableError: The node did not answer.
        """
        done = await self._network.node.get_tx(tx_hash)
        if done is None:
            return None
        error = block_failure(done.codespace, done.code, done.raw_log) if done.code else None
        return TxResult(tx_hash=done.tx_hash, height=done.height, error=error)

    async def market(self, ticker: str) -> MarketInfo:
        """One market with an oracle price at most about a second old.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self._network.market(ticker)

    async def markets(self) -> dict[str, MarketInfo]:
        """Every listed market by ticker.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self._network.markets()

    async def account(self) -> Account:
        """Equity and free collateral of the subaccount (zero if never funded).

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        account, _ = await self._subaccount()
        return account

    async def positions(self) -> list[Position]:
        """Open positions of the subaccount.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        _, positions = await self._subaccount()
        return positions

    async def _subaccount(self) -> tuple[Account, list[Position]]:
        # account() and positions() asked together (sizing needs both), and every trader of
        # this process asking for the same subaccount meanwhile, share one request; a later
        # call asks again, so nothing is ever served stale.
        return await self._network.subaccount(self._owner, self._subaccount_number)

    async def open_orders(self, market: str | None = None) -> list[OpenOrder]:
        """Live orders (``OPEN``, ``BEST_EFFORT_OPENED``, ``UNTRIGGERED``), optionally of one
        market.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self._network.indexer.orders(
            self._owner,
            self._subaccount_number,
            ticker=market,
            statuses=LIVE_ORDER_STATUSES,
            limit=MAX_INDEXER_LIMIT,
        )

    async def fills(self, market: str | None = None, limit: int = 100) -> list[Fill]:
        """Latest fills, newest first.

        Raises:
            ExchangeUnavailableError: The Indexer did not answer.
        """
        return await self._network.indexer.fills(
            self._owner, self._subaccount_number, market=market, limit=limit
        )

    async def find_order(self, market: str, client_id: int, flags: OrderFlags) -> OpenOrder | None:
        """Our order with this client id in any status, None if the Indexer never saw it.

        The Indexer id is computed locally from the chain's order id: one round trip.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The Indexer did not answer.
        """
        info = await self._network.market_metadata(market)
        found = await self._network.indexer.order(
            indexer_order_id(
                self._owner, self._subaccount_number, client_id, info.clob_pair_id, flags
            )
        )
        if found is not None and (found.client_id, found.flags) != (client_id, flags):
            self._log.warning("indexer_order_mismatch", client_id=client_id)
            return None
        return found

    # ---------------------------------------------------------------- signing

    async def _sequence(self, flags: OrderFlags) -> int:
        if flags is OrderFlags.SHORT_TERM:
            return _SHORT_TERM_SEQUENCE
        nonce = await self._nonces.next_nonce(self._owner)
        if nonce < MIN_TIMESTAMP_NONCE:
            raise ValueError("the nonce source gave a nonce below 2**40")
        return nonce

    def _sign(self, message: Any, *, account_number: int, sequence: int) -> SignedTx:
        if self._key is None:
            raise SigningUnavailableError("this process holds no API trading keys")
        wallet = Wallet(self._key, account_number, sequence)
        options = TxOptions(
            authenticators=[self._authenticator_id],
            sequence=sequence,
            account_number=account_number,
        )
        tx = self._builder.build(wallet, message, DEFAULT_FEE, tx_options=options)
        # TxRaw of exactly the body and auth-info bytes that were signed.
        raw: bytes = TxRaw(
            body_bytes=tx.body.SerializeToString(),
            auth_info_bytes=tx.auth_info.SerializeToString(),
            signatures=list(tx.signatures),
        ).SerializeToString()
        return SignedTx(tx_bytes=raw, tx_hash=tx_hash(raw))

    async def sign_order(self, request: OrderRequest) -> SignedTx:
        """Build and sign an order (``MsgPlaceOrder``) without sending it.

        Sizes and prices must already be on the market's grid: nothing is rounded (a size
        below one step is refused, never enlarged).

        Raises:
            GridError: Size, price or trigger price is not on the market's grid.
            KeyError: The market is not listed.
            ExchangeUnavailableError: The account number or market could not be read.
            ValueError: ``good_til_block_time`` is out of range.
        """
        info = await self._network.market_metadata(request.market)
        quantums = size_to_quantums(request.size, info)
        subticks = price_to_subticks(request.price, info)
        trigger_subticks = (
            price_to_subticks(request.trigger_price, info)
            if request.trigger_price is not None
            else 0
        )
        flags = request.flags
        the_order = order(
            order_id(
                self._owner, self._subaccount_number, request.client_id, info.clob_pair_id, flags
            ),
            SIDES[request.side],
            quantums,
            subticks,
            TIME_IN_FORCE[request.time_in_force],
            request.reduce_only,
            good_til_block=request.good_til_block,
            good_til_block_time=(
                unix_seconds(request.good_til_block_time)
                if request.good_til_block_time is not None
                else None
            ),
            condition_type=CONDITIONS.get(
                request.kind, Order.ConditionType.CONDITION_TYPE_UNSPECIFIED
            ),
            conditional_order_trigger_subticks=trigger_subticks,
        )
        account_number = await self._network.account_number(self._owner)
        sequence = await self._sequence(flags)  # last: a timestamp nonce must be fresh
        signed = self._sign(
            place_order(the_order), account_number=account_number, sequence=sequence
        )
        self._log.debug(
            "order_signed",
            market=request.market,
            client_id=request.client_id,
            flags=int(flags),
            tx_hash=signed.tx_hash,
        )
        return signed

    async def sign_cancel(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> SignedTx:
        """Build and sign the cancel (``MsgCancelOrder``) of one of our orders.

        A short-term order's cancel needs ``good_til_block`` (at or after the order's), a
        stateful order's cancel needs ``good_til_block_time``.

        Raises:
            KeyError: The market is not listed.
            ExchangeUnavailableError: The account number or market could not be read.
            ValueError: The expiry does not match the order's lifetime.
        """
        if not 0 <= client_id <= MAX_CLIENT_ID:
            raise ValueError("client_id must be a uint32")
        if flags is OrderFlags.SHORT_TERM:
            if good_til_block is None or good_til_block_time is not None:
                raise ValueError("a short-term cancel needs good_til_block only")
            expiry: dict[str, int] = {"good_til_block": good_til_block}
        else:
            if good_til_block_time is None or good_til_block is not None:
                raise ValueError("a stateful cancel needs good_til_block_time only")
            expiry = {"good_til_block_time": unix_seconds(good_til_block_time)}
        info = await self._network.market_metadata(market)
        message = cancel_order(
            order_id(self._owner, self._subaccount_number, client_id, info.clob_pair_id, flags),
            **expiry,
        )
        account_number = await self._network.account_number(self._owner)
        sequence = await self._sequence(flags)
        signed = self._sign(message, account_number=account_number, sequence=sequence)
        self._log.debug("cancel_signed", market=market, client_id=client_id, tx_hash=signed.tx_hash)
        return signed

    # ---------------------------------------------------------------- sending

    async def _send(self, signed: SignedTx, what: str) -> BroadcastAnswer:
        started = time.perf_counter()
        answer = await self._network.node.broadcast(signed.tx_bytes)
        self._log.info(
            f"{what}_broadcast",
            tx_hash=signed.tx_hash,
            code=answer.code,
            codespace=answer.codespace,
            ms=round((time.perf_counter() - started) * 1000, 2),
        )
        if answer.code != 0 and not is_already_placed(answer.codespace, answer.code):
            error = error_from_chain(answer.codespace, answer.code, answer.raw_log)
            if error is not None:
                raise error
        return answer

    async def broadcast(self, signed: SignedTx) -> PlaceResult:
        """Send signed bytes (``BROADCAST_MODE_SYNC``); CheckTx's answer.

        Re-sending the same bytes is safe: the node answers ``sdk`` 19 (``already_placed``).

        Raises:
            RetryableExchangeError: Refused for a transient reason, or the node was not reached
                (:class:`ExchangeUnavailableError`).
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            UnknownOutcomeError: Sent, but no answer in time: reconcile first.
        """
        answer = await self._send(signed, "order")
        return PlaceResult(
            tx_hash=answer.tx_hash,
            code=answer.code,
            codespace=answer.codespace,
            raw_log=answer.raw_log,
            tx_bytes=signed.tx_bytes,
            already_placed=is_already_placed(answer.codespace, answer.code),
        )

    async def place_order(self, request: OrderRequest) -> PlaceResult:
        """Sign and broadcast an order.

        Raises:
            RetryableExchangeError: Refused for a transient reason; build and send again.
            PermanentExchangeError: Refused; ``reason`` tells the trader what to change.
            UnknownOutcomeError: Broadcast, but no answer: reconcile before doing anything.
            GridError: Size or price is not on the market's grid (nothing sent).
        """
        return await self.broadcast(await self.sign_order(request))

    async def cancel_order(
        self,
        market: str,
        client_id: int,
        flags: OrderFlags,
        *,
        good_til_block: int | None = None,
        good_til_block_time: datetime | None = None,
    ) -> CancelResult:
        """Sign and broadcast the cancel of one of our orders.

        Raises:
            RetryableExchangeError: Refused for a transient reason.
            PermanentExchangeError: Refused (e.g. the order no longer exists).
            UnknownOutcomeError: Broadcast, but no answer.
        """
        signed = await self.sign_cancel(
            market,
            client_id,
            flags,
            good_til_block=good_til_block,
            good_til_block_time=good_til_block_time,
        )
        answer = await self._send(signed, "cancel")
        return CancelResult(
            tx_hash=answer.tx_hash,
            code=answer.code,
            codespace=answer.codespace,
            raw_log=answer.raw_log,
            tx_bytes=signed.tx_bytes,
            already_placed=is_already_placed(answer.codespace, answer.code),
        )
