"""A non-blocking client of a dYdX v4 full node over ``grpc.aio``.

dydx-v4-client's node calls are synchronous stub calls without a deadline: on the event loop
they freeze the whole process until the node answers. This client calls the same v4_proto
stubs on an asyncio channel, and every call carries a deadline.

A failed broadcast is classified by whether the transaction can have reached the node:
nothing sent (no connection, the node said UNAVAILABLE) is :class:`ExchangeUnavailableError`;
a deadline or a connection lost after sending is :class:`UnknownOutcomeError` (the
transaction may be in the mempool).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import grpc
import grpc.aio
from v4_proto.cosmos.auth.v1beta1 import auth_pb2
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_grpc
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_grpc
from v4_proto.cosmos.tx.v1beta1 import service_pb2 as tx_service
from v4_proto.cosmos.tx.v1beta1 import service_pb2_grpc as tx_grpc
from v4_proto.dydxprotocol.accountplus import query_pb2 as accountplus_query
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as accountplus_grpc

from core.exchange.dydx.keys import StoredAuthenticator
from core.exchange.errors import ExchangeUnavailableError, UnknownOutcomeError
from core.runtime.config import DydxEndpoints
from core.runtime.logs import get_logger

DEFAULT_TIMEOUT = 5.0  # seconds; a node slower than this is treated as unreachable
#: CheckTx answers in milliseconds; past this the outcome is unknown and must be reconciled.
DEFAULT_BROADCAST_TIMEOUT = 3.0

# Status codes with which a node (or its proxy) refuses a call it has not processed.
_NOT_PROCESSED = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.INVALID_ARGUMENT,
    }
)
# gRPC reports a transport lost mid-call, and a server shutting down with calls in flight
# ("Cancelling all calls"), as UNAVAILABLE too: these words mean the request may already have
# been processed, so the outcome is unknown.
_LOST_AFTER_SENDING = re.compile(
    r"socket closed|connection reset|broken pipe|goaway|rst_stream|end of file|\beof\b|"
    r"connection termination|stream removed|disconnect|cancelling all calls|shut ?down|"
    r"shutting down",
    re.IGNORECASE,
)


def tx_hash(tx_bytes: bytes) -> str:
    """CometBFT's transaction hash: upper-case hex SHA-256 of the broadcast bytes."""
    return hashlib.sha256(tx_bytes).hexdigest().upper()


@dataclass(frozen=True, slots=True)
class IncludedTx:
    """DeliverTx's result of a transaction a block included (``GetTx``).

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        height: The including block.
        code: ABCI code, 0 when the block executed it.
        codespace: ABCI codespace, empty on success.
        raw_log: The chain's raw log.
    """

    tx_hash: str
    height: int
    code: int
    codespace: str
    raw_log: str


@dataclass(frozen=True, slots=True)
class BroadcastAnswer:
    """CheckTx's answer to a ``BROADCAST_MODE_SYNC`` broadcast.

    Attributes:
        tx_hash: Transaction hash (upper-case hex).
        code: ABCI code, 0 when accepted.
        codespace: ABCI codespace, empty when accepted.
        raw_log: The chain's raw log.
    """

    tx_hash: str
    code: int
    codespace: str
    raw_log: str


