"""Authenticator checks of one message (``x/accountplus/authenticator/*.go``)."""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.message import Message
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder

from doubles.dydx.auth.authenticators import Authenticator, _go_set
from doubles.dydx.auth.constants import (
    ALL_OF,
    ANY_OF,
    CLOB_PAIR_ID_FILTER,
    MESSAGE_FILTER,
    SIGNATURE_VERIFICATION,
    SUBACCOUNT_FILTER,
)
from doubles.dydx.auth.errors import ACCOUNTPLUS, SDK, ChainError
from doubles.dydx.auth.messages import type_url, verify_secp256k1


@dataclass(frozen=True)
class AuthenticationRequest:
    """The part of x/accountplus ``AuthenticationRequest`` the authenticators read.

    Attributes:
        message: The message being authenticated.
        signature: The signature of the message's signer.
        sign_bytes: The SIGN_MODE_DIRECT bytes built with the signer's on-chain data.
        account_number: Signer's on-chain account number (for error texts).
        sequence: Signer's on-chain sequence (for error texts).
        chain_id: The node's chain id.
        simulate: True in Simulate, where signatures are not checked.
    """

    message: Message
    signature: bytes
    sign_bytes: bytes
    account_number: int
    sequence: int
    chain_id: str
    simulate: bool = False


def _clob_numbers(message: Message, kind: str) -> list[int] | None:
    """Subaccount numbers or clob pair ids a clob message touches; None for other messages."""
    if isinstance(message, MsgPlaceOrder):
        order_id = message.order.order_id
        return [order_id.subaccount_id.number if kind == "subaccount" else order_id.clob_pair_id]
    if isinstance(message, MsgCancelOrder):
        order_id = message.order_id
        return [order_id.subaccount_id.number if kind == "subaccount" else order_id.clob_pair_id]
    if isinstance(message, MsgBatchCancel):
        if kind == "subaccount":
            return [message.subaccount_id.number]
        return [batch.clob_pair_id for batch in message.short_term_cancels]
    return None


def authenticate(
    node: Authenticator,
    request: AuthenticationRequest,
    authenticator_id: str,
    *,
    clob_pair_filter_fail_closed: bool = False,
) -> None:
    """``Authenticate`` one (sub-)authenticator against one message.

    Args:
        node: The initialized authenticator.
        request: The request data.
        authenticator_id: Its id as the chain names it in errors (``"5"``, ``"5.1.0"``).
        clob_pair_filter_fail_closed: Reject non-clob messages in ``ClobPairIdFilter`` (a later
            v4-chain revision) instead of skipping them (the released behaviour).

    Raises:
        ChainError: With the chain's code and text when it does not authenticate.
    """
    message = request.message
    if node.type == SIGNATURE_VERIFICATION:
        if request.simulate:
            return
        if not verify_secp256k1(node.pub_key, request.signature, request.sign_bytes):
            raise ChainError.registered(
                ACCOUNTPLUS,
                100,
                "signature verification failed; please verify account number "
                f"({request.account_number}), sequence ({request.sequence}) "
                f"and chain-id ({request.chain_id})",
            )
        return
    if node.type == MESSAGE_FILTER:
        url = type_url(message)
        if url not in node.whitelist_types:
            raise ChainError.registered(
                ACCOUNTPLUS,
                101,
                f"message types do not match. Got {url}, Expected {_go_set(node.whitelist_types)}",
            )
        return
    if node.type == SUBACCOUNT_FILTER:
        for number in _clob_numbers(message, "subaccount") or []:
            if number not in node.whitelist_numbers:
                raise ChainError.registered(
                    SDK,
                    4,
                    f"subaccount number {number} not in whitelist "
                    f"{_go_set(node.whitelist_numbers)}",
                )
        return
    if node.type == CLOB_PAIR_ID_FILTER:
        ids = _clob_numbers(message, "clob_pair")
        if ids is None:
            if clob_pair_filter_fail_closed:
                raise ChainError.registered(
                    ACCOUNTPLUS,
                    102,
                    f"ClobPairIdFilter does not authorize message type {type_url(message)}",
                )
            return
        for clob_pair_id in ids:
            if clob_pair_id not in node.whitelist_numbers:
                raise ChainError.registered(
                    ACCOUNTPLUS,
                    102,
                    f"order id {clob_pair_id} not in whitelist {_go_set(node.whitelist_numbers)}",
                )
        return
    if node.type == ALL_OF:
        if not node.children:
            raise ChainError.registered(SDK, 18, "no sub-authenticators provided")
        for index, child in enumerate(node.children):
            authenticate(
                child,
                request,
                f"{authenticator_id}.{index}",
                clob_pair_filter_fail_closed=clob_pair_filter_fail_closed,
            )
        return
    if node.type == ANY_OF:
        if not node.children:
            raise ChainError.registered(SDK, 18, "no sub-authenticators provided")
        failures: list[str] = []
        for index, child in enumerate(node.children):
            child_id = f"{authenticator_id}.{index}"
            try:
                authenticate(
                    child,
                    request,
                    child_id,
                    clob_pair_filter_fail_closed=clob_pair_filter_fail_closed,
                )
            except ChainError as exc:
                failures.append(f"[{child.type} (id = {child_id})] {exc.log}; ")
            else:
                return
        raise ChainError.registered(
            SDK, 4, "all sub-authenticators failed to authenticate: " + "; ".join(failures)
        )
    raise ChainError.internal()
