"""The P&L chart as a PNG: matplotlib's Agg canvas and object-oriented API only (a ``Figure``
per chart, no pyplot state), so it is safe in any thread or process.

The input is a :class:`ChartData` of plain floats (cheap to send to a renderer process); the
figure is sized for Telegram's photo view (1280 × 960 px), with large type, the trader's
timezone on the time axis and its own dark background, which reads the same in Telegram's
dark and light themes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from functools import cache
from zoneinfo import ZoneInfo

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.colors import to_rgba
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, num2date
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.textpath import TextToPath
from matplotlib.ticker import MaxNLocator
from numpy.lib.stride_tricks import as_strided

from core.texts import analytics as texts

WIDTH_PX, HEIGHT_PX, DPI = 1280, 960, 160
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
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


#: Above this many entries (or exits) the markers are small and drawn under the curve.
CROWDED = 400


def _marker_size(count: int) -> float:
    """Marker width in points: large for a few fills, smaller as they crowd (10,000 a year)."""
    return 6.8 if count <= CROWDED else 3.2


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


#: The grid crowded markers are thinned on: cells of about a third of a marker, so the
#: markers left cover the same pixels as all of them would.
MARKER_COLUMNS, MARKER_ROWS = 400, 200


def _distinct(at: np.ndarray, values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Indices of markers that land on distinct spots (a third of a marker wide and high):
    ten thousand fills in a year draw as the few hundred one can tell apart."""
    if len(at) <= CROWDED:
        return np.arange(len(at))
    span = float(at.max() - at.min()) or 1.0
    column = ((at - at.min()) / span * MARKER_COLUMNS).astype(np.int64)
    row = ((values - low) / ((high - low) or 1.0) * MARKER_ROWS).astype(np.int64)
    _, first = np.unique(column * (MARKER_ROWS + 1) + row, return_index=True)
    return np.sort(first)


def _style(axes: Axes) -> None:
    """A plain panel: its grid and tick labels are drawn by :func:`_value_axis` and
    :func:`_time_axis` (matplotlib's own axes cost a third of a render: five artists and
    a layout pass per tick)."""
    axes.set_facecolor(PANEL)
    axes.xaxis.set_visible(False)
    axes.yaxis.set_visible(False)
    for spine in axes.spines.values():
        spine.set_visible(False)


def _grid(axes: Axes, at: list[float], *, vertical: bool) -> None:
    """Grid lines at ``at`` (data values), as one collection behind everything else."""
    if vertical:
        segments = [[(x, 0.0), (x, 1.0)] for x in at]
        transform = axes.get_xaxis_transform()
    else:
        segments = [[(0.0, y), (1.0, y)] for y in at]
        transform = axes.get_yaxis_transform()
    lines = LineCollection(segments, colors=GRID, linewidths=0.8, transform=transform, zorder=0.5)
    axes.add_collection(lines, autolim=False)


def _value_axis(axes: Axes, bins: int) -> list[str]:
    """Money ticks on the panel's left, at most ``bins`` + 1 round values; their labels."""
    low, high = axes.get_ylim()
    locator = MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10])
    # None at the panel's very edge, where its label would touch the next panel's.
    inset = (high - low) * 0.03
    ticks = [float(y) for y in locator.tick_values(low, high) if low + inset <= y <= high - inset]
    _grid(axes, ticks, vertical=False)
    labels = [_money(y, abs(high - low)) for y in ticks]
    for y, label in zip(ticks, labels, strict=True):
        axes.text(
            -0.012,
            y,
            label,
            transform=axes.get_yaxis_transform(),
            color=MUTED,
            fontsize=VALUE_SIZE,
            ha="right",
            va="center",
        )
    return labels


#: Points of the value labels; pixels kept left of them (the title's margin) and right.
VALUE_SIZE, LEFT_PX, GAP_PX = 12, 38, 14


@cache
def _measure() -> TextToPath:
    return TextToPath()


def left_margin(labels: list[str]) -> float:
    """The panels' left edge (figure fraction): room for the widest value label, as the
    font lays it out (``$17,500`` needs half again the room of ``$200``)."""
    font = FontProperties(size=VALUE_SIZE)
    points = max(
        (
            _measure().get_text_width_height_descent(label, font, ismath=False)[0]
            for label in labels
        ),
        default=0.0,
    )
    return max(0.08, (LEFT_PX + points * DPI / 72 + GAP_PX) / WIDTH_PX)


