"""The ante handler: replay protection, authenticator or classic flow, sequence bump."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from coincurve import PublicKey
from v4_proto.dydxprotocol.clob.tx_pb2 import MsgBatchCancel, MsgCancelOrder, MsgPlaceOrder

from doubles.dydx.auth.authenticate import AuthenticationRequest, authenticate
from doubles.dydx.auth.authenticators import initialize_authenticator
from doubles.dydx.auth.decoding import DecodedTx
from doubles.dydx.auth.errors import ACCOUNTPLUS, SDK, ChainError, _GoError
from doubles.dydx.auth.messages import (
    message_signer,
    should_skip_sequence_validation,
    sign_doc_bytes,
    type_url,
    verify_secp256k1,
)
from doubles.dydx.auth.nonces import (
    TimestampNonceState,
    is_timestamp_nonce,
    process_timestamp_nonce,
)
from doubles.dydx.keys import address_from_pubkey

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
