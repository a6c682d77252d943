"""Signatures, sign docs and the messages the node double understands."""

from __future__ import annotations

from collections.abc import Sequence

from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from google.protobuf.message import Message
from v4_proto.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import SignDoc
from v4_proto.dydxprotocol.accountplus.tx_pb2 import MsgAddAuthenticator, MsgRemoveAuthenticator
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder
from v4_proto.dydxprotocol.sending.transfer_pb2 import (
    MsgDepositToSubaccount,
    MsgWithdrawFromSubaccount,
)
from v4_proto.dydxprotocol.sending.tx_pb2 import MsgCreateTransfer

from doubles.dydx.auth.constants import _STATEFUL_FLAGS, ORDER_FLAGS_SHORT_TERM
from doubles.dydx.auth.errors import SDK, ChainError

# --- addresses and keys -----------------------------------------------------------------------


def verify_secp256k1(pub_key: bytes, signature: bytes, message: bytes) -> bool:
    """Verify a Cosmos secp256k1 signature.

    Like cosmos-sdk, the signature is the 64-byte ``r || s`` of ``sha256(message)`` and a
    high-S (malleable) signature is rejected (libsecp256k1 requires low S).

    Args:
        pub_key: 33-byte compressed public key.
        signature: 64-byte compact signature.
        message: The signed bytes (the SignDoc).

    Returns:
        True when the signature is valid.
    """
    if len(signature) != 64:
        return False
    try:
        key = PublicKey(pub_key)
        der = cdata_to_der(deserialize_compact(signature))
        return bool(key.verify(der, message))
    except (ValueError, TypeError):
        return False


def sign_doc_bytes(
    body_bytes: bytes, auth_info_bytes: bytes, chain_id: str, account_number: int
) -> bytes:
    """Serialize the SIGN_MODE_DIRECT SignDoc a signer signs."""
    return bytes(
        SignDoc(
            body_bytes=body_bytes,
            auth_info_bytes=auth_info_bytes,
            chain_id=chain_id,
            account_number=account_number,
        ).SerializeToString()
    )


# --- messages ---------------------------------------------------------------------------------


def type_url(message: Message) -> str:
    """The ``/full.proto.Name`` type URL of a message."""
    return "/" + str(message.DESCRIPTOR.full_name)


_MESSAGE_TYPES: dict[str, type[Message]] = {
    "/" + cls.DESCRIPTOR.full_name: cls
    for cls in (
        MsgPlaceOrder,
        MsgCancelOrder,
        MsgBatchCancel,
        MsgAddAuthenticator,
        MsgRemoveAuthenticator,
        MsgWithdrawFromSubaccount,
        MsgDepositToSubaccount,
        MsgCreateTransfer,
        MsgSend,
    )
}


def message_signer(message: Message) -> str:
    """The single signer address (``cosmos.msg.v1.signer``) of a supported message."""
    if isinstance(message, MsgPlaceOrder):
        return str(message.order.order_id.subaccount_id.owner)
    if isinstance(message, MsgCancelOrder):
        return str(message.order_id.subaccount_id.owner)
    if isinstance(message, MsgBatchCancel):
        return str(message.subaccount_id.owner)
    if isinstance(message, MsgAddAuthenticator | MsgRemoveAuthenticator):
        return str(message.sender)
    if isinstance(message, MsgWithdrawFromSubaccount):
        return str(message.sender.owner)
    if isinstance(message, MsgDepositToSubaccount):
        return str(message.sender)
    if isinstance(message, MsgCreateTransfer):
        return str(message.transfer.sender.owner)
    if isinstance(message, MsgSend):
        return str(message.from_address)
    raise ChainError.registered(SDK, 2, f"unable to resolve type URL {type_url(message)}")


def is_stateful_flags(order_flags: int) -> bool:
    """Whether an order id's flags denote a stateful (conditional, long-term, TWAP) order."""
    return order_flags in _STATEFUL_FLAGS


def is_short_term_clob_message(message: Message) -> bool:
    """Whether a message uses ``GoodTilBlock`` replay protection (short-term clob)."""
    if isinstance(message, MsgPlaceOrder):
        return bool(message.order.order_id.order_flags == ORDER_FLAGS_SHORT_TERM)
    if isinstance(message, MsgCancelOrder):
        return bool(message.order_id.order_flags == ORDER_FLAGS_SHORT_TERM)
    return isinstance(message, MsgBatchCancel)


def should_skip_sequence_validation(messages: Sequence[Message]) -> bool:
    """``ShouldSkipSequenceValidation``: every message is a short-term clob message."""
    for message in messages:
        if isinstance(message, MsgPlaceOrder):
            if is_stateful_flags(message.order.order_id.order_flags):
                return False
        elif isinstance(message, MsgCancelOrder):
            if is_stateful_flags(message.order_id.order_flags):
                return False
        elif not isinstance(message, MsgBatchCancel):
            return False
    return True
