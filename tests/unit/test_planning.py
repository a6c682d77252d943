"""Alert → order plan: sizing, position semantics and each risk limit (pure functions)."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest

from core.alerts.schema import Action, AlertOrder, OrderType, TargetPosition
from core.domain.compliance import ComplianceStatus
from core.domain.preferences import FlipMode, Preferences, SizeKind
from core.domain.states import OrderPurpose, OrderSide, PositionSide
from core.exchange.orders import OrderKind, TimeInForce
from core.exchange.port import Account, MarketInfo, Position
from core.services.planning import (
    NothingToDoError,
    PlanRefusedError,
    RefusalKind,
    plan_order,
    protective_prices,
)

D = Decimal
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
RICH = Account(equity=D("10000"), free_collateral=D("10000"))


def long(size: str, market: str = "ETH-USD", entry: str = "2900") -> Position:
    return Position(market, PositionSide.LONG, D(size), D(entry), D(0), D(0))


def short(size: str, market: str = "ETH-USD", entry: str = "3100") -> Position:
    return Position(market, PositionSide.SHORT, D(size), D(entry), D(0), D(0))


def plan(
    alert: AlertOrder,
    positions: list[Position] | None = None,
    prefs: Preferences | None = None,
    account: Account = RICH,
    compliance: ComplianceStatus | None = ComplianceStatus.COMPLIANT,
    realized_today: Decimal | None = None,
    market: MarketInfo = ETH,
):  # type: ignore[no-untyped-def]
    return plan_order(
        alert,
        prefs=prefs or Preferences(),
        market=market,
        account=account,
        positions=positions or [],
        compliance=compliance,
        realized_today=realized_today or D(0),
    )


def buy(**kw: object) -> AlertOrder:
    return AlertOrder(market="ETH-USD", action=Action.BUY, **kw)  # type: ignore[arg-type]


def sell(**kw: object) -> AlertOrder:
    return AlertOrder(market="ETH-USD", action=Action.SELL, **kw)  # type: ignore[arg-type]


def test_a_market_buy_is_short_term_ioc_at_oracle_plus_slippage() -> None:
    order = plan(buy(size=D("0.1")))
    assert (order.side, order.size, order.kind) == (OrderSide.BUY, D("0.1"), OrderKind.MARKET)
    assert order.price == D("3030.0")
    assert order.time_in_force is TimeInForce.IOC
    assert not order.reduce_only
    assert order.purpose is OrderPurpose.ENTRY
    assert order.is_short_term


def test_size_usd_and_size_pct_are_converted_and_rounded_down_to_the_step() -> None:
    assert plan(buy(size_usd=D("1000"))).size == D("0.333")
    assert plan(buy(size_pct=D("10"))).size == D("0.333")  # 10 % of $10,000 equity
    by_default = plan(
        buy(), prefs=Preferences(default_size_kind=SizeKind.BASE, default_size_value=D("0.25"))
    )
    assert by_default.size == D("0.25")
    assert plan(buy()).size == D("0.016")  # default $50


def test_a_size_below_the_step_is_refused_not_enlarged() -> None:
    with pytest.raises(PlanRefusedError) as refused:
        plan(buy(size=D("0.0004")))
    assert refused.value.kind is RefusalKind.SIZE
    assert "minimum of 0.001" in refused.value.message


def test_the_minimum_size_is_written_like_every_other_size() -> None:
    pepe = replace(
        ETH,
        ticker="PEPE-USD",
        oracle_price=D("0.00001"),
        tick_size=D("0.0000000001"),
        step_size=D("1000000"),
        min_order_size=D("1000000"),
    )
    with pytest.raises(PlanRefusedError) as refused:
        plan(AlertOrder(market="PEPE-USD", action=Action.BUY, size=D("10")), market=pepe)
    assert "PEPE-USD's minimum of 1,000,000:" in refused.value.message


def test_close_is_reduce_only_for_the_whole_position_and_nothing_when_flat() -> None:
    order = plan(AlertOrder(market="ETH-USD", action=Action.CLOSE), [long("0.5")])
    assert (order.side, order.size, order.reduce_only) == (OrderSide.SELL, D("0.5"), True)
    assert order.purpose is OrderPurpose.CLOSE
    with pytest.raises(NothingToDoError):
        plan(AlertOrder(market="ETH-USD", action=Action.CLOSE))
    flat_target = plan(sell(size=D("0.2"), position=TargetPosition.FLAT), [long("0.5")])
    assert (flat_target.size, flat_target.reduce_only) == (D("0.5"), True)


def test_a_sell_while_long_flips_or_only_reduces_by_preference() -> None:
    flip = plan(sell(size=D("0.3"), position=TargetPosition.SHORT), [long("0.5")])
    assert (flip.side, flip.size, flip.reduce_only) == (OrderSide.SELL, D("0.8"), False)
    reduce = plan(
        sell(size=D("0.3"), position=TargetPosition.SHORT),
        [long("0.5")],
        prefs=Preferences(flip=FlipMode.REDUCE),
    )
    assert (reduce.size, reduce.reduce_only) == (D("0.5"), True)
    partial = plan(sell(size=D("0.2")), [long("0.5")], prefs=Preferences(flip=FlipMode.REDUCE))
    assert (partial.size, partial.reduce_only) == (D("0.2"), True)
    reverse = plan(buy(size=D("0.1"), reverse=True), [short("0.4")])
    assert (reverse.side, reverse.size, reverse.reduce_only) == (OrderSide.BUY, D("0.5"), False)


def test_each_risk_limit_refuses_with_its_message() -> None:
    cases: list[tuple[dict[str, object], RefusalKind, str]] = [
        (
            {"prefs": Preferences(allowed_markets=("BTC-USD",))},
            RefusalKind.MARKET_NOT_ALLOWED,
            "not in your allowed markets",
        ),
        (
            {"prefs": Preferences(max_notional_usd=D("100"))},
            RefusalKind.MAX_NOTIONAL,
            "above your limit of $100.00 per order",
        ),
        (
            {"prefs": Preferences(max_leverage=D("0.01"))},
            RefusalKind.MAX_LEVERAGE,
            "leverage would be 0.03x, above your cap of 0.01x",
        ),
        (
            {"prefs": Preferences(max_open_positions=1), "positions": [long("1", "BTC-USD")]},
            RefusalKind.MAX_POSITIONS,
            "1 open positions",
        ),
        (
            {"prefs": Preferences(daily_loss_limit_usd=D("100")), "realized_today": D("-150")},
            RefusalKind.DAILY_LOSS,
            "reached your daily limit of $100.00: trading is paused",
        ),
        ({"compliance": ComplianceStatus.CLOSE_ONLY}, RefusalKind.COMPLIANCE, "close-only"),
        ({"compliance": ComplianceStatus.BLOCKED}, RefusalKind.COMPLIANCE, "blocked"),
        ({"account": Account(D(0), D(0))}, RefusalKind.NO_EQUITY, "no equity"),
        (
            {"market": replace(ETH, status="CANCEL_ONLY")},
            RefusalKind.MARKET_NOT_TRADING,
            "cancel only",
        ),
    ]
    for kwargs, kind, words in cases:
        with pytest.raises(PlanRefusedError) as refused:
            plan(buy(size=D("0.1")), **kwargs)  # type: ignore[arg-type]
        assert refused.value.kind is kind
        assert words in refused.value.message


def test_closing_is_allowed_whatever_the_limits_say() -> None:
    strict = Preferences(
        max_notional_usd=D("1"), max_leverage=D("0.01"), allowed_markets=("BTC-USD",)
    )
    order = plan(
        AlertOrder(market="ETH-USD", action=Action.CLOSE),
        [long("2")],
        prefs=strict,
        compliance=ComplianceStatus.CLOSE_ONLY,
        realized_today=D("-1000000"),
    )
    assert order.reduce_only


def test_a_limit_order_rests_long_term_at_its_tick_rounded_price() -> None:
    order = plan(buy(size=D("0.1"), order_type=OrderType.LIMIT, price=D("2950.07")))
    assert (order.kind, order.price) == (OrderKind.LIMIT, D("2950.0"))
    assert order.time_in_force is TimeInForce.GTT
    assert order.good_til_block_time is not None


def test_protective_prices_from_percent_or_price_and_dropped_on_the_wrong_side() -> None:
    take, stop = protective_prices(buy(tp_pct=D("2"), sl_pct=D("1")), OrderSide.BUY, D("3000"), ETH)
    assert (take, stop) == (D("3060.0"), D("2970.0"))
    take, stop = protective_prices(
        sell(tp_price=D("2800"), sl_price=D("2900")), OrderSide.SELL, D("3000"), ETH
    )
    assert (take, stop) == (D("2800.0"), None)
