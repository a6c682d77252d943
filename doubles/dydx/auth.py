"""Transaction decoding, signature checks and authenticators, as a dYdX v4 node does them.

Pure functions, no I/O: the gRPC node (``node.py``) feeds them the broadcast bytes and a
read-only view of the chain, and applies the state changes they return only when the whole
transaction passes, as CheckTx does with its branched store.

What is mirrored, with the v4-chain source it follows:

* the ante order for a transaction: replay protection (sequence or timestamp nonce,
  ``app/ante/replay_protection.go``), then either the authenticator flow when the body carries a
  ``TxExtension`` with selected authenticators (``x/accountplus/ante/ante.go``), or the classic
  flow (set the pubkey on first use, check it derives the signer, verify the signature;
  ``app/ante/sigverify.go``), then the sequence increment unless the transaction is short-term
  clob only or uses a timestamp nonce (``app/ante.go``);
* the authenticators ``SignatureVerification``, ``MessageFilter``, ``SubaccountFilter``,
  ``ClobPairIdFilter``, ``AllOf`` and ``AnyOf`` (``x/accountplus/authenticator/*.go``),
  including their error codes and the exact text of their error messages;
* the timestamp-nonce rules (``x/accountplus/keeper/timestampnonce.go``).

Errors are :class:`ChainError` values carrying the ABCI ``code``, ``codespace`` and the
``raw_log`` the chain would answer, wrapped the way ``cosmossdk.io/errors`` renders them
(``"<context>: <cause>: <registered description>"``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from coincurve import PublicKey
from coincurve.ecdsa import cdata_to_der, deserialize_compact
from google.protobuf.any_pb2 import Any as AnyProto
from google.protobuf.message import DecodeError, Message
from v4_proto.cosmos.bank.v1beta1.tx_pb2 import MsgSend
from v4_proto.cosmos.crypto.secp256k1.keys_pb2 import PubKey
from v4_proto.cosmos.tx.v1beta1.tx_pb2 import AuthInfo, SignDoc, TxBody, TxRaw
from v4_proto.dydxprotocol.accountplus.tx_pb2 import (
    MsgAddAuthenticator,
    MsgRemoveAuthenticator,
    TxExtension,
)
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder
from v4_proto.dydxprotocol.sending.transfer_pb2 import (
    MsgDepositToSubaccount,
    MsgWithdrawFromSubaccount,
)
from v4_proto.dydxprotocol.sending.tx_pb2 import MsgCreateTransfer

from doubles.dydx.keys import address_from_pubkey, is_valid_address

# --- constants of the chain -------------------------------------------------------------------

SECP256K1_PUBKEY_SIZE = 33
TIMESTAMP_NONCE_CUTOFF = 1 << 40
MAX_TIMESTAMP_NONCES = 20
MAX_TIME_IN_PAST_MS = 30_000
MAX_TIME_IN_FUTURE_MS = 30_000
AUTHENTICATOR_DATA_MAX_LENGTH = 1024

ORDER_FLAGS_SHORT_TERM = 0
ORDER_FLAGS_CONDITIONAL = 32
ORDER_FLAGS_LONG_TERM = 64
ORDER_FLAGS_TWAP = 128
_STATEFUL_FLAGS = frozenset({ORDER_FLAGS_CONDITIONAL, ORDER_FLAGS_LONG_TERM, ORDER_FLAGS_TWAP})

PUBKEY_TYPE_URL = "/cosmos.crypto.secp256k1.PubKey"
TX_EXTENSION_TYPE_URL = "/" + TxExtension.DESCRIPTOR.full_name

# The authenticator types the dYdX authenticator manager registers (app/app.go).
SIGNATURE_VERIFICATION = "SignatureVerification"
MESSAGE_FILTER = "MessageFilter"
SUBACCOUNT_FILTER = "SubaccountFilter"
CLOB_PAIR_ID_FILTER = "ClobPairIdFilter"
ALL_OF = "AllOf"
ANY_OF = "AnyOf"
REGISTERED_AUTHENTICATORS = frozenset(
    {SIGNATURE_VERIFICATION, MESSAGE_FILTER, SUBACCOUNT_FILTER, CLOB_PAIR_ID_FILTER, ALL_OF, ANY_OF}
)

# --- errors -----------------------------------------------------------------------------------

SDK = "sdk"
ACCOUNTPLUS = "accountplus"

# (codespace, code) -> registered description, as in cosmos-sdk types/errors and
# x/accountplus/types/errors.go.
_DESCRIPTIONS: dict[tuple[str, int], str] = {
    (SDK, 2): "tx parse error",
    (SDK, 4): "unauthorized",
    (SDK, 6): "unknown request",
    (SDK, 7): "invalid address",
    (SDK, 8): "invalid pubkey",
    (SDK, 9): "unknown address",
    (SDK, 15): "no signatures supplied",
    (SDK, 18): "invalid request",
    (SDK, 19): "tx already in mempool",
    (SDK, 32): "incorrect account sequence",
    (ACCOUNTPLUS, 1): "Authenticator is not found",
    (ACCOUNTPLUS, 2): "Invalid account address",
    (ACCOUNTPLUS, 3): "Authenticator data exceeds maximum length",
    (ACCOUNTPLUS, 5): "Error initializing authenticator",
    (ACCOUNTPLUS, 100): "Signature verification failed",
    (ACCOUNTPLUS, 101): "Message type verification failed",
    (ACCOUNTPLUS, 102): "Clob pair id verification failed",
    (ACCOUNTPLUS, 103): "Subaccount verification failed",
    (ACCOUNTPLUS, 104): "AllOf verification failed",
    (ACCOUNTPLUS, 105): "AnyOf verification failed",
}


class ChainError(Exception):
    """An ABCI error as the chain reports it.

    Attributes:
        code: ABCI code of the root cause.
        codespace: Module codespace of the root cause (``sdk``, ``accountplus``, ``clob``...).
        log: The full ``raw_log`` text.
    """

    def __init__(self, codespace: str, code: int, log: str) -> None:
        super().__init__(log)
        self.codespace = codespace
        self.code = code
        self.log = log

    @classmethod
    def registered(cls, codespace: str, code: int, message: str | None = None) -> ChainError:
        """Build ``errorsmod.Wrap(<registered error>, message)``.

        Args:
            codespace: Codespace of the registered error.
            code: Its code.
            message: Optional wrapping text; the log is ``"<message>: <description>"``.

        Returns:
            The error.
        """
        description = _DESCRIPTIONS[(codespace, code)]
        return cls(codespace, code, f"{message}: {description}" if message else description)

    @classmethod
    def internal(cls) -> ChainError:
        """An error with no registered cause, which the SDK redacts to ``internal``."""
        return cls("undefined", 1, "internal")

    def wrap(self, message: str) -> ChainError:
        """Return this error wrapped with more context, keeping its code and codespace."""
        if self.codespace == "undefined":
            return self  # Redacted errors stay "internal" however they are wrapped.
        return ChainError(self.codespace, self.code, f"{message}: {self.log}")

    def __repr__(self) -> str:
        return f"ChainError({self.codespace!r}, {self.code}, {self.log!r})"


class _GoError(Exception):
    """A plain Go ``error`` (not registered): renders as text, redacts to ``internal``."""


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


# --- authenticators ---------------------------------------------------------------------------


def _go_set(items: Iterable[str] | Iterable[int]) -> str:
    """Render a Go ``map[K]struct{}`` with ``%v`` (keys sorted, as fmt does)."""
    return "map[" + " ".join(f"{k}:{{}}" for k in sorted(items)) + "]"


def _parse_uint32(text: str) -> int:
    # strconv.ParseUint(text, 10, 32): digits only, no sign, no spaces.
    if not text or not text.isascii() or not text.isdigit():
        raise _GoError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 0xFFFFFFFF:
        raise _GoError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


@dataclass(frozen=True)
class SubAuthenticatorData:
    """One ``SubAuthenticatorInitData`` of a composite config."""

    type: str
    config: bytes


def parse_composite_config(config: bytes) -> list[SubAuthenticatorData]:
    """Decode an ``AllOf``/``AnyOf`` config like Go's ``json.Unmarshal``.

    The config is a JSON array of ``{"type": str, "config": base64 | [byte, ...]}``; Go matches
    field names case-insensitively and decodes ``[]byte`` from standard padded base64 or from
    an array of numbers.

    Raises:
        _GoError: On malformed JSON, with Go's message.
    """
    try:
        items = json.loads(config.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _GoError(f"invalid character in sub-authenticator data: {exc}") from exc
    if items is None:
        return []
    if not isinstance(items, list):
        raise _GoError(
            "json: cannot unmarshal "
            f"{type(items).__name__} into Go value of type []authenticator.SubAuthenticatorInitData"
        )
    result: list[SubAuthenticatorData] = []
    for item in items:
        if not isinstance(item, dict):
            raise _GoError("json: cannot unmarshal into Go value of type SubAuthenticatorInitData")
        fields = {str(k).lower(): v for k, v in item.items()}
        type_name = fields.get("type") or ""
        raw_config = fields.get("config")
        if not isinstance(type_name, str):
            raise _GoError(
                "json: cannot unmarshal into Go struct field SubAuthenticatorInitData.type"
            )
        if raw_config is None:
            data = b""
        elif isinstance(raw_config, str):
            try:
                data = base64.b64decode(raw_config, validate=True)
            except binascii.Error as exc:
                raise _GoError(f"illegal base64 data: {exc}") from exc
        elif isinstance(raw_config, list) and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw_config
        ):
            # Go also decodes a JSON array of numbers into []byte (what the Python client's
            # Authenticator.compose emits before convert_nested_config_to_base64).
            data = bytes(raw_config)
        else:
            raise _GoError(
                "json: cannot unmarshal "
                f"{type(raw_config).__name__} into Go struct field "
                "SubAuthenticatorInitData.config of type []uint8"
            )
        result.append(SubAuthenticatorData(type_name, data))
    return result


@dataclass(frozen=True)
class Authenticator:
    """An initialized authenticator (a node of the tree).

    Attributes:
        type: Registered type name.
        config: The raw config it was initialized with.
        pub_key: Key of a ``SignatureVerification``.
        whitelist_types: Type URLs of a ``MessageFilter``.
        whitelist_numbers: Numbers of a ``SubaccountFilter``/``ClobPairIdFilter``.
        children: Sub-authenticators of an ``AllOf``/``AnyOf``.
    """

    type: str
    config: bytes
    pub_key: bytes = b""
    whitelist_types: frozenset[str] = frozenset()
    whitelist_numbers: frozenset[int] = frozenset()
    children: tuple[Authenticator, ...] = ()


def initialize_authenticator(auth_type: str, config: bytes) -> Authenticator:
    """``Initialize``: build an authenticator from a stored type and config.

    Args:
        auth_type: Stored type name.
        config: Stored config bytes.

    Returns:
        The initialized tree.

    Raises:
        ChainError: For a composite with fewer than two children (``sdk`` 18).
        _GoError: For configs Go fails to parse (rendered as ``internal``).
    """
    if auth_type == SIGNATURE_VERIFICATION:
        return Authenticator(auth_type, config, pub_key=config)
    if auth_type == MESSAGE_FILTER:
        return Authenticator(
            auth_type, config, whitelist_types=frozenset(config.decode().split(","))
        )
    if auth_type in (SUBACCOUNT_FILTER, CLOB_PAIR_ID_FILTER):
        numbers = frozenset(_parse_uint32(part) for part in config.decode().split(","))
        return Authenticator(auth_type, config, whitelist_numbers=numbers)
    if auth_type in (ALL_OF, ANY_OF):
        try:
            subs = parse_composite_config(config)
        except _GoError as exc:
            raise _GoError(
                f"failed to parse sub-authenticators initialization data: {exc}"
            ) from exc
        if len(subs) <= 1:
            name = "allOf" if auth_type == ALL_OF else "anyOf"
            raise ChainError.registered(SDK, 18, f"{name} must have at least 2 sub-authenticators")
        children = []
        for sub in subs:
            if sub.type not in REGISTERED_AUTHENTICATORS:
                raise _GoError(f"authenticator type {sub.type} is not registered")  # Go panics.
            try:
                children.append(initialize_authenticator(sub.type, sub.config))
            except ChainError as exc:
                raise exc.wrap(
                    f"failed to initialize sub-authenticator (type = {sub.type})"
                ) from exc
        return Authenticator(auth_type, config, children=tuple(children))
    raise _GoError(f"authenticator type {auth_type} is not registered")


def validate_new_authenticator(auth_type: str, config: bytes, authenticator_id: int) -> None:
    """``OnAuthenticatorAdded`` plus ``ValidateBasic`` of ``MsgAddAuthenticator``.

    Only what the chain checks when a key is added: a registered type, a 33-byte key for each
    ``SignatureVerification`` and at least two registered children per composite. Filters'
    configs are *not* parsed here (the chain only parses them when a transaction selects the
    authenticator).

    Args:
        auth_type: Type of the new authenticator.
        config: Its config (``MsgAddAuthenticator.data``).
        authenticator_id: The id it would get.

    Raises:
        ChainError: With the chain's code and text when the chain would refuse it.
    """
    if len(config) > AUTHENTICATOR_DATA_MAX_LENGTH:
        raise ChainError.registered(ACCOUNTPLUS, 3)
    if auth_type not in REGISTERED_AUTHENTICATORS:
        raise ChainError.internal()
    try:
        _on_added(auth_type, config, str(authenticator_id))
    except ChainError as exc:
        raise exc.wrap(f"`OnAuthenticatorAdded` failed on authenticator type {auth_type}") from exc
    except _GoError as exc:
        raise ChainError.internal() from exc


def _on_added(auth_type: str, config: bytes, authenticator_id: str) -> None:
    if auth_type == SIGNATURE_VERIFICATION:
        if len(config) != SECP256K1_PUBKEY_SIZE:
            raise _GoError(
                "invalid secp256k1 public key size, expected "
                f"{SECP256K1_PUBKEY_SIZE}, got {len(config)}"
            )
        return
    if auth_type not in (ALL_OF, ANY_OF):
        return
    try:
        subs = parse_composite_config(config)
    except _GoError as exc:
        raise _GoError(f"failed to unmarshal sub-authenticator init data: {exc}") from exc
    if len(subs) <= 1:
        raise ChainError.registered(SDK, 18, "no sub-authenticators provided")
    for index, sub in enumerate(subs):
        if sub.type not in REGISTERED_AUTHENTICATORS:
            raise ChainError.registered(
                SDK,
                18,
                "sub-authenticator failed to be added in function `OnAuthenticatorAdded` "
                "as type is not registered in manager",
            )
        sub_id = f"{authenticator_id}.{index}"
        try:
            _on_added(sub.type, sub.config, sub_id)
        except ChainError as exc:
            raise exc.wrap(
                f"sub-authenticator `OnAuthenticatorAdded` failed (sub-authenticator id = {sub_id})"
            ) from exc


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


# --- timestamp nonces -------------------------------------------------------------------------


@dataclass(frozen=True)
class TimestampNonceState:
    """``TimestampNonceDetails`` of one account.

    Attributes:
        nonces: The accepted timestamp nonces still tracked (at most 20).
        max_ejected: The largest nonce ejected so far (nonces ≤ it are refused).
        found: Whether the account already had accountplus state.
    """

    nonces: tuple[int, ...] = ()
    max_ejected: int = 0
    found: bool = False


def is_timestamp_nonce(sequence: int) -> bool:
    """A sequence ≥ 2^40 is a timestamp nonce in milliseconds."""
    return sequence >= TIMESTAMP_NONCE_CUTOFF


def process_timestamp_nonce(
    state: TimestampNonceState, ts_nonce: int, block_time_ms: int
) -> TimestampNonceState:
    """``ProcessTimestampNonce``: accept a nonce and return the account's new nonce state.

    Args:
        state: Current state of the account.
        ts_nonce: The signer info's sequence (≥ 2^40).
        block_time_ms: Current block time in unix milliseconds.

    Returns:
        The updated state.

    Raises:
        ChainError: ``sdk`` 32 when outside ±30 s of block time, reused, or not larger than
            the smallest of the last 20.
    """
    if not (
        block_time_ms - MAX_TIME_IN_PAST_MS <= ts_nonce <= block_time_ms + MAX_TIME_IN_FUTURE_MS
    ):
        raise ChainError.registered(
            SDK, 32, f"timestamp nonce {ts_nonce} not within valid time window"
        )
    if not state.found:
        return TimestampNonceState((ts_nonce,), 0, True)
    # EjectStaleTimestampNonces.
    oldest_allowed = block_time_ms - MAX_TIME_IN_PAST_MS
    nonces = [n for n in state.nonces if n >= oldest_allowed]
    max_ejected = max([state.max_ejected, *(n for n in state.nonces if n < oldest_allowed)])
    # AttemptTimestampNonceUpdate.
    rejected = ChainError.registered(SDK, 32, f"timestamp nonce {ts_nonce} rejected")
    if ts_nonce <= max_ejected or ts_nonce in nonces:
        raise rejected
    if len(nonces) < MAX_TIMESTAMP_NONCES:
        return TimestampNonceState((*nonces, ts_nonce), max_ejected, True)
    min_index = min(range(len(nonces)), key=lambda i: (nonces[i], i))
    if ts_nonce <= nonces[min_index]:
        raise rejected
    max_ejected = nonces[min_index]
    nonces[min_index] = ts_nonce
    return TimestampNonceState(tuple(nonces), max_ejected, True)


# --- the ante handler -------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountInfo:
    """What the ante handler reads of an auth account."""

    address: str
    account_number: int
    sequence: int
    pub_key: bytes | None


class ChainView(Protocol):
    """Read-only chain state the ante handler needs."""

    def account(self, address: str) -> AccountInfo | None:
        """The auth account at ``address``, or None."""
        ...

    def authenticator(self, address: str, authenticator_id: int) -> tuple[str, bytes] | None:
        """``(type, config)`` of an account's authenticator, or None."""
        ...

    def nonce_state(self, address: str) -> TimestampNonceState:
        """The account's timestamp-nonce state."""
        ...


