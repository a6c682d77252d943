"""gRPC servicers of the node double: tx, auth, bank, tendermint and accountplus."""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf.any_pb2 import Any as AnyProto
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
from v4_proto.dydxprotocol.accountplus import accountplus_pb2, models_pb2, params_pb2
from v4_proto.dydxprotocol.accountplus import query_pb2 as ap_query
from v4_proto.dydxprotocol.accountplus import query_pb2_grpc as ap_grpc
from v4_proto.tendermint.p2p.types_pb2 import DefaultNodeInfo
from v4_proto.tendermint.types.block_pb2 import Block as TmBlock
from v4_proto.tendermint.types.types_pb2 import BlockID
from v4_proto.tendermint.types.types_pb2 import Header as TmHeader

from doubles.dydx import auth
from doubles.dydx.auth import ChainError
from doubles.dydx.node.codec import _raw_from_tx, _timestamp, _tx_from_raw
from doubles.dydx.node.records import _BASE_GAS, R, _AccountLike, _AuthenticatorLike
from doubles.dydx.node.server import NodeServer

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
