"""Authenticator configs: parsing, initialisation and ``OnAuthenticatorAdded`` checks."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable
from dataclasses import dataclass

from doubles.dydx.auth.constants import (
    ALL_OF,
    ANY_OF,
    AUTHENTICATOR_DATA_MAX_LENGTH,
    CLOB_PAIR_ID_FILTER,
    MESSAGE_FILTER,
    REGISTERED_AUTHENTICATORS,
    SECP256K1_PUBKEY_SIZE,
    SIGNATURE_VERIFICATION,
    SUBACCOUNT_FILTER,
)
from doubles.dydx.auth.errors import ACCOUNTPLUS, SDK, ChainError, _GoError

# --- authenticators ---------------------------------------------------------------------------


def _go_set(items: Iterable[str] | Iterable[int]) -> str:
    """Render a Go ``map[K]struct{}`` with ``%v`` (keys sorted, as fmt does)."""
    return "map[" + " ".join(f"{k}:{{}}" for k in sorted(items)) + "]"


def _parse_uint32(text: str) -> int:
    # strconv.ParseUint(text, 10, 32): digits only, no sign, no spaces.
    if not text or not text.isascii() or not text.isdigit():
        raise _GoError(f'strconv.ParseUint: parsing "{text}": invalid syntax')
    value = int(text)
    if value > 0xFFFFFFFF:
        raise _GoError(f'strconv.ParseUint: parsing "{text}": value out of range')
    return value


@dataclass(frozen=True)
class SubAuthenticatorData:
    """One ``SubAuthenticatorInitData`` of a composite config."""

    type: str
    config: bytes


def parse_composite_config(config: bytes) -> list[SubAuthenticatorData]:
    """Decode an ``AllOf``/``AnyOf`` config like Go's ``json.Unmarshal``.

    The config is a JSON array of ``{"type": str, "config": base64 | [byte, ...]}``; Go matches
    field names case-insensitively and decodes ``[]byte`` from standard padded base64 or from
    an array of numbers.

    Raises:
        _GoError: On malformed JSON, with Go's message.
    """
    try:
        items = json.loads(config.decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _GoError(f"invalid character in sub-authenticator data: {exc}") from exc
    if items is None:
        return []
    if not isinstance(items, list):
        raise _GoError(
            "json: cannot unmarshal "
            f"{type(items).__name__} into Go value of type []authenticator.SubAuthenticatorInitData"
        )
    result: list[SubAuthenticatorData] = []
    for item in items:
        if not isinstance(item, dict):
            raise _GoError("json: cannot unmarshal into Go value of type SubAuthenticatorInitData")
        fields = {str(k).lower(): v for k, v in item.items()}
        type_name = fields.get("type") or ""
        raw_config = fields.get("config")
        if not isinstance(type_name, str):
            raise _GoError(
                "json: cannot unmarshal into Go struct field SubAuthenticatorInitData.type"
            )
        if raw_config is None:
            data = b""
        elif isinstance(raw_config, str):
            try:
                data = base64.b64decode(raw_config, validate=True)
            except binascii.Error as exc:
                raise _GoError(f"illegal base64 data: {exc}") from exc
        elif isinstance(raw_config, list) and all(
            isinstance(b, int) and not isinstance(b, bool) and 0 <= b < 256 for b in raw_config
        ):
            # Go also decodes a JSON array of numbers into []byte (what the Python client's
            # Authenticator.compose emits before convert_nested_config_to_base64).
            data = bytes(raw_config)
        else:
            raise _GoError(
                "json: cannot unmarshal "
                f"{type(raw_config).__name__} into Go struct field "
                "SubAuthenticatorInitData.config of type []uint8"
            )
        result.append(SubAuthenticatorData(type_name, data))
    return result


@dataclass(frozen=True)
class Authenticator:
    """An initialized authenticator (a node of the tree).

    Attributes:
        type: Registered type name.
        config: The raw config it was initialized with.
        pub_key: Key of a ``SignatureVerification``.
        whitelist_types: Type URLs of a ``MessageFilter``.
        whitelist_numbers: Numbers of a ``SubaccountFilter``/``ClobPairIdFilter``.
        children: Sub-authenticators of an ``AllOf``/``AnyOf``.
    """

    type: str
    config: bytes
    pub_key: bytes = b""
    whitelist_types: frozenset[str] = frozenset()
    whitelist_numbers: frozenset[int] = frozenset()
    children: tuple[Authenticator, ...] = ()


def initialize_authenticator(auth_type: str, config: bytes) -> Authenticator:
    """``Initialize``: build an authenticator from a stored type and config.

    Args:
        auth_type: Stored type name.
        config: Stored config bytes.

    Returns:
        The initialized tree.

    Raises:
        ChainError: For a composite with fewer than two children (``sdk`` 18).
        _GoError: For configs Go fails to parse (rendered as ``internal``).
    """
    if auth_type == SIGNATURE_VERIFICATION:
        return Authenticator(auth_type, config, pub_key=config)
    if auth_type == MESSAGE_FILTER:
        return Authenticator(
            auth_type, config, whitelist_types=frozenset(config.decode().split(","))
        )
    if auth_type in (SUBACCOUNT_FILTER, CLOB_PAIR_ID_FILTER):
        numbers = frozenset(_parse_uint32(part) for part in config.decode().split(","))
        return Authenticator(auth_type, config, whitelist_numbers=numbers)
    if auth_type in (ALL_OF, ANY_OF):
        try:
            subs = parse_composite_config(config)
        except _GoError as exc:
            raise _GoError(
                f"failed to parse sub-authenticators initialization data: {exc}"
            ) from exc
        if len(subs) <= 1:
            name = "allOf" if auth_type == ALL_OF else "anyOf"
            raise ChainError.registered(SDK, 18, f"{name} must have at least 2 sub-authenticators")
        children = []
        for sub in subs:
            if sub.type not in REGISTERED_AUTHENTICATORS:
                raise _GoError(f"authenticator type {sub.type} is not registered")  # Go panics.
            try:
                children.append(initialize_authenticator(sub.type, sub.config))
            except ChainError as exc:
                raise exc.wrap(
                    f"failed to initialize sub-authenticator (type = {sub.type})"
                ) from exc
        return Authenticator(auth_type, config, children=tuple(children))
    raise _GoError(f"authenticator type {auth_type} is not registered")


def validate_new_authenticator(auth_type: str, config: bytes, authenticator_id: int) -> None:
    """``OnAuthenticatorAdded`` plus ``ValidateBasic`` of ``MsgAddAuthenticator``.

    Only what the chain checks when a key is added: a registered type, a 33-byte key for each
    ``SignatureVerification`` and at least two registered children per composite. Filters'
    configs are *not* parsed here (the chain only parses them when a transaction selects the
    authenticator).

    Args:
        auth_type: Type of the new authenticator.
        config: Its config (``MsgAddAuthenticator.data``).
        authenticator_id: The id it would get.

    Raises:
        ChainError: With the chain's code and text when the chain would refuse it.
    """
    if len(config) > AUTHENTICATOR_DATA_MAX_LENGTH:
        raise ChainError.registered(ACCOUNTPLUS, 3)
    if auth_type not in REGISTERED_AUTHENTICATORS:
        raise ChainError.internal()
    try:
        _on_added(auth_type, config, str(authenticator_id))
    except ChainError as exc:
        raise exc.wrap(f"`OnAuthenticatorAdded` failed on authenticator type {auth_type}") from exc
    except _GoError as exc:
        raise ChainError.internal() from exc


def _on_added(auth_type: str, config: bytes, authenticator_id: str) -> None:
    if auth_type == SIGNATURE_VERIFICATION:
        if len(config) != SECP256K1_PUBKEY_SIZE:
            raise _GoError(
                "invalid secp256k1 public key size, expected "
                f"{SECP256K1_PUBKEY_SIZE}, got {len(config)}"
            )
        return
    if auth_type not in (ALL_OF, ANY_OF):
        return
    try:
        subs = parse_composite_config(config)
    except _GoError as exc:
        raise _GoError(f"failed to unmarshal sub-authenticator init data: {exc}") from exc
    if len(subs) <= 1:
        raise ChainError.registered(SDK, 18, "no sub-authenticators provided")
    for index, sub in enumerate(subs):
        if sub.type not in REGISTERED_AUTHENTICATORS:
            raise ChainError.registered(
                SDK,
                18,
                "sub-authenticator failed to be added in function `OnAuthenticatorAdded` "
                "as type is not registered in manager",
            )
        sub_id = f"{authenticator_id}.{index}"
        try:
            _on_added(sub.type, sub.config, sub_id)
        except ChainError as exc:
            raise exc.wrap(
                f"sub-authenticator `OnAuthenticatorAdded` failed (sub-authenticator id = {sub_id})"
            ) from exc
