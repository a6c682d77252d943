"""Sealing a trading key to the worker's public key (issue #13): the bot seals, only the
keyring opens, and the box is bound to user, owner address and authenticator."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.security.crypto import (
    CREDENTIAL_PURPOSE,
    DecryptionError,
    Keyring,
    PublicSealer,
    Sealed,
    associated_data,
    generate_key_entry,
    open_credential,
    seal_credential,
)
from core.security.sealing import SealingKeyError, SealingPublicKey

OWNER = "dydx1owner"


def test_the_public_key_seals_and_only_the_keyring_opens() -> None:
    ring = Keyring.parse(generate_key_entry())
    public = SealingPublicKey.parse(ring.sealing_key().encode())  # as the bot reads it
    sealed = seal_credential(PublicSealer(public), b"k" * 32, 7, OWNER, 3)
    assert sealed.key_id == f"x:{ring.primary_id}"
    assert b"k" * 32 not in sealed.blob
    assert open_credential(ring, sealed, 7, OWNER, 3) == b"k" * 32
    # Another keyring (another deployment, or a guessed key) cannot open it.
    with pytest.raises(DecryptionError):
        open_credential(Keyring.parse(generate_key_entry()), sealed, 7, OWNER, 3)


@pytest.mark.parametrize(
    ("user_id", "owner", "authenticator_id"),
    [(8, OWNER, 3), (7, "dydx1other", 3), (7, OWNER, 4)],
    ids=["another user", "another owner", "another authenticator"],
)
def test_a_row_copied_or_edited_does_not_open(
    user_id: int, owner: str, authenticator_id: int
) -> None:
    ring = Keyring.parse(generate_key_entry())
    sealed = seal_credential(ring, b"k" * 32, 7, OWNER, 3)
    with pytest.raises(DecryptionError):
        open_credential(ring, sealed, user_id, owner, authenticator_id)


def test_rows_from_before_sealing_still_open_bound_to_their_user() -> None:
    ring = Keyring.parse(generate_key_entry())
    legacy = ring.encrypt(b"k" * 32, associated_data(CREDENTIAL_PURPOSE, 7))
    assert open_credential(ring, legacy, 7, OWNER, 3) == b"k" * 32
    with pytest.raises(DecryptionError):
        open_credential(ring, legacy, 8, OWNER, 3)


def test_an_older_entry_still_opens_boxes_sealed_to_it() -> None:
    old_entry, new_entry = generate_key_entry(), generate_key_entry()
    sealed = seal_credential(Keyring.parse(old_entry), b"k" * 32, 7, OWNER, 3)
    ring = Keyring.parse(f"{new_entry},{old_entry}")
    assert open_credential(ring, sealed, 7, OWNER, 3) == b"k" * 32
    assert ring.sealing_key().key_id == ring.primary_id != sealed.key_id[2:]


@given(st.binary(min_size=1, max_size=200), st.integers(0, 2000))
def test_tampering_anywhere_fails(blob_bytes: bytes, position: int) -> None:
    ring = Keyring.parse(generate_key_entry())
    sealed = seal_credential(ring, blob_bytes, 1, OWNER, 0)
    index = position % len(sealed.blob)
    tampered = bytearray(sealed.blob)
    tampered[index] ^= 0x01
    with pytest.raises(DecryptionError):
        open_credential(ring, Sealed(sealed.key_id, bytes(tampered)), 1, OWNER, 0)
    with pytest.raises(DecryptionError):
        open_credential(ring, Sealed(sealed.key_id, sealed.blob[:40]), 1, OWNER, 0)


@pytest.mark.parametrize("text", ["", "nokey", "k1:!!", "k1:AAAA", "bad id:" + "A" * 43])
def test_malformed_public_keys_are_refused(text: str) -> None:
    with pytest.raises(SealingKeyError):
        SealingPublicKey.parse(text)