def _time_span(data: ChartData) -> tuple[float, float]:
    """The time axis's limits (date numbers): every point and bar, with a small margin."""
    ends = [*data.times[:1], *data.times[-1:], *data.day_starts[:1]]
    if data.day_starts:
        ends.append(data.day_starts[-1] + SECONDS_PER_DAY)
    if not ends:
        return 0.0, 1.0
    low, high = min(ends) / SECONDS_PER_DAY, max(ends) / SECONDS_PER_DAY
    if high - low < 1 / 24:  # a single moment: an hour either side
        return low - 1 / 24, high + 1 / 24
    margin = (high - low) * 0.02
    return low - margin, high + margin


def _time_axis(curve: Axes, bars: Axes, span: tuple[float, float], zone: ZoneInfo) -> None:
    """The same date ticks on both panels, worked out once (the locator walks a calendar
    rule), labelled under the bars in the trader's timezone."""
    locator = AutoDateLocator(tz=zone, minticks=3, maxticks=7)  # type: ignore[no-untyped-call]
    low, high = (num2date(value, tz=zone) for value in span)  # type: ignore[no-untyped-call]
    found = locator.tick_values(low, high)  # type: ignore[no-untyped-call]
    ticks = [float(t) for t in found if span[0] <= t <= span[1]]
    formatter = ConciseDateFormatter(locator, tz=zone)  # type: ignore[no-untyped-call]
    for axes in (curve, bars):
        axes.set_xlim(span)
        _grid(axes, ticks, vertical=True)
    place = bars.get_xaxis_transform()
    labels = formatter.format_ticks(ticks)  # type: ignore[no-untyped-call]
    for x, label in zip(ticks, labels, strict=True):
        bars.text(x, -0.05, label, transform=place, color=MUTED, fontsize=12, ha="center", va="top")
    # The year (and month) the short labels leave out, as matplotlib puts it.
    offset = formatter.get_offset()  # type: ignore[no-untyped-call]
    if offset:
        bars.text(
            1.0,
            -0.2,
            offset,
            transform=bars.transAxes,
            color=MUTED,
            fontsize=10,
            ha="right",
            va="top",
        )


def _draw_curve(curve: Axes, data: ChartData) -> None:
    """The equity curve as a step line, its drawdown shaded, entries and exits marked."""
    x, y = decimate(_dates(data.times), np.asarray(data.values, dtype=float))
    if not len(x):
        return
    peak = np.maximum.accumulate(y)
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
    curve.step(x, y, where="post", color=EQUITY, linewidth=2.2, label=data.value_label, zorder=2)
    for times, colour, marker, name in (
        (data.entry_times, ENTRY, "^", texts.CHART_ENTRY),
        (data.exit_times, EXIT, "v", texts.CHART_EXIT),
    ):
        if not times:
            continue
        at = _dates(times)
        index = np.clip(np.searchsorted(x, at, side="right") - 1, 0, len(y) - 1)
        crowded = len(times) > CROWDED
        shown = _distinct(at, y[index], float(y.min()), float(y.max()))
        # One Line2D of markers: Agg rasterises the marker once and stamps it, far cheaper
        # than a scatter's collection for thousands of them.
        curve.plot(
            at[shown],
            y[index][shown],
            linestyle="none",
            marker=marker,
            markersize=_marker_size(len(times)),
            color=colour,
            markeredgecolor=colour if crowded else BACKGROUND,
            markeredgewidth=0 if crowded else 0.6,
            alpha=0.75 if crowded else 1.0,
            # Crowded markers go under the curve, so the curve stays readable.
            zorder=1.5 if crowded else 3,
            label=name,
        )
    crowd = max(len(data.entry_times), len(data.exit_times))
    curve.legend(
        loc="lower left",
        bbox_to_anchor=(0.0, 1.0),
        fontsize=12,
        frameon=False,
        ncol=4,
        labelcolor=TEXT,
        handlelength=1.2,
        borderaxespad=0.1,
        markerscale=_marker_size(0) / _marker_size(crowd),
    )


#: Share of the bars panel kept clear above the tallest bar for the panel's label.
LABEL_ROOM = 0.24