@dataclass
class AnteOutcome:
    """State changes an accepted transaction makes in the ante handler.

    Attributes:
        short_term: All messages are short-term clob messages (no sequence check/increment).
        timestamp_nonce: The single signature uses a timestamp nonce (no increment).
        authenticators: Selected authenticator id per message, when the authenticator flow ran.
        set_pub_keys: Address → public key to store (classic flow, first use).
        increment_sequence: Addresses whose sequence is incremented.
        nonce_updates: Address → new timestamp-nonce state.
    """

    short_term: bool
    timestamp_nonce: bool
    authenticators: tuple[int, ...] | None = None
    set_pub_keys: dict[str, bytes] = field(default_factory=dict)
    increment_sequence: list[str] = field(default_factory=list)
    nonce_updates: dict[str, TimestampNonceState] = field(default_factory=dict)


def _validate_basic(tx: DecodedTx) -> None:
    if not tx.messages:
        raise ChainError.registered(SDK, 18, "must contain at least one message")
    if not tx.signatures:
        raise ChainError.registered(SDK, 15)
    if len(tx.signatures) != len(tx.signers):
        raise ChainError.registered(
            SDK,
            4,
            f"wrong number of signers; expected {len(tx.signers)}, got {len(tx.signatures)}",
        )
    if len(tx.signer_infos) != len(tx.signatures):
        raise ChainError.registered(
            SDK,
            4,
            f"invalid number of signer;  expected: {len(tx.signer_infos)}, "
            f"got {len(tx.signatures)}",
        )
    clob = [
        m for m in tx.messages if isinstance(m, MsgPlaceOrder | MsgCancelOrder | MsgBatchCancel)
    ]
    if clob and len(tx.messages) > 1:
        raise ChainError.registered(
            SDK,
            18,
            "a transaction containing MsgCancelOrder or MsgPlaceOrder or MsgBatchCancel "
            "may not contain more than one message",
        )


