"""Transaction decoding, signature checks and authenticators, as a dYdX v4 node does them.

Pure functions, no I/O: the gRPC node (:mod:`doubles.dydx.node`) feeds them the broadcast
bytes and a read-only view of the chain, and applies the state changes they return only when
the whole transaction passes, as CheckTx does with its branched store.

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

from doubles.dydx.auth.ante import AccountInfo, AnteOutcome, ChainView, run_ante
from doubles.dydx.auth.authenticate import AuthenticationRequest, authenticate
from doubles.dydx.auth.authenticators import (
    Authenticator,
    initialize_authenticator,
    validate_new_authenticator,
)
from doubles.dydx.auth.decoding import DecodedTx, decode_tx, tx_hash, unpack_message
from doubles.dydx.auth.errors import ACCOUNTPLUS, SDK, ChainError
from doubles.dydx.auth.messages import (
    is_short_term_clob_message,
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
from doubles.dydx.keys import address_from_pubkey, is_valid_address

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
