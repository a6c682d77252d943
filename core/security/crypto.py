"""Encryption at rest (AES-256-GCM with a keyring) and secret-token helpers.

Every ciphertext carries the id of the key that sealed it and is bound by associated data to
the row and purpose it belongs to, so a ciphertext copied to another user's row fails to open.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.security.sealing import (
    SEALED_PREFIX,
    SealingPublicKey,
    UnsealError,
    derive_private_key,
    unseal,
)

NONCE_BYTES = 12  # 96-bit random nonce, fresh for every encryption
KEY_BYTES = 32  # AES-256
_KEY_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class KeyringError(ValueError):
    """``ENCRYPTION_KEYS`` is malformed."""


class DecryptionError(Exception):
    """A ciphertext could not be opened: wrong key, wrong associated data or tampering."""


@dataclass(frozen=True, slots=True)
class Sealed:
    """A ciphertext as stored: the key id plus ``nonce || ciphertext || tag``."""

    key_id: str
    blob: bytes


class Keyring:
    """A set of AES-256 keys by id, one of which (the first listed) is the primary.

    New ciphertexts are always sealed under the primary; any key in the ring opens the
    ciphertexts sealed under it, which is what makes rotation possible while running.
    """

    def __init__(self, keys: dict[str, bytes], primary: str) -> None:
        if primary not in keys:
            raise KeyringError("the primary key is not in the keyring")
        self._keys = dict(keys)
        # Each entry's X25519 private key, derived once (opening a box is on the hot path).
        self._box_keys: dict[str, X25519PrivateKey] = {}
        self.primary_id = primary

    def __repr__(self) -> str:  # never print key material
        return f"Keyring(primary={self.primary_id!r}, ids={sorted(self._keys)!r})"

    @classmethod
    def parse(cls, text: str) -> Keyring:
        """Parse ``id:base64key[,id:base64key...]``; the first entry is the primary.

        Raises:
            KeyringError: Describing the problem without echoing key material.
        """
        entries = [part.strip() for part in text.split(",") if part.strip()]
        if not entries:
            raise KeyringError("empty keyring")
        keys: dict[str, bytes] = {}
        for index, entry in enumerate(entries, start=1):
            key_id, sep, encoded = entry.partition(":")
            if not sep or not _KEY_ID_RE.match(key_id):
                raise KeyringError(f"entry {index} is not 'id:base64key'")
            try:
                padded = encoded + "=" * (-len(encoded) % 4)
                key = base64.b64decode(padded, altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise KeyringError(f"key {key_id!r} is not base64") from None
            if len(key) != KEY_BYTES:
                raise KeyringError(f"key {key_id!r} is not 32 bytes")
            if key_id in keys:
                raise KeyringError(f"key id {key_id!r} appears twice")
            keys[key_id] = key
        return cls(keys, primary=entries[0].partition(":")[0])

    @property
    def key_ids(self) -> frozenset[str]:
        """Ids of every key in the ring."""
        return frozenset(self._keys)

    def encrypt(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Seal ``plaintext`` under the primary key, bound to ``aad``."""
        nonce = os.urandom(NONCE_BYTES)
        ciphertext = AESGCM(self._keys[self.primary_id]).encrypt(nonce, plaintext, aad)
        return Sealed(key_id=self.primary_id, blob=nonce + ciphertext)

    def sealing_key(self) -> SealingPublicKey:
        """The public sealing key of the primary entry (``KEY_SEALING_PUBLIC_KEY``)."""
        return SealingPublicKey.of_aes_key(self.primary_id, self._keys[self.primary_id])

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Seal to the primary's public key, as a process without the keyring would."""
        key = self.sealing_key()
        return Sealed(key_id=key.sealed_key_id, blob=key.seal(plaintext, aad))

    def decrypt(self, sealed: Sealed, aad: bytes) -> bytes:
        """Open a ciphertext sealed by any key of the ring, or a box sealed to the public
        key of any of its entries (key id ``x:<entry id>``).

        Raises:
            DecryptionError: Unknown key id, wrong ``aad`` or a tampered blob.
        """
        entry_id = sealed.key_id.removeprefix(SEALED_PREFIX)
        key = self._keys.get(entry_id)
        if key is None:
            raise DecryptionError(f"key {entry_id!r} is not in the keyring")
        if sealed.key_id.startswith(SEALED_PREFIX):
            try:
                private = self._box_keys.get(entry_id)
                if private is None:
                    private = self._box_keys[entry_id] = derive_private_key(key)
                return unseal(private, sealed.blob, aad)
            except UnsealError:
                raise DecryptionError("sealed box does not open with this context") from None
        nonce, ciphertext = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, aad)
        except InvalidTag:
            raise DecryptionError("ciphertext does not open with this key and context") from None

    def reseal(self, sealed: Sealed, aad: bytes) -> Sealed:
        """Re-encrypt under the primary key (a no-op when already under it)."""
        if sealed.key_id == self.primary_id:
            return sealed
        return self.encrypt(self.decrypt(sealed, aad), aad)


