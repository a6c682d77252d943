"""The P&L chart as a PNG: matplotlib's Agg canvas and object-oriented API only (a ``Figure``
per chart, no pyplot state), so it is safe in any thread or process.

The input is a :class:`ChartData` of plain floats (cheap to send to a renderer process); the
figure is sized for Telegram's photo view (1280 × 960 px), with large type, the trader's
timezone on the time axis and its own dark background, which reads the same in Telegram's
dark and light themes.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import numpy as np
from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from core.texts import analytics as texts

WIDTH_PX, HEIGHT_PX, DPI = 1280, 960, 160
SECONDS_PER_DAY = 86_400.0

BACKGROUND = "#161b22"
PANEL = "#1c2330"
TEXT = "#e6edf3"
MUTED = "#9aa7b4"
GRID = "#2d3745"
EQUITY = "#58a6ff"
GAIN = "#3fb950"
LOSS = "#f85149"
ENTRY = "#3fb950"
EXIT = "#f0b429"


@dataclass(frozen=True, slots=True)
class ChartData:
    """What the chart shows; times are Unix seconds (UTC), values USD.

    Attributes:
        title: First line, e.g. ``P&L · last 30 days``.
        subtitle: Second line, e.g. ``net +$127.65 · return +1.28 %``.
        badge: ``LIVE`` or ``PAPER``.
        timezone: IANA zone of the time axis.
        value_label: What the curve is (``Equity`` or ``Cumulative P&L``).
        times: Times of the curve's points.
        values: The curve.
        entry_times: Fills that opened or added to a position.
        exit_times: Fills that reduced or closed one.
        day_starts: Local midnights of the daily bars.
        day_values: Realized P&L (fees and funding included) of each day.
    """

    title: str
    subtitle: str
    badge: str
    timezone: str
    value_label: str
    times: list[float]
    values: list[float]
    entry_times: list[float] = field(default_factory=list)
    exit_times: list[float] = field(default_factory=list)
    day_starts: list[float] = field(default_factory=list)
    day_values: list[float] = field(default_factory=list)


def _dates(seconds: list[float]) -> np.ndarray:
    """Unix seconds → matplotlib date numbers (days since 1970-01-01)."""
    return np.asarray(seconds, dtype=float) / SECONDS_PER_DAY


def _money(value: float, span: float) -> str:
    """``$12.5k`` on a wide axis, ``$3,250`` on a narrow one, ``−$0.50`` near zero."""
    sign = "−" if value < 0 else ""
    amount = abs(value)
    if amount >= 1_000 and span >= 2_000:
        text = f"{amount / 1000:,.1f}".removesuffix(".0")
        return f"{sign}${text}k"
    if amount == 0:
        return "$0"
    return f"{sign}${amount:,.0f}" if amount >= 10 or span >= 20 else f"{sign}${amount:,.2f}"


def _money_axis(axes: Axes) -> FuncFormatter:
    def label(value: float, _position: float | None = None) -> str:
        low, high = axes.get_ylim()
        return _money(value, abs(high - low))

    return FuncFormatter(label)


#: Above this many entries (or exits) the markers are small and drawn under the curve.
CROWDED = 400


def _marker_size(count: int) -> float:
    """Large markers for a few fills, smaller ones as they crowd (10,000 in a year)."""
    return 46.0 if count <= CROWDED else 10.0


#: Columns of the curve's decimation: about the plot's width in pixels.
COLUMNS = 1200


def decimate(x: np.ndarray, y: np.ndarray, columns: int = COLUMNS) -> tuple[np.ndarray, np.ndarray]:
    """At most four points per pixel column (first, lowest, highest, last), in order: the
    drawn step curve and its drawdown keep every extreme, at a fraction of the points."""
    if len(x) <= 4 * columns:
        return x, y
    span = float(x[-1] - x[0]) or 1.0
    column = np.minimum(((x - x[0]) / span * columns).astype(np.int64), columns - 1)
    starts = np.flatnonzero(np.r_[True, np.diff(column) != 0])
    ends = np.r_[starts[1:], len(x)] - 1
    lows = np.minimum.reduceat(y, starts)
    highs = np.maximum.reduceat(y, starts)
    xs = np.column_stack((x[starts], x[starts], x[starts], x[ends])).ravel()
    ys = np.column_stack((y[starts], lows, highs, y[ends])).ravel()
    return xs, ys


def _distinct(at: np.ndarray, values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Indices of markers that land on distinct spots (a pixel column and a sliver of the
    value range): ten thousand fills in a year draw as the few hundred one can tell apart."""
    if len(at) <= CROWDED:
        return np.arange(len(at))
    span = float(at.max() - at.min()) or 1.0
    column = ((at - at.min()) / span * COLUMNS).astype(np.int64)
    row = ((values - low) / ((high - low) or 1.0) * 400).astype(np.int64)
    _, first = np.unique(column * 1_000_003 + row, return_index=True)
    return np.sort(first)


