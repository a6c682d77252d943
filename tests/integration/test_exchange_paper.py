"""PaperExchange: simulated fills at the dYdX double's oracle (read through the real
IndexerClient), persisted in PostgreSQL, and never a byte sent to the node.

ETH-USD on the double: oracle 3000, tick 0.1, step 0.001, initial margin fraction 0.02. With
the default 0.05 % slippage a buy fills at 3001.5 and a sell at 2998.5; the taker fee is 0.05 %
of the notional.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import PaperFill, PaperOrder
from core.db.uow import UnitOfWork
from core.domain.states import OrderSide, PositionSide
from core.exchange import grid
from core.exchange.dydx.errors import error_from_chain
from core.exchange.dydx.indexer import IndexerClient
from core.exchange.errors import PermanentExchangeError
from core.exchange.orders import OrderFlags, OrderKind, OrderRequest, SignedTx, TimeInForce
from core.exchange.paper.venue import PaperExchange
from core.exchange.port import Account, Exchange
from doubles.dydx.double import DydxDouble

Maker = async_sessionmaker[AsyncSession]
ETH = "ETH-USD"
BUY, SELL = OrderSide.BUY, OrderSide.SELL
D = Decimal


@pytest.fixture
async def indexer(dydx_double: DydxDouble) -> AsyncIterator[IndexerClient]:
    client = IndexerClient(dydx_double.indexer_url)
    yield client
    await client.close()


async def _new_user(sessionmaker: Maker, telegram_id: int) -> int:
    async with UnitOfWork(sessionmaker) as uow:
        user = await uow.users.get_or_create(telegram_id)
        await uow.commit()
        return user.id


@pytest.fixture
async def user_id(live_sessionmaker: Maker) -> int:
    return await _new_user(live_sessionmaker, 4242)


@pytest.fixture
def paper(live_sessionmaker: Maker, user_id: int, indexer: IndexerClient) -> PaperExchange:
    return PaperExchange(live_sessionmaker, user_id, indexer)


@pytest.fixture(autouse=True)
def _nothing_reaches_the_node(dydx_double: DydxDouble) -> Iterator[None]:
    """Paper mode never sends anything to the node, whatever the test does."""
    yield
    assert dydx_double.node.broadcasts == []


def _refusal(codespace: str, code: int) -> str:
    error = error_from_chain(codespace, code)
    assert isinstance(error, PermanentExchangeError)
    return error.reason


async def _market(
    paper: PaperExchange,
    side: OrderSide,
    size: str,
    client_id: int,
    *,
    reduce_only: bool = False,
    worst: Decimal | None = None,
) -> OrderRequest:
    """A market order as the execution layer builds it (1 % worst-price slippage)."""
    info = await paper.market(ETH)
    height = await paper.block_height()
    return OrderRequest(
        market=ETH,
        side=side,
        size=D(size),
        kind=OrderKind.MARKET,
        price=worst or grid.worst_price(side, info.oracle_price, D("0.01"), info),
        client_id=client_id,
        reduce_only=reduce_only,
        time_in_force=TimeInForce.IOC,
        good_til_block=paper.capabilities.short_term_good_til_block(height),
    )


def _limit(side: OrderSide, size: str, price: str, client_id: int) -> OrderRequest:
    return OrderRequest(
        market=ETH,
        side=side,
        size=D(size),
        kind=OrderKind.LIMIT,
        price=D(price),
        client_id=client_id,
        good_til_block_time=datetime.now(UTC) + timedelta(hours=1),
    )


def _conditional(
    kind: OrderKind, side: OrderSide, trigger: str, price: str, client_id: int
) -> OrderRequest:
    return OrderRequest(
        market=ETH,
        side=side,
        size=D("1"),
        kind=kind,
        price=D(price),
        trigger_price=D(trigger),
        client_id=client_id,
        reduce_only=True,
        time_in_force=TimeInForce.IOC,
        good_til_block_time=datetime.now(UTC) + timedelta(days=1),
    )


async def _order_count(sessionmaker: Maker) -> int:
    async with sessionmaker() as session:
        return int(await session.scalar(select(func.count()).select_from(PaperOrder)) or 0)


async def test_is_an_exchange_bound_to_a_paper_owner(paper: PaperExchange, user_id: int) -> None:
    exchange: Exchange = paper
    assert exchange.is_paper
    assert exchange.owner_address == f"paper:{user_id}"
    assert exchange.subaccount_number == 0
    first = await exchange.block_height()
    await asyncio.sleep(0.6)
    assert await exchange.block_height() > first
    assert (await exchange.markets())[ETH].oracle_price == D("3000")
    # Before the first order: the starting balance, nothing open.
    assert await exchange.account() == Account(equity=D("10000"), free_collateral=D("10000"))
    assert await exchange.positions() == []
    assert await exchange.fills() == []


async def test_market_buy_fills_at_oracle_plus_slippage_with_fee(paper: PaperExchange) -> None:
    request = await _market(paper, BUY, "1", client_id=1)
    result = await paper.place_order(request)
    assert result.accepted
    assert not result.already_placed

    [fill] = await paper.fills()
    assert (fill.market, fill.side, fill.size, fill.price) == (ETH, BUY, D("1"), D("3001.5"))
    assert fill.fee == D("1.50075")  # 0.05 % of 3001.5
    assert fill.liquidity == "TAKER"
    assert fill.created_at.tzinfo is not None

    [position] = await paper.positions()
    assert (position.side, position.size, position.entry_price) == (
        PositionSide.LONG,
        D("1"),
        D("3001.5"),
    )
    assert position.unrealized_pnl == D("-1.5")
    # balance 10000 - 1.50075; equity adds -1.5 unrealized; margin 1 * 3000 * 0.02 = 60.
    account = await paper.account()
    assert account.equity == D("9996.99925")
    assert account.free_collateral == D("9936.99925")

    order = await paper.find_order(ETH, 1, OrderFlags.SHORT_TERM)
    assert order is not None
    assert (order.status, order.filled_size, order.kind) == ("FILLED", D("1"), OrderKind.MARKET)
    assert order.order_id == fill.order_id
    assert await paper.open_orders() == []
    assert await paper.find_order(ETH, 2, OrderFlags.SHORT_TERM) is None


async def test_market_order_beyond_its_worst_price_is_cancelled_unfilled(
    paper: PaperExchange,
) -> None:
    # The venue's 0.05 % slippage puts the buy at 3001.5, above a worst price of 3001.
    request = await _market(paper, BUY, "1", client_id=1, worst=D("3001"))
    assert (await paper.place_order(request)).accepted
    order = await paper.find_order(ETH, 1, OrderFlags.SHORT_TERM)
    assert order is not None
    assert (order.status, order.filled_size) == ("CANCELED", D(0))
    assert await paper.positions() == []
    assert (await paper.account()).equity == D("10000")


async def test_selling_to_close_realizes_pnl(paper: PaperExchange, dydx_double: DydxDouble) -> None:
    await paper.place_order(await _market(paper, BUY, "1", client_id=1))
    dydx_double.set_oracle_price(ETH, "3100")
    [position] = await paper.positions()
    assert position.unrealized_pnl == D("98.5")

    await paper.place_order(await _market(paper, SELL, "1", client_id=2))
    # Sold at 3100 * 0.9995 = 3098.45, down to the tick: 3098.4; realized 96.9, fee 1.5492.
    assert await paper.positions() == []
    account = await paper.account()
    assert account.equity == D("10000") - D("1.50075") + D("96.9") - D("1.5492")
    assert account.free_collateral == account.equity
    [sell, _] = await paper.fills()
    assert (sell.side, sell.price, sell.fee) == (SELL, D("3098.4"), D("1.5492"))


async def test_a_larger_sell_flips_long_to_short(paper: PaperExchange) -> None:
    await paper.place_order(await _market(paper, BUY, "1", client_id=1))
    await paper.place_order(await _market(paper, SELL, "3", client_id=2))
    [position] = await paper.positions()
    assert (position.side, position.size, position.entry_price) == (
        PositionSide.SHORT,
        D("2"),
        D("2998.5"),
    )
    assert position.realized_pnl == D("-3")  # closed 1 bought at 3001.5, sold at 2998.5
    assert position.unrealized_pnl == D("-3")  # short 2 from 2998.5, oracle 3000
    balance = D("10000") - D("1.50075") - D("3") - D("4.49775")
    account = await paper.account()
    assert account.equity == balance - D("3")
    assert account.free_collateral == balance - D("3") - D("120")


async def test_reduce_only_is_clipped_then_refused(paper: PaperExchange) -> None:
    nothing = _refusal("clob", 2001)
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(await _market(paper, SELL, "1", client_id=1, reduce_only=True))
    assert (refused.value.codespace, refused.value.code, refused.value.reason) == (
        "clob",
        2001,
        nothing,
    )

    await paper.place_order(await _market(paper, BUY, "1", client_id=2))
    # A reduce-only buy would add to the long.
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(await _market(paper, BUY, "1", client_id=3, reduce_only=True))
    assert refused.value.code == 2001

    await paper.place_order(await _market(paper, SELL, "2.5", client_id=4, reduce_only=True))
    order = await paper.find_order(ETH, 4, OrderFlags.SHORT_TERM)
    assert order is not None
    assert (order.status, order.size, order.filled_size) == (
        "FILLED",
        D("2.5"),
        D("1"),
    )
    assert await paper.positions() == []  # closed, never flipped

    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(await _market(paper, SELL, "1", client_id=5, reduce_only=True))
    assert (refused.value.code, refused.value.reason) == (2001, nothing)
    # Refused orders leave nothing behind (their client ids stay free).
    assert await paper.find_order(ETH, 5, OrderFlags.SHORT_TERM) is None


async def test_an_order_beyond_free_collateral_is_refused(
    paper: PaperExchange, live_sessionmaker: Maker
) -> None:
    # 200 ETH needs 200 * 3000 * 0.02 = 12,000 of initial margin: more than the 10,000.
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(await _market(paper, BUY, "200", client_id=1))
    assert (refused.value.codespace, refused.value.code) == ("clob", 3007)
    assert refused.value.reason == _refusal("clob", 3007)
    assert await _order_count(live_sessionmaker) == 0
    assert (await paper.account()).equity == D("10000")

    # 150 ETH (9,000 of margin) fits; another 50 does not, but reducing always does.
    await paper.place_order(await _market(paper, BUY, "150", client_id=2))
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(await _market(paper, BUY, "50", client_id=3))
    assert refused.value.code == 3007
    # A resting order is checked as if it filled at its limit (positions valued at the
    # oracle, as the chain does).
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(_limit(BUY, "100", "2990", client_id=4))
    assert refused.value.code == 3007
    await paper.place_order(await _market(paper, SELL, "10", client_id=5))
    [position] = await paper.positions()
    assert position.size == D("140")


async def test_rebroadcasting_the_same_bytes_is_idempotent(
    paper: PaperExchange, live_sessionmaker: Maker, indexer: IndexerClient
) -> None:
    request = await _market(paper, BUY, "1", client_id=1)
    signed = await paper.sign_order(request)
    assert signed == await paper.sign_order(request)  # deterministic
    assert signed.tx_hash == hashlib.sha256(signed.tx_bytes).hexdigest().upper()
    payload = json.loads(signed.tx_bytes)
    assert (payload["size"], payload["price"]) == ("1", "3030")  # decimals as strings

    first = await paper.broadcast(signed)
    assert first.accepted
    assert first.tx_bytes == signed.tx_bytes
    again = await paper.broadcast(signed)
    assert again.already_placed
    assert not again.accepted
    assert (again.codespace, again.code, again.tx_hash) == ("sdk", 19, signed.tx_hash)
    # A new instance (a restarted worker) deduplicates too.
    restarted = PaperExchange(live_sessionmaker, paper.user_id, indexer)
    assert (await restarted.broadcast(signed)).already_placed

    assert len(await paper.fills()) == 1
    assert (await paper.account()).equity == D("9996.99925")


async def test_a_reused_client_id_with_other_bytes_is_refused(paper: PaperExchange) -> None:
    await paper.place_order(_limit(BUY, "1", "2900", client_id=7))
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(_limit(BUY, "1", "2800", client_id=7))
    assert (refused.value.codespace, refused.value.code) == ("clob", 3005)
    assert refused.value.reason == _refusal("clob", 3005)

    await paper.place_order(await _market(paper, BUY, "1", client_id=8))
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.place_order(await _market(paper, BUY, "2", client_id=8))
    assert refused.value.code == 24  # that order was already filled
    [order] = await paper.open_orders()
    assert order.price == D("2900")
    assert len(await paper.fills()) == 1


async def test_limit_orders_fill_at_once_or_rest_until_the_oracle_crosses(
    paper: PaperExchange, dydx_double: DydxDouble, live_sessionmaker: Maker, user_id: int
) -> None:
    # Marketable: buys at the better of the limit and oracle + slippage.
    await paper.place_order(_limit(BUY, "1", "3010", client_id=1))
    [fill] = await paper.fills()
    assert fill.price == D("3001.5")

    await paper.place_order(_limit(BUY, "1", "2900", client_id=2))
    [resting] = await paper.open_orders(ETH)
    assert (resting.client_id, resting.status, resting.flags) == (2, "OPEN", OrderFlags.LONG_TERM)
    assert await paper.open_orders("BTC-USD") == []
    assert await PaperExchange.users_with_live_orders(live_sessionmaker) == [user_id]
    assert await paper.check_triggers() == []

    dydx_double.set_oracle_price(ETH, "2890")
    [filled] = await paper.check_triggers()
    # 2890 * 1.0005 = 2891.445, up to the tick: 2891.5 (better than the 2900 limit).
    assert (filled.side, filled.size, filled.price) == (BUY, D("1"), D("2891.5"))
    order = await paper.find_order(ETH, 2, OrderFlags.LONG_TERM)
    assert order is not None
    assert order.status == "FILLED"
    assert await paper.open_orders() == []
    assert await PaperExchange.users_with_live_orders(live_sessionmaker) == []
    [position] = await paper.positions()
    assert (position.size, position.entry_price) == (D("2"), D("2946.5"))  # size-weighted
    assert await paper.check_triggers() == []


async def test_stop_loss_triggers_and_take_profit_is_cancelled_with_nothing_to_reduce(
    paper: PaperExchange, dydx_double: DydxDouble
) -> None:
    await paper.place_order(await _market(paper, BUY, "1", client_id=1))
    await paper.place_order(_conditional(OrderKind.STOP, SELL, "2950", "2900", client_id=2))
    await paper.place_order(_conditional(OrderKind.TAKE_PROFIT, SELL, "3100", "3050", client_id=3))
    orders = await paper.open_orders()
    assert [(o.kind, o.status, o.flags) for o in orders] == [
        (OrderKind.STOP, "UNTRIGGERED", OrderFlags.CONDITIONAL),
        (OrderKind.TAKE_PROFIT, "UNTRIGGERED", OrderFlags.CONDITIONAL),
    ]
    dydx_double.set_oracle_price(ETH, "2960")
    assert await paper.check_triggers() == []

    dydx_double.set_oracle_price(ETH, "2940")
    [fill] = await paper.check_triggers()
    # Executed at 2940 * 0.9995 = 2938.53, down to the tick: 2938.5; realized -63.
    assert (fill.side, fill.size, fill.price) == (SELL, D("1"), D("2938.5"))
    assert await paper.positions() == []
    stop = await paper.find_order(ETH, 2, OrderFlags.CONDITIONAL)
    assert stop is not None
    assert stop.status == "FILLED"
    account = await paper.account()
    assert account.equity == D("10000") - D("1.50075") - D("63") - fill.fee

    dydx_double.set_oracle_price(ETH, "3200")
    assert await paper.check_triggers() == []
    take_profit = await paper.find_order(ETH, 3, OrderFlags.CONDITIONAL)
    assert take_profit is not None
    assert take_profit.status == "CANCELED"
    assert await paper.open_orders() == []


async def test_cancel_a_resting_order(paper: PaperExchange, live_sessionmaker: Maker) -> None:
    request = _limit(SELL, "1", "3500", client_id=9)
    await paper.place_order(request)
    result = await paper.cancel_order(
        ETH, 9, OrderFlags.LONG_TERM, good_til_block_time=request.good_til_block_time
    )
    assert result.accepted
    order = await paper.find_order(ETH, 9, OrderFlags.LONG_TERM)
    assert order is not None
    assert order.status == "CANCELED"
    assert await paper.open_orders() == []
    assert await PaperExchange.users_with_live_orders(live_sessionmaker) == []

    with pytest.raises(PermanentExchangeError) as refused:
        await paper.cancel_order(ETH, 9, OrderFlags.LONG_TERM)
    assert (refused.value.codespace, refused.value.code) == ("clob", 3006)
    with pytest.raises(PermanentExchangeError) as refused:
        await paper.cancel_order(ETH, 10, OrderFlags.SHORT_TERM, good_til_block=1)
    assert (refused.value.codespace, refused.value.code) == ("clob", 2)


async def test_concurrent_broadcasts_of_one_user_serialize(
    paper: PaperExchange, live_sessionmaker: Maker, indexer: IndexerClient
) -> None:
    # Two instances (two workers) racing, starting before the paper account exists.
    other = PaperExchange(live_sessionmaker, paper.user_id, indexer)
    requests = [await _market(paper, BUY, "1", client_id=n) for n in range(1, 7)]
    venues = [paper, other] * 3
    results = await asyncio.gather(
        *(venue.place_order(request) for venue, request in zip(venues, requests, strict=True))
    )
    assert all(result.accepted for result in results)
    [position] = await paper.positions()
    assert (position.size, position.entry_price) == (D("6"), D("3001.5"))
    fees = D("1.50075") * 6
    account = await paper.account()
    assert account.equity == D("10000") - fees - D("9")  # 6 * -1.5 unrealized
    async with live_sessionmaker() as session:
        assert await session.scalar(select(func.count()).select_from(PaperFill)) == 6


async def test_the_venue_is_persisted_across_instances(
    paper: PaperExchange, live_sessionmaker: Maker, indexer: IndexerClient
) -> None:
    await paper.place_order(await _market(paper, BUY, "1", client_id=1))
    await paper.place_order(_limit(BUY, "1", "2900", client_id=2))
    restarted = PaperExchange(
        live_sessionmaker, paper.user_id, indexer, starting_balance=D("50000")
    )
    assert await restarted.account() == await paper.account()
    assert await restarted.positions() == await paper.positions()
    assert await restarted.open_orders() == await paper.open_orders()
    assert await restarted.fills() == await paper.fills()
    # Another user has a venue of their own.
    stranger = PaperExchange(live_sessionmaker, await _new_user(live_sessionmaker, 4343), indexer)
    assert await stranger.positions() == []
    assert (await stranger.account()).equity == D("10000")


async def test_garbage_and_foreign_bytes_are_refused(
    paper: PaperExchange, live_sessionmaker: Maker, indexer: IndexerClient
) -> None:
    unreadable = _refusal("sdk", 2)
    signed = await paper.sign_order(await _market(paper, BUY, "1", client_id=1))
    stranger = PaperExchange(live_sessionmaker, await _new_user(live_sessionmaker, 4343), indexer)
    tampered = signed.tx_bytes.replace(b'"size":"1"', b'"size":"2"')
    reformatted = json.dumps(json.loads(signed.tx_bytes), indent=1).encode()
    for tx_bytes in (
        b"\x0a\x0b\xff garbage",
        b"{}",
        b"[1, 2]",
        reformatted,
        tampered.replace(b'"kind":"MARKET"', b'"kind":"ICEBERG"'),
    ):
        with pytest.raises(PermanentExchangeError) as refused:
            await paper.broadcast(SignedTx(tx_bytes, hashlib.sha256(tx_bytes).hexdigest()))
        assert (refused.value.codespace, refused.value.code) == ("sdk", 2)
        assert refused.value.reason == unreadable
    with pytest.raises(PermanentExchangeError) as refused:
        await stranger.broadcast(signed)  # bytes signed for another paper account
    assert refused.value.code == 2
    assert await _order_count(live_sessionmaker) == 0


async def test_sizes_and_prices_must_be_on_the_grid(paper: PaperExchange) -> None:
    request = await _market(paper, BUY, "1", client_id=1)
    with pytest.raises(grid.SizeBelowStepError):
        await paper.sign_order(replace(request, size=D("0.0005")))
    with pytest.raises(grid.SizeOffStepError):
        await paper.sign_order(replace(request, size=D("1.0005")))
    with pytest.raises(grid.PriceOffTickError):
        await paper.sign_order(replace(request, price=D("3030.05")))
    with pytest.raises(KeyError):
        await paper.sign_order(replace(request, market="DOGE-USD"))


async def test_reset_restarts_the_account(
    paper: PaperExchange, live_sessionmaker: Maker, dydx_double: DydxDouble
) -> None:
    await paper.place_order(await _market(paper, BUY, "1", client_id=1))
    await paper.place_order(_limit(BUY, "1", "2900", client_id=2))
    await paper.reset(D("5000"))
    assert await paper.account() == Account(equity=D("5000"), free_collateral=D("5000"))
    assert await paper.positions() == []
    assert await paper.open_orders() == []
    assert await PaperExchange.users_with_live_orders(live_sessionmaker) == []
    dydx_double.set_oracle_price(ETH, "2800")
    assert await paper.check_triggers() == []  # the cancelled limit never fills
    # The history stays, and client ids stay used.
    assert len(await paper.fills()) == 1
    await paper.reset()
    assert (await paper.account()).equity == D("10000")
    with pytest.raises(ValueError, match="positive"):
        await paper.reset(D("0"))
