"""The dYdX Indexer as :class:`~core.exchange.history.AccountHistory`: ``/v4/historical-pnl``
and ``/v4/fundingPayments``, paged back to the start of the window."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from core.exchange.dydx.indexer import IndexerClient
from core.exchange.dydx.parsing import MalformedAnswerError, _decimal, _list, _obj, _str, _time
from core.exchange.history import EquityPoint, FundingEvent

#: Rows per Indexer page (the Indexer's own maximum) and the most pages read per question.
PAGE_SIZE = 1000
MAX_PAGES = 20


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _height(data: Mapping[str, Any], key: str) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).isdigit():
        raise MalformedAnswerError(f"{key} is not a block height")
    return int(value)


def parse_equity(item: Any) -> EquityPoint:
    """One ``PnlTicksResponseObject``."""
    data = _obj(item, "historical-pnl tick")
    return EquityPoint(
        at=_time(data, "createdAt"),
        equity=_decimal(data, "equity"),
        total_pnl=_decimal(data, "totalPnl"),
        net_transfers=_decimal(data, "netTransfers"),
    )


def parse_funding(item: Any) -> FundingEvent:
    """One ``FundingPaymentResponseObject`` (``size`` is unsigned; ``side`` gives the sign)."""
    data = _obj(item, "funding payment")
    size = abs(_decimal(data, "size"))
    side = _str(data, "side")
    if side not in ("LONG", "SHORT"):
        raise MalformedAnswerError("side is not LONG or SHORT")
    return FundingEvent(
        at=_time(data, "createdAt"),
        height=_height(data, "createdAtHeight"),
        market=_str(data, "ticker"),
        payment=_decimal(data, "payment"),
        rate=_decimal(data, "rate"),
        position_size=size if side == "LONG" else -size,
        oracle_price=_decimal(data, "oraclePrice"),
    )


class DydxAccountHistory:
    """Equity and funding of a subaccount from the Indexer.

    Args:
        indexer: The Indexer client (this object closes it).
    """

    def __init__(self, indexer: IndexerClient) -> None:
        self._indexer = indexer

    async def _pages(
        self, path: str, key: str, owner: str, subaccount: int, since: tuple[str, datetime] | None
    ) -> list[Any]:
        items: list[Any] = []
        for page in range(1, MAX_PAGES + 1):
            params = {
                "address": owner,
                "subaccountNumber": str(subaccount),
                "limit": str(PAGE_SIZE),
                "page": str(page),
            }
            if since is not None:
                params[since[0]] = _iso(since[1])
            body = await self._indexer.get_json(path, params)
            try:
                rows = _list(_obj(body, path).get(key), key)
            except MalformedAnswerError as exc:
                raise self._indexer.malformed(path, exc) from None
            items += rows
            if len(rows) < PAGE_SIZE:
                break
        return items

    async def equity(
        self, owner: str, subaccount: int, since: datetime | None
    ) -> list[EquityPoint]:
        """Equity snapshots since ``since``, oldest first."""
        rows = await self._pages(
            "/v4/historical-pnl",
            "historicalPnl",
            owner,
            subaccount,
            None if since is None else ("createdOnOrAfter", since),
        )
        try:
            points = [parse_equity(row) for row in rows]
        except MalformedAnswerError as exc:
            raise self._indexer.malformed("/v4/historical-pnl", exc) from None
        return sorted(points, key=lambda point: point.at)

    async def funding(
        self, owner: str, subaccount: int, since: datetime | None
    ) -> list[FundingEvent]:
        """Funding payments since ``since``, oldest first."""
        rows = await self._pages(
            "/v4/fundingPayments",
            "fundingPayments",
            owner,
            subaccount,
            None if since is None else ("afterOrAt", since),
        )
        try:
            events = [parse_funding(row) for row in rows]
        except MalformedAnswerError as exc:
            raise self._indexer.malformed("/v4/fundingPayments", exc) from None
        return sorted(events, key=lambda event: (event.at, event.market))

    async def close(self) -> None:
        """Close the Indexer session."""
        await self._indexer.close()
