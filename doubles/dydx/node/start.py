"""Start the gRPC node double: one ``grpc.aio`` server with every servicer."""

from __future__ import annotations

from typing import Any

import grpc
from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_grpc
from v4_proto.cosmos.bank.v1beta1 import query_pb2_grpc as bank_grpc
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_grpc
from v4_proto.cosmos.tx.v1beta1 import service_pb2_grpc as tx_grpc
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as ap_grpc
from v4_proto.dydxprotocol.clob import query_pb2_grpc as clob_grpc
from v4_proto.dydxprotocol.perpetuals import query_pb2_grpc as perp_grpc
from v4_proto.dydxprotocol.prices import query_pb2_grpc as prices_grpc
from v4_proto.dydxprotocol.subaccounts import query_pb2_grpc as sub_grpc

from doubles.dydx.node.queries import _ClobQuery, _PerpetualsQuery, _PricesQuery, _SubaccountsQuery
from doubles.dydx.node.server import NodeServer
from doubles.dydx.node.services import (
    _AccountplusQuery,
    _AuthQuery,
    _BankQuery,
    _TendermintService,
    _TxService,
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
