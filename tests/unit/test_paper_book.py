"""The paper venue's pure parts: the transaction codec, the chain's rules and the fill engine,
without a database (the venue's behaviour end to end is tests/integration/test_exchange_paper.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import structlog

from core.db.models import PaperAccount, PaperFill, PaperPosition
from core.domain.states import OrderSide
from core.exchange.errors import PermanentExchangeError
from core.exchange.paper import codec, rows, rules
from core.exchange.paper.book import Book, trade
from core.exchange.port import MarketInfo, OrderKind, OrderRequest, TimeInForce

D = Decimal
NOW = datetime(2025, 1, 1, tzinfo=UTC)
ETH = MarketInfo(
    ticker="ETH-USD",
    status="ACTIVE",
    oracle_price=D("3000"),
    tick_size=D("0.1"),
    step_size=D("0.001"),
    min_order_size=D("0.001"),
    initial_margin_fraction=D("0.02"),
    maintenance_margin_fraction=D("0.012"),
)


def _limit(side: OrderSide, size: str, price: str, **kwargs: Any) -> OrderRequest:
    return OrderRequest(
        market="ETH-USD",
        side=side,
        size=D(size),
        kind=OrderKind.LIMIT,
        price=D(price),
        client_id=7,
        good_til_block_time=NOW + timedelta(hours=1),
        **kwargs,
    )


def test_codec_round_trips_and_refuses_another_spelling() -> None:
    request = _limit(OrderSide.BUY, "1.50", "2990.0")
    signed = codec.encode_order(request, "paper:1")
    assert signed.tx_hash == codec.tx_hash(signed.tx_bytes)
    decoded = codec.decode(signed.tx_bytes, "paper:1")
    assert isinstance(decoded, OrderRequest)
    assert codec.encode_order(decoded, "paper:1") == signed
    with pytest.raises(codec.MalformedTxError):
        codec.decode(signed.tx_bytes, "paper:2")
    with pytest.raises(codec.MalformedTxError):
        codec.decode(signed.tx_bytes.replace(b'"size":"1.5"', b'"size":"1.50"'), "paper:1")


def test_trade_averages_reduces_and_flips() -> None:
    assert trade(D(1), D(3000), OrderSide.BUY, D(1), D(3100)) == (D(2), D(3050), D(0))
    assert trade(D(2), D(3000), OrderSide.SELL, D(1), D(3100)) == (D(1), D(3000), D(100))
    assert trade(D(1), D(3000), OrderSide.SELL, D(3), D(2900)) == (D(-2), D(2900), D(-100))


def test_rules_refuse_in_the_chains_codes() -> None:
    markets = {"ETH-USD": ETH}
    assert rules.validate(_limit(OrderSide.BUY, "1", "2990"), markets, 100, NOW) is ETH
    for request, code in [
        (_limit(OrderSide.BUY, "1", "2990.05"), 12),
        (_limit(OrderSide.BUY, "1", "2990", time_in_force=TimeInForce.IOC), 3002),
    ]:
        with pytest.raises(PermanentExchangeError) as caught:
            rules.validate(request, markets, 100, NOW)
        assert caught.value.code == code


def test_a_marketable_limit_fills_at_the_better_price_and_stages_its_rows() -> None:
    account = PaperAccount(user_id=1, balance=D(10000))
    book = Book(
        account,
        [],
        {"ETH-USD": ETH},
        taker_fee=D("0.0005"),
        slippage=D("0.0005"),
        log=structlog.get_logger(),
    )
    order = rows.new_order(1, _limit(OrderSide.BUY, "1", "3010"), "AB", NOW)
    order.id = 5
    book.accept(order, ETH, NOW)
    assert order.status == "FILLED"
    position, fill = book.staged
    assert isinstance(position, PaperPosition)
    assert isinstance(fill, PaperFill)
    assert (fill.price, fill.fee, fill.paper_order_id) == (D("3001.5"), D("1.50075"), 5)
    assert account.balance == D(10000) - D("1.50075")
