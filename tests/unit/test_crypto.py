"""AES-256-GCM keyring: associated data, key ids, rotation."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.security.crypto import (
    CREDENTIAL_PURPOSE,
    DecryptionError,
    Keyring,
    KeyringError,
    Sealed,
    associated_data,
    generate_key_entry,
    new_token,
    token_hash,
)


def test_round_trip_and_fresh_nonce_each_time() -> None:
    ring = Keyring.parse(generate_key_entry())
    aad = associated_data(CREDENTIAL_PURPOSE, 1)
    first, second = ring.encrypt(b"secret", aad), ring.encrypt(b"secret", aad)
    assert first.blob[:12] != second.blob[:12]
    assert ring.decrypt(first, aad) == ring.decrypt(second, aad) == b"secret"
    assert first.key_id == ring.primary_id


def test_ciphertext_moved_to_another_user_fails() -> None:
    ring = Keyring.parse(generate_key_entry())
    sealed = ring.encrypt(b"alice key", associated_data(CREDENTIAL_PURPOSE, 1))
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, associated_data(CREDENTIAL_PURPOSE, 2))
    with pytest.raises(DecryptionError):
        ring.decrypt(sealed, associated_data("other.purpose", 1))


def test_tampering_and_unknown_key_fail() -> None:
    ring = Keyring.parse(generate_key_entry())
    aad = associated_data(CREDENTIAL_PURPOSE, 1)
    sealed = ring.encrypt(b"x", aad)
    flipped = bytes([sealed.blob[-1] ^ 1])
    with pytest.raises(DecryptionError):
        ring.decrypt(Sealed(sealed.key_id, sealed.blob[:-1] + flipped), aad)
    with pytest.raises(DecryptionError, match="not in the keyring"):
        ring.decrypt(Sealed("missing", sealed.blob), aad)


def test_rotation_reseals_under_the_new_primary() -> None:
    old_entry, new_entry = generate_key_entry(), generate_key_entry()
    old = Keyring.parse(old_entry)
    aad = associated_data(CREDENTIAL_PURPOSE, 7)
    sealed = old.encrypt(b"k", aad)
    both = Keyring.parse(f"{new_entry},{old_entry}")
    resealed = both.reseal(sealed, aad)
    assert resealed.key_id == both.primary_id != sealed.key_id
    assert Keyring.parse(new_entry).decrypt(resealed, aad) == b"k"
    assert both.reseal(resealed, aad) is resealed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("nocolon", "not 'id:base64key'"),
        ("a:!!!", "not base64"),
        ("a:AAAA", "not 32 bytes"),
    ],
)
def test_malformed_keyrings_are_refused(text: str, message: str) -> None:
    with pytest.raises(KeyringError, match=message):
        Keyring.parse(text)


def test_duplicate_key_ids_are_refused() -> None:
    entry = generate_key_entry()
    with pytest.raises(KeyringError, match="twice"):
        Keyring.parse(f"{entry},{entry}")


def test_repr_shows_no_key_material() -> None:
    entry = generate_key_entry()
    assert entry.split(":")[1] not in repr(Keyring.parse(entry))


def test_tokens_have_at_least_128_bits_and_hash_stably() -> None:
    token = new_token()
    assert len(token) >= 22
    assert token_hash(token) == token_hash(token) != token_hash(new_token())


@given(st.binary(max_size=256), st.integers(min_value=1, max_value=2**62))
def test_round_trip_property(plaintext: bytes, owner: int) -> None:
    ring = Keyring.parse("k1:" + "A" * 43)
    aad = associated_data(CREDENTIAL_PURPOSE, owner)
    assert ring.decrypt(ring.encrypt(plaintext, aad), aad) == plaintext