def _draw_days(bars: Axes, data: ChartData) -> None:
    """Each local day's realized P&L as a bar (green gain, red loss), labelled in the
    room kept above the tallest one."""
    days = _dates(data.day_starts)
    values = np.asarray(data.day_values, dtype=float)
    if len(days):
        # One collection of lines rather than a rectangle per day: fast for a year of days.
        width = max(1.0, min(14.0, 700.0 / len(days)))
        bars.vlines(
            days + 0.5,
            0,
            values,
            # An RGBA row per bar: no colour name to look up 365 times.
            colors=np.where((values >= 0)[:, None], to_rgba(GAIN), to_rgba(LOSS)),  # type: ignore[arg-type]
            linewidth=width,
        )
    bars.axhline(0, color=MUTED, linewidth=0.8)
    top = max(float(values.max()) if len(values) else 0.0, 0.0)
    bottom = min(float(values.min()) if len(values) else 0.0, 0.0)
    if top == bottom:
        bottom, top = -1.0, 1.0
    height = (top - bottom) * 1.06
    bottom -= (top - bottom) * 0.06
    bars.set_ylim(bottom, bottom + height / (1 - LABEL_ROOM))
    bars.text(
        0.01,
        0.95,
        texts.CHART_DAILY,
        transform=bars.transAxes,
        color=MUTED,
        fontsize=11,
        va="top",
        bbox={"boxstyle": "square,pad=0.2", "facecolor": PANEL, "edgecolor": "none"},
    )


def _draw_header(figure: Figure, data: ChartData) -> None:
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


#: zlib level of the PNG; rows go unfiltered. A chart is long runs of one colour, which
#: deflate finds without PNG's filters: a third of Pillow's time (it tries five filters on
#: every row) for about the same bytes, and Telegram recompresses photos anyway.
PNG_LEVEL = 3


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(figure: Figure) -> bytes:
    """The figure drawn on an Agg canvas, as an 8-bit RGB PNG (the background is opaque)."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()  # type: ignore[no-untyped-call]
    rgba = np.asarray(canvas.buffer_rgba())  # type: ignore[no-untyped-call]
    height, width = rgba.shape[:2]
    rows = np.zeros((height, 1 + 3 * width), dtype=np.uint8)  # a 0 byte first: no filter
    # The RGB of each pixel copied straight into its row, in one pass.
    pixels = as_strided(rows[:, 1:], shape=(height, width, 3), strides=(rows.strides[0], 3, 1))
    pixels[...] = rgba[:, :, :3]
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8 bit, truecolour
    return b"".join(
        (
            PNG_SIGNATURE,
            _chunk(b"IHDR", header),
            _chunk(b"IDAT", zlib.compress(rows.tobytes(), PNG_LEVEL)),
            _chunk(b"IEND", b""),
        )
    )


def tune_matplotlib() -> None:
    """For a process that only draws charts: matplotlib's settings traded for speed.

    Unhinted glyphs (FreeType's hinting is an eighth of a render; at 160 dpi the text
    looks the same). These are process-wide settings, so the renderer processes call this
    once at start; a chart drawn elsewhere is the same chart, slightly slower.
    """
    matplotlib.rcParams["text.hinting"] = "no_hinting"


def render_png(data: ChartData) -> bytes:
    """Draw the equity curve (drawdown shaded, entries ▲ and exits ▼ on it) over the daily
    realized P&L bars, and return the PNG."""
    zone = ZoneInfo(data.timezone)
    figure = Figure(figsize=(WIDTH_PX / DPI, HEIGHT_PX / DPI), dpi=DPI, facecolor=BACKGROUND)
    grid = figure.add_gridspec(
        2, 1, height_ratios=(3, 1.2), hspace=0.06, left=0.1, right=0.97, top=0.8, bottom=0.07
    )
    # Two panels on one time span, not ``sharex`` (whose axes lay out each other's labels).
    curve = figure.add_subplot(grid[0])
    bars = figure.add_subplot(grid[1])
    _style(curve)
    _style(bars)
    _draw_curve(curve, data)
    _draw_days(bars, data)
    _time_axis(curve, bars, _time_span(data), zone)
    labels = _value_axis(curve, bins=6) + _value_axis(bars, bins=4)
    grid.update(left=left_margin(labels))
    for axes in (curve, bars):  # (``update`` moves only pyplot's axes by itself)
        axes.set_position(grid[axes is bars].get_position(figure))
    _draw_header(figure, data)
    return _png(figure)
