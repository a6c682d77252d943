"""A non-blocking reader of a dYdX v4 full node over ``grpc.aio``.

dydx-v4-client's node calls are synchronous stub calls without a deadline: on the event loop
they freeze the whole process until the node answers. This reader calls the same v4_proto
stubs on an asyncio channel, and every call carries a deadline.
"""

from __future__ import annotations

from typing import Any

import grpc
import grpc.aio
from v4_proto.dydxprotocol.accountplus import query_pb2 as accountplus_query
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as accountplus_grpc

from core.config import DydxEndpoints
from core.exchange.dydx.keys import StoredAuthenticator
from core.exchange.errors import ExchangeUnavailableError
from core.logs import get_logger

DEFAULT_TIMEOUT = 5.0  # seconds; a node slower than this is treated as unreachable


class NodeReader:
    """Read-only queries to a dYdX full node.

    The channel opens on first use (it belongs to the running event loop) and is reused.

    Args:
        target: ``host:port`` of the node's gRPC endpoint.
        tls: Whether the channel uses TLS.
        timeout: Deadline of each call, in seconds.
    """

    def __init__(self, target: str, *, tls: bool, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._target = target
        self._tls = tls
        self._timeout = timeout
        self._channel: grpc.aio.Channel | None = None
        self._log = get_logger(__name__, node=target)

    @classmethod
    def from_endpoints(
        cls, endpoints: DydxEndpoints, *, timeout: float = DEFAULT_TIMEOUT
    ) -> NodeReader:
        """A reader of the node configured in ``settings.dydx``."""
        return cls(endpoints.node_url, tls=endpoints.node_tls, timeout=timeout)

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
            code = exc.code().name
            self._log.warning("node_call_failed", method="GetAuthenticators", code=code)
            raise ExchangeUnavailableError(
                f"the dYdX node failed GetAuthenticators ({code})"
            ) from None
        return [
            StoredAuthenticator(id=int(item.id), type=str(item.type), config=bytes(item.config))
            for item in response.account_authenticators
        ]