def _style(axes: Axes) -> None:
    axes.set_facecolor(PANEL)
    axes.grid(True, color=GRID, linewidth=0.8)
    axes.tick_params(colors=MUTED, labelsize=12, length=0)
    for spine in axes.spines.values():
        spine.set_visible(False)
    axes.yaxis.set_major_formatter(_money_axis(axes))


def render_png(data: ChartData) -> bytes:
    """Draw the equity curve (drawdown shaded, entries ▲ and exits ▼ on it) over the daily
    realized P&L bars, and return the PNG."""
    zone = ZoneInfo(data.timezone)
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BACKGROUND)
    grid = figure.add_gridspec(
        2, 1, height_ratios=(3, 1.2), hspace=0.06, left=0.1, right=0.97, top=0.8, bottom=0.07
    )
    curve = figure.add_subplot(grid[0])
    bars = figure.add_subplot(grid[1], sharex=curve)
    _style(curve)
    _style(bars)

    x, y = decimate(_dates(data.times), np.asarray(data.values, dtype=float))
    peak = np.maximum.accumulate(y) if len(y) else y
    if len(x):
        curve.fill_between(
            x,
            y,
            peak,  # zero height at a new high: one polygon, no ``where`` regions to build
            color=LOSS,
            alpha=0.28,
            linewidth=0,
            step="post",
            label=texts.CHART_DRAWDOWN,
        )
        curve.step(
            x, y, where="post", color=EQUITY, linewidth=2.2, label=data.value_label, zorder=2
        )
        for times, colour, marker, name in (
            (data.entry_times, ENTRY, "^", texts.CHART_ENTRY),
            (data.exit_times, EXIT, "v", texts.CHART_EXIT),
        ):
            if times:
                at = _dates(times)
                index = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(y) - 1)
                crowded = len(times) > CROWDED
                shown = _distinct(at, y[index], float(y.min()), float(y.max()))
                curve.scatter(
                    at[shown],
                    y[index][shown],
                    s=_marker_size(len(times)),
                    marker=marker,
                    color=colour,
                    edgecolors="none" if crowded else BACKGROUND,
                    linewidths=0 if crowded else 0.6,
                    alpha=0.75 if crowded else 1.0,
                    # Crowded markers go under the curve, so the curve stays readable.
                    zorder=1.5 if crowded else 3,
                    label=name,
                )
        curve.legend(
            loc="lower left",
            bbox_to_anchor=(0.0, 1.0),
            fontsize=12,
            frameon=False,
            ncol=4,
            labelcolor=TEXT,
            handlelength=1.2,
            borderaxespad=0.1,
            markerscale=(46.0 / _marker_size(max(len(data.entry_times), len(data.exit_times))))
            ** 0.5,
        )
    days = _dates(data.day_starts)
    values = np.asarray(data.day_values, dtype=float)
    if len(days):
        # One collection of lines rather than a rectangle per day: fast for a year of days.
        width = max(1.0, min(14.0, 700.0 / max(len(days), 1)))
        bars.vlines(
            days + 0.5,
            0,
            values,
            colors=[GAIN if value >= 0 else LOSS for value in data.day_values],
            linewidth=width,
        )
    bars.axhline(0, color=MUTED, linewidth=0.8)
    bars.text(
        0.01,
        0.95,
        texts.CHART_DAILY,
        transform=bars.transAxes,
        color=MUTED,
        fontsize=11,
        va="top",
    )

    locator = AutoDateLocator(tz=zone, minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    bars.xaxis.set_major_locator(locator)
    formatter = ConciseDateFormatter(locator, tz=zone)  # type: ignore[no-untyped-call]
    bars.xaxis.set_major_formatter(formatter)
    curve.tick_params(labelbottom=False)

    figure.text(0.03, 0.955, data.title, color=TEXT, fontsize=20, fontweight="bold", va="center")
    figure.text(0.03, 0.895, data.subtitle, color=TEXT, fontsize=15, va="center")
    figure.text(
        0.97,
        0.955,
        data.badge,
        color=BACKGROUND,
        fontsize=13,
        fontweight="bold",
        ha="right",
        va="center",
        bbox={
            "boxstyle": "round,pad=0.35",
            "facecolor": EXIT if data.badge == "PAPER" else EQUITY,
            "edgecolor": "none",
        },
    )
    figure.text(0.97, 0.895, data.timezone, color=MUTED, fontsize=12, ha="right", va="center")
    buffer = io.BytesIO()
    # zlib level 2: a fraction of the default encoding time for a few more bytes.
    figure.savefig(
        buffer, format="png", dpi=DPI, facecolor=BACKGROUND, pil_kwargs={"compress_level": 2}
    )
    return buffer.getvalue()
