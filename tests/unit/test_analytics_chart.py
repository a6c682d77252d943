"""The P&L chart from fixtures: valid PNGs of Telegram's photo size, a decimated curve that
keeps every extreme, and the series ``/pnl`` draws from the hand-checked ledger."""

from __future__ import annotations

import asyncio
import io
import struct
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from PIL import Image, ImageColor

from core.exchange.dydx.history import parse_funding
from core.services.analytics.chart import (
    BACKGROUND,
    HEIGHT_PX,
    WIDTH_PX,
    ChartData,
    decimate,
    left_margin,
    render_png,
)
from core.services.analytics.periods import Period
from core.services.analytics.pnl import chart_data
from core.services.analytics.pnl_data import series, summarize
from core.services.analytics.rendering import ChartRenderer, RendererBusyError
from doubles.telegram import PNG_SIGNATURE
from tests import analytics_ledger as ledger

START = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
NOW = START + timedelta(days=3)


def _size(png: bytes) -> tuple[int, int]:
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])
    return width, height


def test_the_scenario_renders_its_ledger_curve_marks_and_days() -> None:
    fills = ledger.fill_records(START)
    funding = ledger.funding_records(START)
    zone = ZoneInfo("Asia/Tokyo")
    drawn = series(fills, fills, funding, [], since=None, now=NOW, zone=zone, base=Decimal(0))
    assert not drawn.equity
    # Cumulative net: every fill's realized P&L and every funding payment, from zero.
    assert drawn.values[0] == 0
    assert drawn.values[-1] == pytest.approx(126.60 - 2.15)
    assert (len(drawn.entries), len(drawn.exits)) == (5, 6)  # the flip counts as an exit
    assert sum(drawn.day_values) == pytest.approx(124.45)
    assert all(day.tzinfo == zone and day.hour == 0 for day in drawn.day_starts)
    summary = summarize(fills, funding, unrealized=None, equity=[], base=Decimal(10_000))
    data = chart_data(Period.ALL, False, summary, drawn, "Asia/Tokyo")
    assert data.subtitle == "net +$124.45 · return +1.24%"
    assert _size(render_png(data)) == (WIDTH_PX, HEIGHT_PX)


def test_a_flat_or_empty_period_still_renders() -> None:
    empty = ChartData("P&L · last 7 days", "net $0.00 · return —", "PAPER", "UTC", "x", [], [])
    assert _size(render_png(empty)) == (WIDTH_PX, HEIGHT_PX)
    flat = ChartData("t", "s", "LIVE", "UTC", "equity", [0.0, 86_400.0], [100.0, 100.0])
    assert _size(render_png(flat)) == (WIDTH_PX, HEIGHT_PX)


def test_the_png_decodes_to_the_drawn_chart() -> None:
    data = ChartData("t", "s", "PAPER", "UTC", "equity", [0.0, 86_400.0], [100.0, 25_000.0])
    with Image.open(io.BytesIO(render_png(data))) as image:
        image.load()  # every chunk read and its CRC checked
        assert (image.mode, image.size) == ("RGB", (WIDTH_PX, HEIGHT_PX))
        assert image.getpixel((2, 2)) == ImageColor.getrgb(BACKGROUND)


def test_the_panels_make_room_for_wide_value_labels() -> None:
    assert left_margin([]) == 0.08
    assert left_margin(["$0", "$200"]) < left_margin(["$17,500"]) < left_margin(["−$102,500"])


def test_decimation_keeps_every_extreme_in_order() -> None:
    x = np.arange(20_000, dtype=float)
    y = np.sin(x / 300) * 100 + (x == 12_345) * -500
    xs, ys = decimate(x, y, columns=1000)
    assert len(xs) == 4000
    assert np.all(np.diff(xs) >= 0)
    assert ys.min() == y.min()
    assert ys.max() == y.max()
    assert (xs[0], ys[0], xs[-1], ys[-1]) == (x[0], y[0], x[-1], y[-1])
    small = np.arange(10.0)
    assert decimate(small, small)[0] is small


def test_funding_payments_take_their_sign_from_the_side() -> None:
    item = {
        "subaccountNumber": "0",
        "createdAt": "2026-12-07T08:00:00.000Z",
        "createdAtHeight": "1234",
        "perpetualId": "1",
        "ticker": "ETH-USD",
        "oraclePrice": "3000",
        "size": "0.2",
        "side": "SHORT",
        "rate": "0.0001",
        "payment": "0.06",
        "fundingIndex": "0.3",
    }
    event = parse_funding(item)
    assert (event.height, event.market, event.payment) == (1234, "ETH-USD", Decimal("0.06"))
    assert event.position_size == Decimal("-0.2")
    assert event.at == datetime(2026, 12, 7, 8, tzinfo=UTC)


async def test_the_renderer_caches_by_key_and_refuses_beyond_its_queue() -> None:
    data = ChartData("t", "s", "LIVE", "UTC", "equity", [0.0, 86_400.0], [1.0, 2.0])
    with ThreadPoolExecutor(1) as pool:
        renderer = ChartRenderer(max_waiting=1, cache_size=1, executor=pool)
        first = asyncio.ensure_future(renderer.render("a", data))
        await asyncio.sleep(0)  # the first render is under way: the queue is full
        with pytest.raises(RendererBusyError):
            await renderer.render("b", data)
        png = await first
        assert await renderer.render("a", data) is png  # cached: not drawn again
        assert renderer.cached("a") is png
        await renderer.render("b", data)
        assert renderer.cached("a") is None  # the oldest went when "b" came in
