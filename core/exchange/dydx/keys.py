"""dYdX v4 addresses, API trading keys and authenticator trees: pure functions, no I/O.

What a permissioned key can do is decided on chain by the owner's authenticators
(``x/accountplus``). This module mirrors how the chain initialises them (``Initialize`` in
``x/accountplus/authenticator/*.go``) and answers one question: with only this key's
signature, which message types could anyone authorise on the owner's account?

Two chain facts shape the analysis:

* ``SubaccountFilter`` and ``ClobPairIdFilter`` only inspect clob messages and *pass every
  other message*, so a tree restricted by them alone still permits transfers and withdrawals;
* an authenticator whose configuration does not initialise authorises nothing (the chain
  fails the transaction), so it cannot widen what a key can do.

Nothing here ever puts key material into an exception message.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import bech32
from coincurve import PrivateKey
from Crypto.Hash import RIPEMD160

from core.exchange.keys import KeyCheckError, KeyProblem
from core.security.secrets import contains_private_key, looks_like_mnemonic

BECH32_PREFIX = "dydx"
ADDRESS_BYTES = 20  # secp256k1 accounts; 32-byte addresses belong to modules, not people
PUBLIC_KEY_BYTES = 33

MSG_PLACE_ORDER = "/dydxprotocol.clob.MsgPlaceOrder"
MSG_CANCEL_ORDER = "/dydxprotocol.clob.MsgCancelOrder"
MSG_BATCH_CANCEL = "/dydxprotocol.clob.MsgBatchCancel"
TRADING_MESSAGES = frozenset({MSG_PLACE_ORDER, MSG_CANCEL_ORDER, MSG_BATCH_CANCEL})

# Authenticator types registered by the dYdX app (app/app.go).
SIGNATURE_VERIFICATION = "SignatureVerification"
MESSAGE_FILTER = "MessageFilter"
SUBACCOUNT_FILTER = "SubaccountFilter"
CLOB_PAIR_ID_FILTER = "ClobPairIdFilter"
ALL_OF = "AllOf"
ANY_OF = "AnyOf"

_HEX_KEY_RE = re.compile(r"^[0-9a-fA-F]{64}$")
_MAX_TREE_DEPTH = 16  # the chain caps a config at 1 KiB, so real trees are shallow


# --- addresses and keys -----------------------------------------------------------------------


def parse_address(text: str) -> str:
    """Return the canonical (lower-case) form of a ``dydx1…`` account address.

    Raises:
        KeyCheckError: ``MNEMONIC`` for a seed phrase, ``KEY_INSTEAD_OF_ADDRESS`` for
            something shaped like a private key, else ``MALFORMED_ADDRESS``.
    """
    if looks_like_mnemonic(text):
        raise KeyCheckError(KeyProblem.MNEMONIC)
    if contains_private_key(text):
        raise KeyCheckError(KeyProblem.KEY_INSTEAD_OF_ADDRESS)
    candidate = text.strip()
    hrp, data = bech32.bech32_decode(candidate)  # checksum, case rules, length ≤ 90
    if hrp != BECH32_PREFIX or data is None:
        raise KeyCheckError(KeyProblem.MALFORMED_ADDRESS)
    raw = bech32.convertbits(data, 5, 8, False)
    if raw is None or len(raw) != ADDRESS_BYTES:
        raise KeyCheckError(KeyProblem.MALFORMED_ADDRESS)
    return candidate.lower()


def parse_private_key(text: str) -> bytes:
    """Parse a secp256k1 private key given as 64 hex characters, optionally ``0x``-prefixed.

    Whitespace anywhere is ignored: a key copied across a line break is still the key.

    Returns:
        The 32 raw key bytes.

    Raises:
        KeyCheckError: ``MNEMONIC``, ``MALFORMED_KEY`` or ``INVALID_KEY`` (zero or not below
            the curve order).
    """
    if looks_like_mnemonic(text):
        raise KeyCheckError(KeyProblem.MNEMONIC)
    compact = "".join(text.split())
    if compact[:2] in ("0x", "0X"):
        compact = compact[2:]
    if not _HEX_KEY_RE.match(compact):
        raise KeyCheckError(KeyProblem.MALFORMED_KEY)
    # Secret-named locals: Sentry's frame variables are blanked by name, not by shape.
    private_key = bytes.fromhex(compact)
    try:
        PrivateKey(private_key)
    except ValueError:
        raise KeyCheckError(KeyProblem.INVALID_KEY) from None
    return private_key


def public_key_of(private_key: bytes) -> bytes:
    """The 33-byte compressed public key of a 32-byte private key."""
    return bytes(PrivateKey(private_key).public_key.format(compressed=True))


def address_of(public_key: bytes) -> str:
    """The ``dydx1…`` address of a compressed public key: bech32(ripemd160(sha256(pubkey)))."""
    digest = RIPEMD160.new(hashlib.sha256(public_key).digest()).digest()
    words = bech32.convertbits(digest, 8, 5)
    assert words is not None  # 8→5 bits with padding cannot fail
    return str(bech32.bech32_encode(BECH32_PREFIX, words))


def check_not_master(owner_address: str, key_address: str) -> None:
    """Refuse a key that *is* the owner account's key (holding it would be custodial).

    Raises:
        KeyCheckError: ``MASTER_KEY``.
    """
    if owner_address == key_address:
        raise KeyCheckError(KeyProblem.MASTER_KEY)


# --- authenticators ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredAuthenticator:
    """An authenticator as ``GetAuthenticators`` returns it."""

    id: int
    type: str
    config: bytes


@dataclass(frozen=True, slots=True)
class AuthNode:
    """An initialised authenticator (a node of the tree).

    Attributes:
        type: Registered type name.
        public_key: Key of a ``SignatureVerification``.
        message_types: Whitelist of a ``MessageFilter``.
        numbers: Whitelist of a ``SubaccountFilter`` / ``ClobPairIdFilter``.
        children: Sub-authenticators of an ``AllOf`` / ``AnyOf``.
    """

    type: str
    public_key: bytes = b""
    message_types: frozenset[str] = frozenset()
    numbers: frozenset[int] = frozenset()
    children: tuple[AuthNode, ...] = ()


class AuthenticatorInitError(ValueError):
    """The chain would fail to initialise this authenticator (it authorises nothing)."""


def _parse_uint32(text: str) -> int:
    # strconv.ParseUint(text, 10, 32): ASCII digits only, no sign, no spaces.
    if not text or not text.isascii() or not text.isdigit() or int(text) > 0xFFFFFFFF:
        raise AuthenticatorInitError("not a uint32")
    return int(text)


def _sub_configs(config: bytes) -> list[tuple[str, bytes]]:
    """Decode a composite config as Go's ``json.Unmarshal`` into ``[]SubAuthenticatorInitData``.

    Field names match case-insensitively; ``config`` is standard padded base64 or an array of
    byte values (what the Python client emits before base64-converting).
    """
    try:
        items = json.loads(config.decode())
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuthenticatorInitError("composite config is not JSON") from None
    if items is None:
        return []
    if not isinstance(items, list):
        raise AuthenticatorInitError("composite config is not a list")
    result: list[tuple[str, bytes]] = []
    for item in items:
        if not isinstance(item, dict):
            raise AuthenticatorInitError("sub-authenticator is not an object")
        fields = {str(key).lower(): value for key, value in item.items()}
        type_name = fields.get("type") or ""
        raw = fields.get("config")
        if not isinstance(type_name, str):
            raise AuthenticatorInitError("sub-authenticator type is not a string")
        if raw is None:
            data = b""
        elif isinstance(raw, str):
            try:
                data = base64.b64decode(raw, validate=True)
            except binascii.Error:
                raise AuthenticatorInitError("sub-authenticator config is not base64") from None
        elif isinstance(raw, list) and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw
        ):
            data = bytes(raw)
        else:
            raise AuthenticatorInitError("sub-authenticator config is not bytes")
        result.append((type_name, data))
    return result


def parse_authenticator(auth_type: str, config: bytes, *, _depth: int = 0) -> AuthNode:
    """Initialise an authenticator tree the way the chain does.

    Raises:
        AuthenticatorInitError: The chain would refuse to initialise it.
    """
    if _depth > _MAX_TREE_DEPTH:
        raise AuthenticatorInitError("authenticator tree too deep")
    if auth_type == SIGNATURE_VERIFICATION:
        return AuthNode(auth_type, public_key=bytes(config))
    if auth_type == MESSAGE_FILTER:
        # strings.Split(string(config), ","): no trimming, exact type URLs.
        types = frozenset(config.decode("utf-8", "surrogateescape").split(","))
        return AuthNode(auth_type, message_types=types)
    if auth_type in (SUBACCOUNT_FILTER, CLOB_PAIR_ID_FILTER):
        text = config.decode("utf-8", "surrogateescape")
        return AuthNode(auth_type, numbers=frozenset(_parse_uint32(p) for p in text.split(",")))
    if auth_type in (ALL_OF, ANY_OF):
        subs = _sub_configs(config)
        if len(subs) < 2:
            raise AuthenticatorInitError("a composite needs at least two sub-authenticators")
        children = tuple(
            parse_authenticator(sub_type, sub_config, _depth=_depth + 1)
            for sub_type, sub_config in subs
        )
        return AuthNode(auth_type, children=children)
    raise AuthenticatorInitError("authenticator type is not registered")


# A set of message type URLs; None stands for "every message type".
TypeSet = frozenset[str] | None


def _intersect(sets: Iterable[TypeSet]) -> TypeSet:
    result: TypeSet = None
    for item in sets:
        if item is not None:
            result = item if result is None else result & item
    return result


def _union(sets: Iterable[TypeSet]) -> TypeSet:
    result: frozenset[str] = frozenset()
    for item in sets:
        if item is None:
            return None
        result |= item
    return result


def permitted_messages(node: AuthNode, public_key: bytes) -> TypeSet:
    """Message types ``node`` can authorise when the only signature available is this key's.

    ``SignatureVerification`` of another key never passes; filters on subaccounts or clob
    pairs pass every type (they skip non-clob messages); ``AllOf`` permits what all its
    children permit, ``AnyOf`` what any child permits.
    """
    if node.type == SIGNATURE_VERIFICATION:
        return None if node.public_key == public_key else frozenset()
    if node.type == MESSAGE_FILTER:
        return node.message_types
    if node.type in (SUBACCOUNT_FILTER, CLOB_PAIR_ID_FILTER):
        return None
    if node.type == ALL_OF:
        return _intersect(permitted_messages(child, public_key) for child in node.children)
    return _union(permitted_messages(child, public_key) for child in node.children)


def _places_orders(node: AuthNode, public_key: bytes) -> bool:
    permitted = permitted_messages(node, public_key)
    return permitted is None or MSG_PLACE_ORDER in permitted


def permitted_numbers(node: AuthNode, public_key: bytes, filter_type: str) -> frozenset[int] | None:
    """Subaccounts (``SubaccountFilter``) or clob pairs (``ClobPairIdFilter``) on which this
    key can place orders through ``node``; None when unrestricted."""
    if node.type == filter_type:
        return node.numbers
    if node.type in (ALL_OF, ANY_OF):
        found: list[frozenset[int] | None] = [
            permitted_numbers(child, public_key, filter_type)
            for child in node.children
            if node.type == ALL_OF or _places_orders(child, public_key)
        ]
        if node.type == ANY_OF:
            if any(item is None for item in found):
                return None
            return frozenset().union(*(item for item in found if item is not None))
        restricted = [item for item in found if item is not None]
        return frozenset.intersection(*restricted) if restricted else None
    return None


def mentions_key(config: bytes, public_key: bytes, *, _depth: int = 0) -> bool:
    """Whether an authenticator config we could not parse carries this key anywhere: as raw
    bytes, base64, hex, or inside nested JSON (strings decoded as base64, byte arrays), so an
    authenticator we do not understand is never skipped when it may concern the key."""
    encodings = (
        public_key,
        base64.b64encode(public_key),
        base64.urlsafe_b64encode(public_key),
        base64.b64encode(public_key).rstrip(b"="),
        public_key.hex().encode(),
    )
    if any(encoded in config for encoded in encodings):
        return True
    if _depth > _MAX_TREE_DEPTH:
        return False
    try:
        document = json.loads(config.decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        return False
    pending: list[Any] = [document]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.values())
        elif isinstance(item, list):
            if item and all(isinstance(b, int) and 0 <= b < 256 for b in item):
                if mentions_key(bytes(item), public_key, _depth=_depth + 1):
                    return True
            else:
                pending.extend(item)
        elif isinstance(item, str):
            try:
                decoded = base64.b64decode(item + "=" * (-len(item) % 4))
            except (binascii.Error, ValueError):
                continue
            if mentions_key(decoded, public_key, _depth=_depth + 1):
                return True
    return False


def involves_key(node: AuthNode, public_key: bytes) -> bool:
    """Whether this key's signature appears anywhere in the tree."""
    if node.type == SIGNATURE_VERIFICATION:
        return node.public_key == public_key
    return any(involves_key(child, public_key) for child in node.children)