class Sealer(Protocol):
    """What can seal a secret for the worker: a :class:`SealingPublicKey` (the bot, the
    web) or the :class:`Keyring` itself (the worker, tools)."""

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Seal ``plaintext`` bound to ``aad``."""
        ...


@dataclass(frozen=True, slots=True)
class PublicSealer:
    """A :class:`Sealer` holding only the worker's public sealing key."""

    key: SealingPublicKey

    def seal(self, plaintext: bytes, aad: bytes) -> Sealed:
        """Seal to the worker's public key."""
        return Sealed(key_id=self.key.sealed_key_id, blob=self.key.seal(plaintext, aad))


def associated_data(purpose: str, owner_id: int) -> bytes:
    """Associated data binding a ciphertext to one purpose of one row owner."""
    return f"tv2dydx|v1|{purpose}|{owner_id}".encode()


def generate_key_entry() -> str:
    """A new keyring entry ``id:base64key`` with a random id and 256-bit key."""
    key = base64.urlsafe_b64encode(secrets.token_bytes(KEY_BYTES)).decode().rstrip("=")
    return f"k{secrets.token_hex(4)}:{key}"


def new_token(nbytes: int = 24) -> str:
    """A URL-safe random token (default 192 bits)."""
    return secrets.token_urlsafe(nbytes)


def token_hash(token: str) -> str:
    """The SHA-256 hex digest under which a token is stored and looked up."""
    return hashlib.sha256(token.encode()).hexdigest()


def constant_time_equals(left: str, right: str) -> bool:
    """Compare two secrets without leaking where they differ."""
    return hmac.compare_digest(left.encode(), right.encode())


# Purposes bound into associated data; a ciphertext only opens for its own purpose.
CREDENTIAL_PURPOSE = "credentials.api_key"


def credential_aad(user_id: int, owner_address: str, authenticator_id: int) -> bytes:
    """Associated data of an API trading key sealed for the worker: bound to the user, the
    owner account and the authenticator, so a row copied to another user, or edited to point
    at another owner or authenticator, does not open."""
    return f"tv2dydx|v2|{CREDENTIAL_PURPOSE}|{user_id}|{owner_address}|{authenticator_id}".encode()


def seal_credential(
    sealer: Sealer, private_key: bytes, user_id: int, owner_address: str, authenticator_id: int
) -> Sealed:
    """Seal a trading key for storage (the key id says ``x:<entry>``)."""
    return sealer.seal(private_key, credential_aad(user_id, owner_address, authenticator_id))


def open_credential(
    keyring: Keyring, sealed: Sealed, user_id: int, owner_address: str, authenticator_id: int
) -> bytes:
    """Open a stored trading key (worker only).

    A sealed box (key id ``x:…``) is bound to user, owner and authenticator; a row written
    before sealed boxes (plain AES-GCM, key id without ``x:``) to the user only, and still
    opens until ``tv2dydx keys rotate`` turns it into a sealed box.

    Raises:
        DecryptionError: It does not open for this user, owner and authenticator.
    """
    if sealed.key_id.startswith(SEALED_PREFIX):
        aad = credential_aad(user_id, owner_address, authenticator_id)
    else:
        aad = associated_data(CREDENTIAL_PURPOSE, user_id)
    return keyring.decrypt(sealed, aad)