def _signer_account(view: ChainView, address: str) -> AccountInfo:
    account = view.account(address)
    if account is None:
        raise ChainError.registered(SDK, 9, f"account {address} does not exist")
    return account


def run_ante(
    tx: DecodedTx,
    view: ChainView,
    *,
    chain_id: str,
    block_time_ms: int,
    simulate: bool = False,
    clob_pair_filter_fail_closed: bool = False,
) -> AnteOutcome:
    """Run the dYdX ante handler's authentication steps on a decoded transaction.

    Nothing is written: the caller applies the returned :class:`AnteOutcome` only when the
    rest of the transaction (the messages) is accepted too.

    Args:
        tx: The decoded transaction.
        view: Chain state.
        chain_id: The node's chain id (part of the signed bytes).
        block_time_ms: Current block time in unix ms (timestamp-nonce window).
        simulate: Skip signature checks and pubkey/address matching, as Simulate does.
        clob_pair_filter_fail_closed: See :func:`authenticate`.

    Returns:
        The state changes to apply on acceptance.

    Raises:
        ChainError: The first check that fails, with the chain's code, codespace and text.
    """
    _validate_basic(tx)
    short_term = should_skip_sequence_validation(tx.messages)
    timestamp_nonce = len(tx.signer_infos) == 1 and is_timestamp_nonce(tx.signer_infos[0].sequence)
    outcome = AnteOutcome(short_term=short_term, timestamp_nonce=timestamp_nonce)

    # Replay protection comes before any signature check.
    if not short_term:
        for address, info in zip(tx.signers, tx.signer_infos, strict=True):
            account = _signer_account(view, address)
            if is_timestamp_nonce(info.sequence):
                outcome.nonce_updates[address] = process_timestamp_nonce(
                    view.nonce_state(address), info.sequence, block_time_ms
                )
            elif info.sequence != account.sequence:
                raise ChainError.registered(
                    SDK,
                    32,
                    f"account sequence mismatch, expected {account.sequence}, got {info.sequence}",
                )

    selected = tx.selected_authenticators
    if selected:
        outcome.authenticators = selected
        _authenticator_flow(tx, view, selected, chain_id, simulate, clob_pair_filter_fail_closed)
    else:
        _classic_flow(tx, view, outcome, chain_id, simulate)

    if not short_term and not timestamp_nonce:
        outcome.increment_sequence = list(tx.signers)
    return outcome


