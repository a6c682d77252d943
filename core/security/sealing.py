"""Sealing a secret to the worker: public-key encryption the bot and web can do without the
keyring, which only the worker can open (issue #13, part 2).

Each keyring entry (``core.security.crypto.Keyring``) also yields an X25519 key pair, derived
from its AES key with HKDF under its own label, so one secret per entry still covers both.
The processes that take a trading key in (the bot, later the web's Mini App form) hold only
the *public* half (``KEY_SEALING_PUBLIC_KEY``, printed by ``tv2dydx keys public``).

A sealed box is ECIES over X25519: a fresh ephemeral key pair per message, the shared secret
through HKDF-SHA256 (salted with both public keys) into a one-time AES-256-GCM key, and the
caller's associated data bound into the tag. Stored as ``ephemeral public (32) || nonce (12)
|| ciphertext || tag`` under the key id ``x:<entry id>`` (a colon never appears in an entry
id, so a sealed box is never mistaken for a plain AES-GCM ciphertext).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

SEALED_PREFIX = "x:"
PUBLIC_BYTES = 32
NONCE_BYTES = 12
_DERIVE_INFO = b"tv2dydx|x25519-sealing-key|v1"
_BOX_INFO = b"tv2dydx|sealed-box|v1"
_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,32}$")


class SealingKeyError(ValueError):
    """``KEY_SEALING_PUBLIC_KEY`` is malformed."""


class UnsealError(Exception):
    """A sealed box did not open: wrong key, wrong associated data or tampering."""


def _hkdf(material: bytes, *, salt: bytes | None, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(material)


def derive_private_key(aes_key: bytes) -> X25519PrivateKey:
    """The X25519 private key of a keyring entry (deterministic, domain-separated)."""
    return X25519PrivateKey.from_private_bytes(_hkdf(aes_key, salt=None, info=_DERIVE_INFO))


def _raw(public: X25519PublicKey) -> bytes:
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@dataclass(frozen=True, slots=True)
class SealingPublicKey:
    """The public half of a keyring entry's sealing key: seals, never opens.

    Attributes:
        key_id: The keyring entry it belongs to.
        public: The raw 32-byte X25519 public key.
    """

    key_id: str
    public: bytes

    @classmethod
    def of_aes_key(cls, key_id: str, aes_key: bytes) -> SealingPublicKey:
        """The public key of a keyring entry."""
        return cls(key_id, _raw(derive_private_key(aes_key).public_key()))

    @classmethod
    def parse(cls, text: str) -> SealingPublicKey:
        """Parse ``id:base64url(public key)`` (``tv2dydx keys public``).

        Raises:
            SealingKeyError: Describing the problem.
        """
        key_id, sep, encoded = text.strip().partition(":")
        if not sep or not _ID_RE.match(key_id):
            raise SealingKeyError("not 'id:base64key'")
        try:
            padded = encoded + "=" * (-len(encoded) % 4)
            public = base64.b64decode(padded, altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise SealingKeyError("the key is not base64") from None
        if len(public) != PUBLIC_BYTES:
            raise SealingKeyError("the key is not 32 bytes")
        return cls(key_id, public)

    def encode(self) -> str:
        """``id:base64url`` as :meth:`parse` reads it."""
        return f"{self.key_id}:{base64.urlsafe_b64encode(self.public).decode().rstrip('=')}"

    @property
    def sealed_key_id(self) -> str:
        """The key id a box sealed to this key is stored under."""
        return SEALED_PREFIX + self.key_id

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        """Seal ``plaintext`` so that only the holder of the keyring entry can open it.

        Returns:
            ``ephemeral public || nonce || ciphertext || tag``.
        """
        ephemeral = X25519PrivateKey.generate()
        ephemeral_public = _raw(ephemeral.public_key())
        shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(self.public))
        key = _hkdf(shared, salt=ephemeral_public + self.public, info=_BOX_INFO)
        nonce = os.urandom(NONCE_BYTES)
        return ephemeral_public + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def unseal(private: X25519PrivateKey, blob: bytes, aad: bytes) -> bytes:
    """Open a box sealed to ``private``'s public key.

    Raises:
        UnsealError: Wrong key, wrong ``aad``, truncated or tampered.
    """
    if len(blob) < PUBLIC_BYTES + NONCE_BYTES + 16:
        raise UnsealError("sealed box too short")
    ephemeral_public = blob[:PUBLIC_BYTES]
    nonce = blob[PUBLIC_BYTES : PUBLIC_BYTES + NONCE_BYTES]
    ciphertext = blob[PUBLIC_BYTES + NONCE_BYTES :]
    recipient = _raw(private.public_key())
    try:
        shared = private.exchange(X25519PublicKey.from_public_bytes(ephemeral_public))
    except ValueError:  # an all-zero shared secret: a malicious ephemeral key
        raise UnsealError("sealed box does not open") from None
    key = _hkdf(shared, salt=ephemeral_public + recipient, info=_BOX_INFO)
    try:
        return AESGCM(key).decrypt(nonce, ciphertext, aad)
    except InvalidTag:
        raise UnsealError("sealed box does not open with this key and context") from None
