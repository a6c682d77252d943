"""x/accountplus authenticator configs as the chain's ``OnAuthenticatorAdded`` checks them
(``protocol/x/accountplus/authenticator``): registered types, secp256k1 key size and the
AllOf/AnyOf sub-authenticator lists."""

from __future__ import annotations

import base64
import binascii
import json

AUTHENTICATOR_TYPES = frozenset(
    {
        "SignatureVerification",
        "MessageFilter",
        "SubaccountFilter",
        "ClobPairIdFilter",
        "AllOf",
        "AnyOf",
    }
)
SECP256K1_PUBKEY_SIZE = 33


class AuthenticatorError(ValueError):
    """x/accountplus refused to add or remove an authenticator (message as on the chain)."""


def decode_sub_authenticators(config: bytes) -> list[tuple[str, bytes]]:
    """Decode an AllOf/AnyOf config into ``[(type, config_bytes), …]``.

    The chain unmarshals ``[]SubAuthenticatorInitData{Type string; Config []byte}`` with Go's
    encoding/json, so a sub-config may be a base64 string (what the web app sends) or a JSON
    array of byte values (what dydx-v4-client's ``Authenticator.compose`` sends).

    Raises:
        AuthenticatorError: The config is not such a list.
    """
    try:
        items = json.loads(config.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AuthenticatorError(f"failed to unmarshal sub-authenticator init data: {exc}") from exc
    if not isinstance(items, list):
        raise AuthenticatorError("failed to unmarshal sub-authenticator init data")
    decoded: list[tuple[str, bytes]] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("type", ""), str):
            raise AuthenticatorError("failed to unmarshal sub-authenticator init data")
        raw = item.get("config")
        if raw is None:
            sub_config = b""
        elif isinstance(raw, str):
            try:
                sub_config = base64.b64decode(raw, validate=True)
            except binascii.Error as exc:
                raise AuthenticatorError(
                    f"failed to unmarshal sub-authenticator init data: {exc}"
                ) from exc
        elif isinstance(raw, list) and all(isinstance(b, int) and 0 <= b < 256 for b in raw):
            sub_config = bytes(raw)
        else:
            raise AuthenticatorError("failed to unmarshal sub-authenticator init data")
        decoded.append((item.get("type", ""), sub_config))
    return decoded


def validate_authenticator(auth_type: str, config: bytes, *, sub: bool = False) -> None:
    """Run the chain's ``OnAuthenticatorAdded`` checks."""
    if auth_type not in AUTHENTICATOR_TYPES:
        if sub:
            raise AuthenticatorError(
                "sub-authenticator failed to be added in function `OnAuthenticatorAdded` as type "
                "is not registered in manager: invalid request"
            )
        raise AuthenticatorError(f"authenticator type {auth_type} is not registered")
    if auth_type == "SignatureVerification" and len(config) != SECP256K1_PUBKEY_SIZE:
        raise AuthenticatorError(
            f"invalid secp256k1 public key size, expected {SECP256K1_PUBKEY_SIZE}, "
            f"got {len(config)}"
        )
    if auth_type in ("AllOf", "AnyOf"):
        subs = decode_sub_authenticators(config)
        if len(subs) <= 1:
            raise AuthenticatorError("no sub-authenticators provided: invalid request")
        for sub_type, sub_config in subs:
            validate_authenticator(sub_type, sub_config, sub=True)
