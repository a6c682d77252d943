"""The single-use tokens behind the bot's secret links (the wallet link, the Mini App key
form): issuing them and telling whether one may still be used.

A token is 192 random bits in the URL; only its SHA-256 is stored, bound to its user, for
10 minutes. The helpers work inside the caller's unit of work: the service that calls them
owns the transaction and commits it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic

from core.db.repositories.single_use import SingleUseTokenRepository, TokenRequest
from core.security.crypto import new_token, token_hash

TOKEN_TTL = timedelta(minutes=10)
TOKEN_BYTES = 24  # 192 bits
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_-]{32}$")


class TokenState(StrEnum):
    """Whether a token may be used, and if not, why (for logs; users are told less)."""

    USABLE = "usable"
    UNKNOWN = "unknown"
    USED = "used"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class IssuedToken(Generic[TokenRequest]):
    """A token just issued (the only place the token itself appears).

    Attributes:
        token: The token, for the URL.
        request: Its stored request (flushed: it has its id).
        expires_at: When it stops working.
        replaced: How many of the user's unused tokens it replaced.
    """

    token: str
    request: TokenRequest
    expires_at: datetime
    replaced: int


async def issue_token(
    requests: SingleUseTokenRepository[TokenRequest], user_id: int, now: datetime
) -> IssuedToken[TokenRequest]:
    """Issue a fresh token for the user in the caller's transaction; their unused ones stop
    working.

    Args:
        requests: The repository of the token's kind, in the caller's unit of work.
        user_id: The user the token is bound to.
        now: The current UTC time.
    """
    token = new_token(TOKEN_BYTES)
    expires_at = now + TOKEN_TTL
    request, replaced = await requests.issue(
        user_id=user_id, token_hash=token_hash(token), issued_at=now, expires_at=expires_at
    )
    return IssuedToken(token=token, request=request, expires_at=expires_at, replaced=replaced)


def well_formed(token: object) -> bool:
    """Whether ``token`` has the shape of an issued token (anything else is never looked up)."""
    return isinstance(token, str) and _TOKEN_RE.match(token) is not None


async def find_token(
    requests: SingleUseTokenRepository[TokenRequest], token: str
) -> TokenRequest | None:
    """The request ``token`` names, by its hash; ``None`` when malformed or unknown."""
    if not well_formed(token):
        return None
    return await requests.get(token_hash(token))


def token_state(request: TokenRequest | None, now: datetime) -> TokenState:
    """Whether the request found for a token may be used at ``now``."""
    if request is None:
        return TokenState.UNKNOWN
    if request.used_at is not None:
        return TokenState.USED
    if request.expires_at <= now:
        return TokenState.EXPIRED
    return TokenState.USABLE