@dataclass(frozen=True, slots=True)
class TradingAuthorization:
    """The authenticator through which a trading key places orders.

    Attributes:
        authenticator_id: Id to select in ``TxExtension.selected_authenticators``.
        subaccounts: Subaccount numbers it may trade; None when unrestricted.
        clob_pair_ids: Clob pairs (markets) it may trade; None when unrestricted.
    """

    authenticator_id: int
    subaccounts: frozenset[int] | None
    clob_pair_ids: frozenset[int] | None

    @property
    def subaccount_number(self) -> int:
        """The subaccount to trade: 0 (cross margin) when allowed, else the lowest allowed."""
        if self.subaccounts is None or 0 in self.subaccounts:
            return 0
        return min(self.subaccounts)


def find_trading_authorization(
    authenticators: Sequence[StoredAuthenticator], public_key: bytes
) -> TradingAuthorization:
    """Check that this key can trade on the owner's account and do nothing else.

    Every authenticator of the account that mentions the key is examined, not just the one
    that will be used: a second, broader authenticator would let the key move funds anyway.

    Args:
        authenticators: All the owner's authenticators (``GetAuthenticators``).
        public_key: The trading key's compressed public key.

    Returns:
        The authenticator to trade with (preferring subaccount 0, then the newest).

    Raises:
        KeyCheckError: ``NO_AUTHENTICATOR`` (the key is not authorised on this account),
            ``UNREADABLE_AUTHENTICATOR`` (an authenticator that mentions the key cannot be
            parsed or understood: fail closed), ``TOO_BROAD`` (some authenticator lets it
            authorise other messages than placing and cancelling orders), ``CANNOT_TRADE``
            (authorised, but not to place orders).
    """
    involved: list[tuple[StoredAuthenticator, AuthNode]] = []
    for stored in authenticators:
        try:
            node = parse_authenticator(stored.type, stored.config)
        except AuthenticatorInitError:
            # Either the chain cannot initialise it either (it authorises nothing) or the
            # chain knows something we do not (a new type, an encoding we misread): when it
            # concerns this key, refuse rather than guess.
            if mentions_key(stored.config, public_key):
                raise KeyCheckError(KeyProblem.UNREADABLE_AUTHENTICATOR) from None
            continue
        if involves_key(node, public_key):
            involved.append((stored, node))
    if not involved:
        raise KeyCheckError(KeyProblem.NO_AUTHENTICATOR)
    for _stored, node in involved:
        permitted = permitted_messages(node, public_key)
        if permitted is None or not permitted <= TRADING_MESSAGES:
            raise KeyCheckError(KeyProblem.TOO_BROAD)
    usable: list[TradingAuthorization] = []
    for stored, node in involved:
        if not _places_orders(node, public_key):
            continue
        subaccounts = permitted_numbers(node, public_key, SUBACCOUNT_FILTER)
        clob_pairs = permitted_numbers(node, public_key, CLOB_PAIR_ID_FILTER)
        if subaccounts == frozenset() or clob_pairs == frozenset():
            continue  # an empty whitelist matches no order
        usable.append(TradingAuthorization(stored.id, subaccounts, clob_pairs))
    if not usable:
        raise KeyCheckError(KeyProblem.CANNOT_TRADE)
    return max(usable, key=lambda a: (a.subaccount_number == 0, a.authenticator_id))
