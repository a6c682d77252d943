"""Constants of the chain used by the ante handler and the authenticators."""

from __future__ import annotations

from v4_proto.dydxprotocol.accountplus.tx_pb2 import TxExtension

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
