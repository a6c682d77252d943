"""Decoding of broadcast transaction bytes (``TxRaw``) into a :class:`DecodedTx`."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import DecodeError, Message
from v4_proto.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, TxBody, TxRaw
from v4_proto.dydxprotocol.accountplus.tx_pb2 import TxExtension

from doubles.dydx.auth.constants import PUBKEY_TYPE_URL, TX_EXTENSION_TYPE_URL
from doubles.dydx.auth.errors import SDK, ChainError
from doubles.dydx.auth.messages import _MESSAGE_TYPES, message_signer

# --- decoding ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignerInfoView:
    """What the ante handler reads from one ``SignerInfo``."""

    pub_key: bytes | None
    sequence: int


@dataclass(frozen=True)
class DecodedTx:
    """A broadcast transaction, decoded the way the node's TxDecoder does.

    Attributes:
        raw: The broadcast bytes.
        tx_hash: Upper-case hex SHA-256 of ``raw`` (CometBFT's tx hash).
        body: The decoded body.
        auth_info: The decoded auth info.
        body_bytes: Body bytes exactly as signed.
        auth_info_bytes: Auth-info bytes exactly as signed.
        signatures: One signature per signer.
        messages: The unpacked messages.
        type_urls: Their type URLs.
        signers: Unique signers in message order (the order of ``signatures``).
        signer_infos: Public key and sequence of each signer info.
        selected_authenticators: ``TxExtension.selected_authenticators``; None without one.
    """

    raw: bytes
    tx_hash: str
    body: TxBody
    auth_info: AuthInfo
    body_bytes: bytes
    auth_info_bytes: bytes
    signatures: tuple[bytes, ...]
    messages: tuple[Message, ...]
    type_urls: tuple[str, ...]
    signers: tuple[str, ...]
    signer_infos: tuple[SignerInfoView, ...]
    selected_authenticators: tuple[int, ...] | None


def tx_hash(tx_bytes: bytes) -> str:
    """CometBFT's transaction hash: upper-case hex SHA-256 of the bytes."""
    return hashlib.sha256(tx_bytes).hexdigest().upper()


def unpack_message(packed: AnyProto) -> Message:
    """Unpack one ``Any`` message of a supported type.

    Raises:
        ChainError: ``sdk`` 2 for an unknown type URL or undecodable value.
    """
    cls = _MESSAGE_TYPES.get(packed.type_url)
    if cls is None:
        raise ChainError.registered(SDK, 2, f"unable to resolve type URL {packed.type_url}")
    try:
        return cls.FromString(packed.value)
    except DecodeError as exc:
        raise ChainError.registered(SDK, 2, str(exc)) from exc


def _selected_authenticators(body: TxBody) -> tuple[int, ...] | None:
    # GetAuthenticatorExtension: the first non-critical option that unpacks as a TxExtension.
    for option in body.non_critical_extension_options:
        if option.type_url == TX_EXTENSION_TYPE_URL:
            try:
                return tuple(TxExtension.FromString(option.value).selected_authenticators)
            except DecodeError:
                continue
    return None


def _signer_info_view(pub_key_any: AnyProto, has_pub_key: bool, sequence: int) -> SignerInfoView:
    if not has_pub_key:
        return SignerInfoView(None, sequence)
    if pub_key_any.type_url != PUBKEY_TYPE_URL:
        raise ChainError.registered(SDK, 8, f"{pub_key_any.type_url} is not supported")
    try:
        key = PubKey.FromString(pub_key_any.value).key
    except DecodeError as exc:
        raise ChainError.registered(SDK, 2, str(exc)) from exc
    return SignerInfoView(bytes(key), sequence)


def decode_tx(tx_bytes: bytes) -> DecodedTx:
    """Decode broadcast bytes (a ``TxRaw``) into a :class:`DecodedTx`.

    Args:
        tx_bytes: ``BroadcastTxRequest.tx_bytes``.

    Returns:
        The decoded transaction.

    Raises:
        ChainError: ``sdk`` 2 (tx parse error) when the bytes are not a transaction of
            supported messages.
    """
    try:
        raw = TxRaw.FromString(tx_bytes)
        body = TxBody.FromString(raw.body_bytes)
        auth_info = AuthInfo.FromString(raw.auth_info_bytes)
    except DecodeError as exc:
        raise ChainError.registered(SDK, 2, str(exc)) from exc
    messages = tuple(unpack_message(packed) for packed in body.messages)
    signers: list[str] = []
    for message in messages:
        signer = message_signer(message)
        if signer not in signers:
            signers.append(signer)
    signer_infos = tuple(
        _signer_info_view(info.public_key, info.HasField("public_key"), info.sequence)
        for info in auth_info.signer_infos
    )
    return DecodedTx(
        raw=bytes(tx_bytes),
        tx_hash=tx_hash(tx_bytes),
        body=body,
        auth_info=auth_info,
        body_bytes=bytes(raw.body_bytes),
        auth_info_bytes=bytes(raw.auth_info_bytes),
        signatures=tuple(bytes(s) for s in raw.signatures),
        messages=messages,
        type_urls=tuple(p.type_url for p in body.messages),
        signers=tuple(signers),
        signer_infos=signer_infos,
        selected_authenticators=_selected_authenticators(body),
    )