def _authenticator_flow(
    tx: DecodedTx,
    view: ChainView,
    selected: tuple[int, ...],
    chain_id: str,
    simulate: bool,
    fail_closed: bool,
) -> None:
    if tx.auth_info.fee.payer and tx.auth_info.fee.payer != tx.signers[0]:
        raise ChainError.registered(SDK, 4, "fee payer must be the first signer")
    if len(selected) != len(tx.messages):
        raise ChainError.registered(
            SDK,
            18,
            "Mismatch between the number of selected authenticators and messages, "
            f"msg count {len(tx.messages)}, got {len(selected)} selected authenticators",
        )
    for index, message in enumerate(tx.messages):
        address = message_signer(message)
        url = type_url(message)
        authenticator_id = selected[index]
        context = (
            f"(account = {address}, authenticator id = {authenticator_id}, "
            f"msg index = {index}, msg type url = {url})"
        )
        stored = view.authenticator(address, authenticator_id)
        if stored is None:
            raise ChainError.registered(
                ACCOUNTPLUS, 1, f"authenticator {authenticator_id} not found for account {address}"
            ).wrap(f"failed to get initialized authenticator {context}")
        auth_type, config = stored
        try:
            root = initialize_authenticator(auth_type, config)
        except _GoError as exc:
            raise ChainError.internal() from exc
        except ChainError as exc:
            raise exc.wrap(
                f"authenticator {authenticator_id} with type {auth_type} failed to initialize "
                f"for account {address}"
            ).wrap(f"failed to get initialized authenticator {context}") from exc

        account = view.account(address)
        account_number = account.account_number if account else 0
        sequence = account.sequence if account else 0
        signature = tx.signatures[tx.signers.index(address)]
        request = AuthenticationRequest(
            message=message,
            signature=signature,
            sign_bytes=sign_doc_bytes(tx.body_bytes, tx.auth_info_bytes, chain_id, account_number),
            account_number=account_number,
            sequence=sequence,
            chain_id=chain_id,
            simulate=simulate,
        )
        try:
            authenticate(
                root, request, str(authenticator_id), clob_pair_filter_fail_closed=fail_closed
            )
        except ChainError as exc:
            raise exc.wrap(
                f"authentication failed for message {index}, authenticator id {authenticator_id}, "
                f"type {auth_type}"
            ) from exc