class NodeReader:
    """Queries to, and broadcasts through, a dYdX full node.

    The channel opens on first use (it belongs to the running event loop) and is reused.

    Args:
        target: ``host:port`` of the node's gRPC endpoint.
        tls: Whether the channel uses TLS.
        timeout: Deadline of each query, in seconds.
        broadcast_timeout: Deadline of a broadcast, in seconds.
    """

    def __init__(
        self,
        target: str,
        *,
        tls: bool,
        timeout: float = DEFAULT_TIMEOUT,
        broadcast_timeout: float = DEFAULT_BROADCAST_TIMEOUT,
    ) -> None:
        self._target = target
        self._tls = tls
        self._timeout = timeout
        self._broadcast_timeout = broadcast_timeout
        self._channel: grpc.aio.Channel | None = None
        self._log = get_logger(__name__, node=target)

    @classmethod
    def from_endpoints(
        cls,
        endpoints: DydxEndpoints,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        broadcast_timeout: float = DEFAULT_BROADCAST_TIMEOUT,
    ) -> NodeReader:
        """A client of the node configured in ``settings.dydx``."""
        return cls(
            endpoints.node_url,
            tls=endpoints.node_tls,
            timeout=timeout,
            broadcast_timeout=broadcast_timeout,
        )

    def _open(self) -> Any:
        if self._channel is None:
            if self._tls:
                credentials = grpc.ssl_channel_credentials()
                self._channel = grpc.aio.secure_channel(self._target, credentials)
            else:
                self._channel = grpc.aio.insecure_channel(self._target)
        return self._channel

    async def close(self) -> None:
        """Close the channel (a later call opens a new one)."""
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    def _unavailable(self, method: str, exc: Any) -> ExchangeUnavailableError:
        code = exc.code().name
        self._log.warning("node_call_failed", method=method, code=code)
        return ExchangeUnavailableError(f"the dYdX node failed {method} ({code})")

    async def get_authenticators(self, owner: str) -> list[StoredAuthenticator]:
        """Every authenticator of an account (``dydxprotocol.accountplus.Query``).

        Args:
            owner: A valid ``dydx1…`` address.

        Raises:
            ExchangeUnavailableError: The node did not answer in time or answered with an error.
        """
        stub = accountplus_grpc.QueryStub(self._open())
        request = accountplus_query.GetAuthenticatorsRequest(account=owner)
        try:
            response = await stub.GetAuthenticators(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._unavailable("GetAuthenticators", exc) from None
        return [
            StoredAuthenticator(id=int(item.id), type=str(item.type), config=bytes(item.config))
            for item in response.account_authenticators
        ]

    async def latest_height(self) -> int:
        """Height of the latest committed block (``GetLatestBlock``).

        Raises:
            ExchangeUnavailableError: The node did not answer in time or answered with an error.
        """
        stub = tm_grpc.ServiceStub(self._open())
        try:
            response = await stub.GetLatestBlock(
                tm_query.GetLatestBlockRequest(), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._unavailable("GetLatestBlock", exc) from None
        # sdk_block replaces the deprecated block field; older nodes fill only block.
        header = (
            response.sdk_block.header if response.HasField("sdk_block") else response.block.header
        )
        height = int(header.height)
        if height <= 0:
            self._log.warning("node_bad_height", height=height)
            raise ExchangeUnavailableError("the dYdX node gave no block height")
        return height

    async def account_number(self, address: str) -> int:
        """The x/auth account number of an address (it never changes).

        Raises:
            ExchangeUnavailableError: The node did not answer, or the account does not exist
                on chain (nothing can be signed for it).
        """
        stub = auth_grpc.QueryStub(self._open())
        try:
            response = await stub.Account(
                auth_query.QueryAccountRequest(address=address), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                self._log.warning("node_account_not_found")
                raise ExchangeUnavailableError(
                    "the dYdX account does not exist on chain yet"
                ) from None
            raise self._unavailable("Account", exc) from None
        account = auth_pb2.BaseAccount()
        if not response.account.Unpack(account):
            self._log.warning("node_unexpected_account_type", type_url=response.account.type_url)
            raise ExchangeUnavailableError("the dYdX node gave an unexpected account type")
        return int(account.account_number)

    async def get_tx(self, digest: str) -> IncludedTx | None:
        """The block result of a transaction (``cosmos.tx.v1beta1.Service/GetTx``).

        Args:
            digest: Transaction hash (hex).

        Returns:
            The result, or None when no committed block has the transaction (the node
            answers NOT_FOUND).

        Raises:
            ExchangeUnavailableError: The node did not answer in time or answered with another
                error.
        """
        stub = tx_grpc.ServiceStub(self._open())
        try:
            response = await stub.GetTx(
                tx_service.GetTxRequest(hash=digest.upper()), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return None
            raise self._unavailable("GetTx", exc) from None
        answer = response.tx_response
        return IncludedTx(
            tx_hash=digest.upper(),
            height=int(answer.height),
            code=int(answer.code),
            codespace=str(answer.codespace),
            raw_log=str(answer.raw_log),
        )

    async def broadcast(self, tx_bytes: bytes) -> BroadcastAnswer:
        """Broadcast signed ``TxRaw`` bytes and return CheckTx's answer (``BROADCAST_MODE_SYNC``).

        Raises:
            ExchangeUnavailableError: The transaction did not reach the node (no connection,
                or the node refused the call before processing it): sending again is safe.
            UnknownOutcomeError: No answer within the deadline, or the connection broke after
                sending: the transaction may be in the mempool.
        """
        digest = tx_hash(tx_bytes)
        stub = tx_grpc.ServiceStub(self._open())
        request = tx_service.BroadcastTxRequest(
            tx_bytes=tx_bytes, mode=tx_service.BroadcastMode.BROADCAST_MODE_SYNC
        )
        try:
            response = await stub.BroadcastTx(request, timeout=self._broadcast_timeout)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            details = f"{exc.details() or ''} {exc.debug_error_string() or ''}"
            never_sent = "failed to connect" in details.lower()
            if never_sent or (code in _NOT_PROCESSED and not _LOST_AFTER_SENDING.search(details)):
                self._log.warning("node_broadcast_not_sent", code=code.name, tx_hash=digest)
                raise ExchangeUnavailableError(
                    f"the dYdX node could not take the transaction ({code.name})"
                ) from None
            self._log.warning("node_broadcast_unknown_outcome", code=code.name, tx_hash=digest)
            raise UnknownOutcomeError(tx_hash=digest) from None
        answer = response.tx_response
        if answer.txhash and answer.txhash.upper() != digest:
            self._log.warning("node_broadcast_hash_mismatch", tx_hash=digest)
        return BroadcastAnswer(
            tx_hash=digest,
            code=int(answer.code),
            codespace=str(answer.codespace),
            raw_log=str(answer.raw_log),
        )
