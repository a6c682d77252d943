"""A small asynchronous dYdX Indexer REST client: one shared session, a timeout on every call."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp

from core.compliance import ComplianceStatus
from core.config import DydxEndpoints
from core.exchange.errors import ExchangeUnavailableError
from core.logs import get_logger

DEFAULT_TIMEOUT = 5.0  # seconds


class IndexerClient:
    """Indexer REST queries.

    The HTTP session opens on first use (it belongs to the running event loop) and is reused.

    Args:
        base_url: Indexer REST base URL, without a trailing slash.
        timeout: Total time allowed per request, in seconds.
    """

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._base_url = base_url.rstrip("/")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None
        self._log = get_logger(__name__, indexer=self._base_url)

    @classmethod
    def from_endpoints(
        cls, endpoints: DydxEndpoints, *, timeout: float = DEFAULT_TIMEOUT
    ) -> IndexerClient:
        """A client of the Indexer configured in ``settings.dydx``."""
        return cls(endpoints.indexer_url, timeout=timeout)

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, headers={"Accept": "application/json"}
            )
        return self._session

    async def close(self) -> None:
        """Close the session (a later call opens a new one)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def _get_json(self, path: str) -> Any:
        try:
            async with self._open().get(f"{self._base_url}{path}") as response:
                if response.status != 200:
                    self._log.warning("indexer_call_failed", path=path, status=response.status)
                    raise ExchangeUnavailableError(f"the dYdX Indexer answered {response.status}")
                return await response.json(content_type=None)
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            self._log.warning("indexer_call_failed", path=path, error=type(exc).__name__)
            raise ExchangeUnavailableError("the dYdX Indexer is unreachable") from None

    async def compliance_screen(self, address: str) -> ComplianceStatus:
        """Screen an address (``GET /v4/compliance/screen/{address}``).

        Raises:
            ExchangeUnavailableError: Unreachable, timed out, an error status, or an answer this
                version does not understand (refusing is safer than guessing).
        """
        body = await self._get_json(f"/v4/compliance/screen/{quote(address, safe='')}")
        status = body.get("status") if isinstance(body, dict) else None
        try:
            return ComplianceStatus(str(status))
        except ValueError:
            self._log.warning("indexer_unknown_compliance_status", status=str(status)[:32])
            raise ExchangeUnavailableError(
                "the dYdX Indexer gave an unknown compliance status"
            ) from None
