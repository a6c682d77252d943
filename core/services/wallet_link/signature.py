"""Whose signature it is: EIP-191 signer recovery, else ERC-1271/6492 through an Ethereum RPC."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import siwe  # type: ignore[import-untyped]  # signinwithethereum ships no type information
from web3 import HTTPProvider

from core.services.wallet_link.errors import (
    ContractWalletUnsupportedError,
    InvalidInputError,
    InvalidSignatureError,
    MessageExpiredError,
    MessageMismatchError,
    RpcUnavailableError,
)
from core.services.wallet_link.site import LinkSite
from core.texts import link as texts

RPC_TIMEOUT_SECONDS = 10
# ERC-1271 and ERC-6492 signatures have no fixed length; 8 KiB is far above real ones.
MAX_SIGNATURE_BYTES = 8192

_SIGNATURE_RE = re.compile(rf"^0x(?:[0-9a-fA-F]{{2}}){{0,{MAX_SIGNATURE_BYTES}}}$")


def check_signature_shape(signature: str) -> None:
    """Refuse anything but ``0x`` and at most :data:`MAX_SIGNATURE_BYTES` bytes of hex.

    Raises:
        InvalidInputError: It is not shaped like a signature.
    """
    if not _SIGNATURE_RE.match(signature):
        raise InvalidInputError(texts.NOT_A_SIGNATURE)


def verify_signature(parsed: Any, signature: str, site: LinkSite, now: datetime) -> None:
    """EIP-191 signer recovery, then ERC-1271/6492 through the RPC if one is configured.

    Blocking (web3 over HTTP): run in a thread.
    """
    provider = (
        HTTPProvider(site.rpc_url, request_kwargs={"timeout": RPC_TIMEOUT_SECONDS})
        if site.rpc_url
        else None
    )
    try:
        parsed.verify(
            signature,
            domain=site.domain,
            uri=site.uri,
            chain_id=site.chain_id,
            nonce=parsed.nonce,
            timestamp=now,
            provider=provider,
            strict=True,
        )
    except siwe.InvalidSignature as exc:
        if exc.args:  # the library's "RPC error" while asking the contract
            raise RpcUnavailableError() from None
        if provider is None:
            raise ContractWalletUnsupportedError() from None
        raise InvalidSignatureError() from None
    except siwe.ChainIdMismatch:
        # The message's chain id was checked before: this is the RPC's chain.
        raise RpcUnavailableError(texts.RPC_WRONG_CHAIN) from None
    except siwe.ExpiredMessage:
        raise MessageExpiredError() from None
    except siwe.VerificationError:
        raise MessageMismatchError() from None
    except Exception:  # transport errors of the RPC (requests, timeouts, bad JSON)
        if provider is None:
            raise
        raise RpcUnavailableError() from None
