"""A hand-checked ledger for the analytics tests: five closed trades and one open, with fees,
funding, a flip, a trade no alert opened, and the timings of four alert-driven orders.

Hand-checked figures (net = realized after fees + funding):

=====  ========  =====  =========  ======  ========  ========  ========
trade  market    side   strategy   fees    funding   realized  net
=====  ========  =====  =========  ======  ========  ========  ========
A      ETH-USD   LONG   trend      3.05    −2.40     96.95     94.55
B      BTC-USD   SHORT  mean-rev   6.05    +1.20     −106.05   −104.85
C      ETH-USD   SHORT  trend      6.325   −0.75     143.675   142.925
D      SOL-USD   LONG   (none)     1.975   0         −51.975   −51.975
E      ETH-USD   LONG   trend      3.00    0         47.00     47.00
F      ETH-USD   SHORT  trend      3.00    −0.50     −3.00     open
=====  ========  =====  =========  ======  ========  ========  ========

Closed: 5 trades, 3 wins (60 %), net 127.65, fees 20.40, funding −1.95, wins 284.475,
losses −156.825, profit factor 1.81, average win 94.825, average loss −78.4125, expectancy
25.53, max drawdown 104.85 (after B), best C, worst B. Latencies 120, 300, 80 and 1200 ms
(median 210 ms); slippage +10, +16.13 and −10 bps (median 10 bps). A funding payment of
+0.30 on ETH-USD while flat belongs to no trade.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db.models import Alert, Fill, FundingPayment, Order
from core.db.repositories.analytics import FillRecord, FundingRecord, OrderTiming
from core.domain.states import AlertState, OrderPurpose, OrderSide, OrderState

D = Decimal
BUY, SELL = OrderSide.BUY, OrderSide.SELL
OWNER = "dydx1analyticsowner000000000000000000000000"


@dataclass(frozen=True)
class FillSpec:
    """A fill of the scenario, ``hours`` after its start, with its order's alert."""

    hours: float
    market: str
    side: OrderSide
    size: Decimal
    price: Decimal
    fee: Decimal
    realized: Decimal
    strategy: str | None  # None: a manual order, no alert
    # (latency ms, the alert's price, the average fill price) of the order, if measured.
    timing: tuple[int, Decimal, Decimal | None] | None = None


FILLS = [
    # A: long ETH 1 @ 3000 → 3100
    FillSpec(
        1, "ETH-USD", BUY, D(1), D(3000), D("1.50"), D("-1.50"), "trend", (120, D(3000), D(3003))
    ),
    FillSpec(
        5, "ETH-USD", SELL, D(1), D(3100), D("1.55"), D("98.45"), "trend", (300, D(3100), D(3095))
    ),
    # B: short BTC 0.1 @ 60000 → 61000
    FillSpec(10, "BTC-USD", SELL, D("0.1"), D(60000), D("3.00"), D("-3.00"), "mean-rev"),
    FillSpec(
        20,
        "BTC-USD",
        BUY,
        D("0.1"),
        D(61000),
        D("3.05"),
        D("-103.05"),
        "mean-rev",
        (80, D(60000), D(59940)),
    ),
    # C: short ETH 2 @ 3200, covered 1 @ 3150 and 1 @ 3100
    FillSpec(
        30, "ETH-USD", SELL, D(2), D(3200), D("3.20"), D("-3.20"), "trend", (1200, D(3200), None)
    ),  # no average price: no slippage measured
    FillSpec(34, "ETH-USD", BUY, D(1), D(3150), D("1.575"), D("48.425"), "trend"),
    FillSpec(38, "ETH-USD", BUY, D(1), D(3100), D("1.55"), D("98.45"), "trend"),
    # D: long SOL 10 @ 200 → 195, by hand (no alert)
    FillSpec(40, "SOL-USD", BUY, D(10), D(200), D("1.00"), D("-1.00"), None),
    FillSpec(44, "SOL-USD", SELL, D(10), D(195), D("0.975"), D("-50.975"), None),
    # E: long ETH 1 @ 3000, flipped by a sell of 3 @ 3050 (F: short 2 stays open)
    FillSpec(50, "ETH-USD", BUY, D(1), D(3000), D("1.50"), D("-1.50"), "trend"),
    FillSpec(54, "ETH-USD", SELL, D(3), D(3050), D("4.50"), D("45.50"), "trend"),
]

