"""secp256k1 keys and dYdX bech32 addresses for the dYdX double.

The double derives addresses itself (instead of trusting the client under test) exactly as the
chain does for secp256k1 accounts: ``bech32("dydx", ripemd160(sha256(compressed_pubkey)))``.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass

import bech32
from coincurve import PrivateKey
from Crypto.Hash import RIPEMD160

BECH32_PREFIX = "dydx"


def address_from_pubkey(pub_key: bytes) -> str:
    """Return the dYdX bech32 address of a 33-byte compressed secp256k1 public key.

    Args:
        pub_key: Compressed secp256k1 public key.

    Returns:
        The ``dydx1…`` address.
    """
    digest = RIPEMD160.new(hashlib.sha256(pub_key).digest()).digest()
    words = bech32.convertbits(digest, 8, 5)
    assert words is not None  # 8→5 bit conversion with padding cannot fail
    return bech32.bech32_encode(BECH32_PREFIX, words)


def is_valid_address(address: str) -> bool:
    """Tell whether ``address`` is a well-formed ``dydx`` bech32 account address."""
    hrp, data = bech32.bech32_decode(address)
    if hrp != BECH32_PREFIX or data is None:
        return False
    raw = bech32.convertbits(data, 5, 8, False)
    return raw is not None and len(raw) in (20, 32)


@dataclass(frozen=True)
class KeyMaterial:
    """A freshly generated secp256k1 key and its dYdX identity.

    Attributes:
        private_key_hex: 32-byte private key as lowercase hex (no ``0x``).
        public_key: 33-byte compressed public key.
        address: The ``dydx1…`` address of the key.
    """

    private_key_hex: str
    public_key: bytes
    address: str


def new_key() -> KeyMaterial:
    """Generate a random secp256k1 key (tests only)."""
    key = PrivateKey()
    pub = key.public_key.format(compressed=True)
    return KeyMaterial(key.to_hex(), pub, address_from_pubkey(pub))


MSG_PLACE_ORDER = "/dydxprotocol.clob.MsgPlaceOrder"
MSG_CANCEL_ORDER = "/dydxprotocol.clob.MsgCancelOrder"
MSG_BATCH_CANCEL = "/dydxprotocol.clob.MsgBatchCancel"


def web_app_trading_key_config(pub_key: bytes) -> bytes:
    """The ``AllOf`` config the dYdX web app adds for an "API Trading Key".

    Byte-for-byte what v4-client-js ``getAuthorizeNewTradingKeyArguments`` builds:
    ``AllOf[SignatureVerification(pubkey), AnyOf[MessageFilter(MsgPlaceOrder),
    MessageFilter(MsgCancelOrder), MessageFilter(MsgBatchCancel)], SubaccountFilter("0")]``,
    JSON without spaces, sub-configs base64 (Go ``[]byte``).

    Args:
        pub_key: 33-byte compressed public key of the trading key.
    """

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    def compact(value: object) -> str:
        return json.dumps(value, separators=(",", ":"))

    message_filters = [
        {"type": "MessageFilter", "config": b64(url.encode())}
        for url in (MSG_PLACE_ORDER, MSG_CANCEL_ORDER, MSG_BATCH_CANCEL)
    ]
    sub_authenticators = [
        {"type": "SignatureVerification", "config": b64(pub_key)},
        {"type": "AnyOf", "config": b64(compact(message_filters).encode())},
        {"type": "SubaccountFilter", "config": b64(b"0")},
    ]
    return compact(sub_authenticators).encode()
