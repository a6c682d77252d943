"""The EIP-4361 (Sign-In with Ethereum) message: written by us, parsed and checked strictly.

Pure, no I/O: the signer is checked by :mod:`core.services.wallet_link.signature`.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

import siwe  # type: ignore[import-untyped]  # signinwithethereum ships no type information
from eth_utils.address import is_checksum_address, to_checksum_address

from core.db.models import User
from core.services.wallet_link.errors import (
    InvalidInputError,
    MessageExpiredError,
    MessageMismatchError,
    WrongChainError,
    WrongDomainError,
    WrongUriError,
)
from core.services.wallet_link.site import LinkSite
from core.texts import link as texts

# A signed message lives shorter than its link: opening the page late must not leave a
# long-lived signature around.
MESSAGE_TTL = timedelta(minutes=5)
CLOCK_SKEW = timedelta(seconds=60)
MAX_MESSAGE_CHARS = 2048

_ADDRESS_RE = re.compile(r"^0x[0-9a-fA-F]{40}$")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_]{1,64}$")


def statement_for(user: User) -> str:
    """The statement naming the Telegram account, so a victim sees whose link it is.

    Only characters the EIP-4361 statement grammar allows; usernames are ``[A-Za-z0-9_]``.
    """
    username = user.username if user.username and _USERNAME_RE.match(user.username) else None
    return texts.signing_statement(username, user.telegram_id)


def _iso(moment: datetime) -> Any:
    return siwe.ISO8601Datetime.from_datetime(moment)


def message_time(value: Any) -> datetime:
    """A time field of a parsed message as a ``datetime``."""
    return datetime.fromisoformat(str(value))


def checked_address(address: str) -> str:
    """The EIP-55 form of a lower-case or correctly checksummed address."""
    if not _ADDRESS_RE.match(address):
        raise InvalidInputError(texts.NOT_AN_ADDRESS)
    digits = address[2:]
    mixed = digits != digits.lower() and digits != digits.upper()
    if mixed and not is_checksum_address(address):
        raise InvalidInputError(texts.BAD_CHECKSUM)
    return str(to_checksum_address(address))


def parse_message(message: str) -> Any:
    """Parse with the ABNF grammar and require the canonical text (nothing smuggled)."""
    try:
        parsed = siwe.SiweMessage.from_message(message, abnf=True)
    except Exception:  # the grammar and pydantic raise many kinds; all mean "malformed"
        raise InvalidInputError(texts.NOT_A_SIWE_MESSAGE) from None
    if parsed.prepare_message() != message:
        raise InvalidInputError(texts.NOT_A_SIWE_MESSAGE)
    return parsed


def write_message(
    site: LinkSite,
    address: str,
    statement: str,
    nonce: str,
    issued_at: datetime,
    expires_at: datetime,
) -> str:
    """The message text for the wallet to sign, byte for byte.

    Args:
        site: The site and chain the message names.
        address: The wallet's EIP-55 address.
        statement: :func:`statement_for` the link's user.
        nonce: The link request's fresh nonce.
        issued_at: Now.
        expires_at: When the message stops being accepted.
    """
    message = siwe.SiweMessage(
        domain=site.domain,
        address=address,
        statement=statement,
        uri=site.uri,
        version="1",
        chain_id=site.chain_id,
        nonce=nonce,
        issued_at=_iso(issued_at),
        expiration_time=_iso(expires_at),
    )
    return str(message.prepare_message())


def check_site(parsed: Any, site: LinkSite) -> None:
    """Require the message to name exactly this site and chain, and nothing we never write.

    Raises:
        WrongDomainError: Another domain, or a scheme.
        WrongUriError: Another URI.
        WrongChainError: Another chain id.
        MessageMismatchError: A non-EIP-55 address or a field we never write.
    """
    if parsed.domain != site.domain or parsed.scheme is not None:
        named = f"{parsed.scheme}://{parsed.domain}" if parsed.scheme else parsed.domain
        raise WrongDomainError(texts.wrong_domain(named, site.domain))
    if str(parsed.uri) != site.uri:
        raise WrongUriError(texts.wrong_uri(str(parsed.uri), site.uri))
    if parsed.chain_id != site.chain_id:
        raise WrongChainError(
            texts.message_on_wrong_chain(parsed.chain_id, site.chain_name, site.chain_id)
        )
    if not is_checksum_address(parsed.address):
        raise MessageMismatchError()
    if (
        parsed.request_id is not None
        or parsed.resources is not None
        or parsed.not_before is not None
        or parsed.expiration_time is None
    ):
        raise MessageMismatchError()


def check_times(parsed: Any, now: datetime) -> None:
    """Require our issue and expiry times, and the message to be unexpired at ``now``.

    Raises:
        MessageMismatchError: Times we would not have written.
        MessageExpiredError: The message has expired.
    """
    issued_at = message_time(parsed.issued_at)
    expires_at = message_time(parsed.expiration_time)
    if issued_at > now + CLOCK_SKEW or expires_at - issued_at > MESSAGE_TTL:
        raise MessageMismatchError()
    if now >= expires_at or now - issued_at > MESSAGE_TTL:
        raise MessageExpiredError()