# (hours, market, payment): A holds 2-4, B 15, C 32, flat ETH at 45, F at 60.
FUNDING = [
    (2, "ETH-USD", D("-1.40")),
    (4, "ETH-USD", D("-1.00")),
    (15, "BTC-USD", D("1.20")),
    (32, "ETH-USD", D("-0.75")),
    (45, "ETH-USD", D("0.30")),
    (60, "ETH-USD", D("-0.50")),
]


def fill_records(start: datetime) -> list[FillRecord]:
    """The scenario's fills as the repository reads them (fill, order and alert ids from 1)."""
    records = []
    alert = 0
    for index, spec in enumerate(FILLS, start=1):
        if spec.strategy is not None:
            alert += 1
        records.append(
            FillRecord(
                fill_id=index,
                filled_at=start + timedelta(hours=spec.hours),
                market=spec.market,
                side=spec.side,
                size=spec.size,
                price=spec.price,
                fee=spec.fee,
                realized_pnl=spec.realized,
                order_id=index,
                alert_id=alert if spec.strategy is not None else None,
                strategy=spec.strategy,
            )
        )
    return records


def funding_records(start: datetime) -> list[FundingRecord]:
    """The scenario's funding payments."""
    return [
        FundingRecord(
            paid_at=start + timedelta(hours=hours),
            market=market,
            payment=payment,
            rate=D("0.00001"),
            position_size=D(1),
            oracle_price=D(3000),
        )
        for hours, market, payment in FUNDING
    ]


def timings(start: datetime) -> list[OrderTiming]:
    """The alert-driven orders' timings (the alert arrives a second before its fill)."""
    found = []
    for spec in FILLS:
        if spec.strategy is None:
            continue
        received = start + timedelta(hours=spec.hours, seconds=-1)
        latency, reference, average = spec.timing or (None, None, None)
        found.append(
            OrderTiming(
                market=spec.market,
                side=spec.side,
                strategy=spec.strategy,
                received_at=received,
                submitted_at=None
                if latency is None
                else received + timedelta(milliseconds=latency),
                reference_price=reference,
                average_price=average,
            )
        )
    return found


async def seed(
    maker: async_sessionmaker[AsyncSession], user_id: int, start: datetime, *, paper: bool = False
) -> None:
    """Write the scenario into the ledger of ``user_id`` (live, or paper without funding), as
    execution would have."""
    async with maker() as session:
        for index, spec in enumerate(FILLS, start=1):
            at = start + timedelta(hours=spec.hours)
            alert_id = None
            if spec.strategy is not None:
                alert = Alert(
                    user_id=user_id,
                    body_hash=secrets.token_hex(32),
                    dedupe_key=f"scenario:{index}",
                    strategy=spec.strategy,
                    market=spec.market,
                    action=spec.side.value.lower(),
                    state=AlertState.EXECUTED,
                    received_at=at - timedelta(seconds=1),
                )
                session.add(alert)
                await session.flush()
                alert_id = alert.id
            latency, reference, average = spec.timing or (None, None, None)
            order = Order(
                user_id=user_id,
                alert_id=alert_id,
                paper=paper,
                purpose=OrderPurpose.ENTRY if index % 2 else OrderPurpose.CLOSE,
                market=spec.market,
                owner_address=OWNER,
                subaccount_number=0,
                client_id=1000 + index,
                order_flags=0,
                side=spec.side,
                order_type="MARKET",
                size=spec.size,
                time_in_force="IOC",
                state=OrderState.FILLED,
                filled_size=spec.size,
                average_price=average,
                reference_price=reference,
                fee=spec.fee,
                realized_pnl=spec.realized,
                submitted_at=None
                if latency is None
                else at - timedelta(seconds=1) + timedelta(milliseconds=latency),
            )
            session.add(order)
            await session.flush()
            session.add(
                Fill(
                    user_id=user_id,
                    order_id=order.id,
                    paper=paper,
                    exchange_fill_id=f"scenario-{index}",
                    market=spec.market,
                    side=spec.side,
                    size=spec.size,
                    price=spec.price,
                    fee=spec.fee,
                    realized_pnl=spec.realized,
                    filled_at=at,
                )
            )
        for height, (hours, market, payment) in enumerate([] if paper else FUNDING, start=1):
            session.add(
                FundingPayment(
                    user_id=user_id,
                    owner_address=OWNER,
                    subaccount_number=0,
                    market=market,
                    height=height,
                    paid_at=start + timedelta(hours=hours),
                    payment=payment,
                    rate=D("0.00001"),
                    position_size=D(1),
                    oracle_price=D(3000),
                )
            )
        await session.commit()