def _classic_flow(
    tx: DecodedTx, view: ChainView, outcome: AnteOutcome, chain_id: str, simulate: bool
) -> None:
    # SetPubKeyDecorator: the signer info's key must derive the signer; stored on first use.
    pub_keys: dict[str, bytes | None] = {}
    for index, (address, info) in enumerate(zip(tx.signers, tx.signer_infos, strict=True)):
        if info.pub_key is not None and not simulate:
            if address_from_pubkey(info.pub_key) != address:
                raise ChainError.registered(
                    SDK,
                    8,
                    f"pubKey does not match signer address {address} with signer index: {index}",
                )
            try:
                PublicKey(info.pub_key)
            except ValueError as exc:
                raise ChainError.registered(SDK, 8, "invalid public key") from exc
        account = _signer_account(view, address)
        pub_key = account.pub_key
        if pub_key is None and info.pub_key is not None:
            pub_key = info.pub_key
            outcome.set_pub_keys[address] = info.pub_key
        pub_keys[address] = pub_key
    # SigVerificationDecorator.
    for address, signature in zip(tx.signers, tx.signatures, strict=True):
        account = _signer_account(view, address)
        pub_key = pub_keys[address]
        if simulate:
            continue
        if pub_key is None:
            raise ChainError.registered(SDK, 8, "pubkey on account is not set")
        sign_bytes = sign_doc_bytes(
            tx.body_bytes, tx.auth_info_bytes, chain_id, account.account_number
        )
        if not verify_secp256k1(pub_key, signature, sign_bytes):
            raise ChainError.registered(
                SDK,
                4,
                "signature verification failed; please verify account number "
                f"({account.account_number}) and chain-id ({chain_id}): "
                "(unable to verify single signer signature)",
            )


__all__ = [
    "ACCOUNTPLUS",
    "SDK",
    "AccountInfo",
    "AnteOutcome",
    "AuthenticationRequest",
    "Authenticator",
    "ChainError",
    "ChainView",
    "DecodedTx",
    "TimestampNonceState",
    "address_from_pubkey",
    "authenticate",
    "decode_tx",
    "initialize_authenticator",
    "is_short_term_clob_message",
    "is_timestamp_nonce",
    "is_valid_address",
    "message_signer",
    "process_timestamp_nonce",
    "run_ante",
    "should_skip_sequence_validation",
    "sign_doc_bytes",
    "tx_hash",
    "type_url",
    "unpack_message",
    "validate_new_authenticator",
    "verify_secp256k1",
]
