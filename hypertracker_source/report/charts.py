"""The report's interactive charts, as plotly figures: heatmaps, cohort risk, liquidations.

Figures are plain dicts in plotly's JSON schema, written without plotly's validation, which took
most of the build time (1.2 s per heatmap snapshot); the browser test checks that they draw.
"""

from collections import defaultdict
from datetime import datetime, timezone
from typing import Any

from dlt.common.exceptions import MissingDependencyException

try:
    import plotly.io
    from plotly.colors import make_colorscale, sequential
    from plotly.offline import get_plotlyjs
except ModuleNotFoundError:
    raise MissingDependencyException("hypertracker report", ["plotly"]) from None

from hypertracker_source.report.markup import chart_text
from hypertracker_source.report.queries import Buckets, Cohorts, Snapshot
from hypertracker_source.report.settings import REPORT_HEATMAP_VALUE_SHARE
from hypertracker_source.report.text import (
    AXIS_FORMAT,
    money,
    percent,
    price,
    price_range,
    timestamp,
)

LONGS_SIDE = "A"
"""A liquidation that sells (ask side) closes a long position."""
SHORTS_SIDE = "B"
"""A liquidation that buys (bid side) closes a short position."""
LONGS_COLOUR = "#c0392b"
SHORTS_COLOUR = "#2471a3"
UNKNOWN_COLOUR = "#8c8c8c"
MARK_COLOUR = "#1b1b1b"
CASCADE_COLOUR = "#e67e22"
RISK_COLOURS = make_colorscale(sequential.YlOrRd)
"""Pale yellow at 0% at risk to dark red at 100% (plotly.js reads the name "YlOrRd" reversed)."""
HEADROOM = 1.15
"""A value axis reaches this far past its largest value, so that no bar or marker touches the
edge and the mark price's label has room above the bars."""
RISK_BUBBLE_PIXELS = 26
"""The diameter of the largest risk bubble: its label above it clears the row above."""
LABEL_PLACES = ("top center", "bottom center")
"""Risk labels go above the bubble in one column and below it in the next, so that neighbours'
labels never meet at 800 px."""
RISK_LABEL_SHARE = 0.03
"""Risk bubbles of at least this share of the largest carry their USD label; hover shows all."""

Figure = dict[str, Any]
"""A plotly figure: data (traces), layout and frames."""

BUCKET_PERIODS: dict[str, Any] = {
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 604_800_000,
    "month": "M1",
}
"""Each time bucket's width as plotly's bar period: milliseconds, or months."""

EXPORT_SCALE = 3
"""Chart downloads (the camera button) are PNGs at three times the size on screen."""

TEMPLATE = "plotly_white"

BASE_LAYOUT: dict[str, Any] = {
    "font": {"family": "system-ui, -apple-system, Segoe UI, sans-serif", "size": 13},
    "hoverlabel": {"font": {"size": 13}},
    "margin": {"l": 70, "r": 30, "t": 100, "b": 60},
    "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.01, "yanchor": "bottom"},
}
"""The title on the top line; menus (left) and legend (right) on the line below, over the plot."""
MENU_PLACE = {"x": 0, "xanchor": "left", "y": 1.01, "yanchor": "bottom"}


def title(text: str) -> dict[str, Any]:
    """A chart title on the top line, left-aligned."""
    return {"text": text, "x": 0.01, "xref": "container", "y": 0.98, "yanchor": "top"}


def plotly_script() -> str:
    """plotly.js itself, from the plotly wheel, for embedding in the page (no CDN)."""
    return get_plotlyjs()


def figure_html(figure: Figure, div_id: str, file_name: str) -> str:
    """A figure as a div and the script that draws it, with a high-resolution PNG download."""
    config = {
        "displaylogo": False,
        "responsive": True,
        "toImageButtonOptions": {"format": "png", "filename": file_name, "scale": EXPORT_SCALE},
    }
    template = plotly.io.templates[TEMPLATE].to_plotly_json()
    return plotly.io.to_html(
        {**figure, "layout": {**figure["layout"], "template": template}},
        include_plotlyjs=False,
        full_html=False,
        div_id=div_id,
        config=config,
        validate=False,
    )


def utc(moment: datetime) -> datetime:
    """An instant as a naive UTC time: plotly.js would drop the zone and read it as local."""
    if moment.tzinfo is None:
        return moment
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def shown_range(bins: list[dict[str, Any]], share: float) -> tuple[float, float]:
    """The price range of the bins holding `share` of the value, the near-empty tails cut."""
    total = sum(row["liquidation_value"] or 0.0 for row in bins)
    tail = total * (1 - share) / 2
    first, last, running = 0, len(bins) - 1, 0.0
    for index, row in enumerate(bins):
        running += row["liquidation_value"] or 0.0
        if running <= tail:
            first = index + 1
        if running >= total - tail:
            last = index
            break
    first = min(first, last)
    return bins[first]["price_bin_start"], bins[last]["price_bin_end"]


def bin_colour(row: dict[str, Any], mark: float | None) -> str:
    """Longs' colour below the mark price (a fall liquidates them), shorts' above, grey unknown."""
    if mark is None:
        return UNKNOWN_COLOUR
    return LONGS_COLOUR if row["price_bin_end"] <= mark else SHORTS_COLOUR


def heatmap_trace(snapshot: Snapshot, cohorts: Cohorts) -> dict[str, Any]:
    """One snapshot's bins as bars by price, with the mark price's side as the colour."""
    mark = snapshot.mark_price
    rows = snapshot.bins
    distances = [
        percent((row["price_bin_start"] + row["price_bin_end"]) / 2 / mark * 100 - 100)
        if mark
        else "no mark price"
        for row in rows
    ]
    return dict(
        type="bar",
        x=[(row["price_bin_start"] + row["price_bin_end"]) / 2 for row in rows],
        y=[row["liquidation_value"] or 0.0 for row in rows],
        width=[row["price_bin_end"] - row["price_bin_start"] for row in rows],
        marker={"color": [bin_colour(row, mark) for row in rows], "line": {"width": 0}},
        customdata=[
            [
                price_range(row["price_bin_start"], row["price_bin_end"]),
                money(row["liquidation_value"] or 0.0),
                f"{row['positions_count'] or 0:,}",
                chart_text(cohorts.name(row["most_impacted_segment"])),
                distance,
            ]
            for row, distance in zip(rows, distances, strict=True)
        ],
        hovertemplate=(
            "<b>%{customdata[0]}</b><br>%{customdata[1]} in %{customdata[2]} positions<br>"
            "most impacted: %{customdata[3]}<br>%{customdata[4]} from the mark price"
            "<extra></extra>"
        ),
        name="liquidation value",
        showlegend=False,
    )


def mark_decorations(snapshot: Snapshot) -> dict[str, Any]:
    """The current-price marker of a snapshot: a line at the mark price and its label."""
    if snapshot.mark_price is None or snapshot.mark_at is None:
        return {"shapes": [], "annotations": []}
    line = {
        "type": "line",
        "xref": "x",
        "yref": "paper",
        "x0": snapshot.mark_price,
        "x1": snapshot.mark_price,
        "y0": 0,
        "y1": 1,
        "line": {"color": MARK_COLOUR, "width": 2, "dash": "dash"},
    }
    label = {
        "x": snapshot.mark_price,
        "y": 1,
        "xref": "x",
        "yref": "paper",
        "yanchor": "top",
        "showarrow": False,
        "text": f"last liquidation mark {price(snapshot.mark_price)}"
        f" ({timestamp(snapshot.mark_at)} UTC)",
        "font": {"size": 12},
        "bgcolor": "rgba(255,255,255,0.85)",
    }
    return {"shapes": [line], "annotations": [label]}


def heatmap_figure(coin: str, snapshots: list[Snapshot], cohorts: Cohorts) -> Figure:
    """A coin's heatmap, a slider stepping through its snapshots, the latest shown first."""
    latest = snapshots[-1]
    low, high = shown_range(latest.bins, REPORT_HEATMAP_VALUE_SHARE)
    names = [utc(snapshot.snapshot_at).isoformat() for snapshot in snapshots]
    frames = [
        {
            "name": name,
            "data": [heatmap_trace(snapshot, cohorts)],
            "layout": mark_decorations(snapshot),
        }
        for name, snapshot in zip(names, snapshots, strict=True)
    ]
    legend = (
        [(LONGS_COLOUR, "longs (below the mark)"), (SHORTS_COLOUR, "shorts (above the mark)")]
        if latest.mark_price is not None
        else [(UNKNOWN_COLOUR, "no fills loaded: no mark price")]
    )
    keys = [
        {
            "type": "bar",
            "x": [None],
            "y": [None],
            "marker": {"color": colour},
            "name": name,
            "hoverinfo": "skip",
        }
        for colour, name in legend
    ]
    layout = dict(
        BASE_LAYOUT,
        **mark_decorations(latest),
        title=title(f"{chart_text(coin)}: USD liquidated at each price"),
        xaxis={
            "title": {"text": f"{chart_text(coin)} price (USD)"},
            "range": [low, high],
            **AXIS_FORMAT,
        },
        yaxis={
            "title": {"text": "liquidation value (USD)"},
            "range": [0, HEADROOM * tallest_bin(snapshots)],
            "fixedrange": False,
            **AXIS_FORMAT,
        },
        bargap=0,
        height=480,
        sliders=[snapshot_slider(names)] if len(snapshots) > 1 else [],
    )
    return {"data": [heatmap_trace(latest, cohorts), *keys], "layout": layout, "frames": frames}


def tallest_bin(snapshots: list[Snapshot]) -> float:
    """The largest bin of any snapshot a heatmap steps through (1 when all are empty)."""
    values = [row["liquidation_value"] or 0.0 for snapshot in snapshots for row in snapshot.bins]
    return max(values, default=0.0) or 1.0


def snapshot_slider(names: list[str]) -> dict[str, Any]:
    """A slider over a heatmap's snapshots (frames named by their ISO time), set on the latest."""
    return {
        "active": len(names) - 1,
        "currentvalue": {"prefix": "snapshot (UTC): ", "font": {"color": "#1b1b1b"}},
        "font": {"color": "rgba(0, 0, 0, 0)"},
        "pad": {"t": 50},
        "steps": [
            {
                "label": name[:19].replace("T", " "),
                "method": "animate",
                "args": [[name], {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}],
            }
            for name in names
        ],
    }


def risk_figure(rows: list[dict[str, Any]], coins: list[str], cohorts: Cohorts) -> Figure:
    """Cohorts by coin: bubble area the USD at risk, colour the share at risk; one trace a group."""
    cell = {(row["segment_id"], row["coin"]): row for row in rows}
    groups = [
        ("size", "size cohorts (by account value)"),
        ("pnl", "PnL cohorts (by all-time profit)"),
    ]
    largest = max((row["risk_value"] or 0.0 for row in rows if row["coin"] in coins), default=0)
    traces = []
    segment_ids = cohorts.ordered(row["segment_id"] for row in rows)
    for category, label in groups:
        members = [s for s in segment_ids if cohorts.categories.get(s, category) == category]
        points = [
            (segment_id, coin, cell[segment_id, coin])
            for segment_id in members
            for coin in coins
            if (segment_id, coin) in cell
        ]
        traces.append(
            dict(
                type="scatter",
                x=[chart_text(coin) for _, coin, _ in points],
                y=[chart_text(cohorts.name(segment_id)) for segment_id, _, _ in points],
                mode="markers+text",
                text=[
                    money(row["risk_value"])
                    if (row["risk_value"] or 0) >= RISK_LABEL_SHARE * largest
                    else ""
                    for _, _, row in points
                ],
                textposition=[
                    LABEL_PLACES[coins.index(coin) % len(LABEL_PLACES)] for _, coin, _ in points
                ],
                textfont={"size": 10},
                marker={
                    "size": [row["risk_value"] or 0.0 for _, _, row in points],
                    "sizemode": "area",
                    "sizeref": 2.0 * (largest or 1) / RISK_BUBBLE_PIXELS**2,
                    "sizemin": 2,
                    "color": [row["percent_risk"] or 0.0 for _, _, row in points],
                    "colorscale": RISK_COLOURS,
                    "cmin": 0,
                    "cmax": 100,
                    "colorbar": {
                        "title": {"text": "% of open<br>value at risk"},
                        "ticksuffix": "%",
                    },
                    "line": {"color": "#555", "width": 0.5},
                },
                customdata=[
                    [
                        chart_text(cohorts.name(segment_id)),
                        money(row["risk_value"] or 0.0),
                        money(row["total_value"] or 0.0),
                        f"{row['percent_risk'] or 0.0:.1f}%",
                    ]
                    for segment_id, _, row in points
                ],
                hovertemplate=(
                    "<b>%{customdata[0]} on %{x}</b><br>at risk: %{customdata[1]} of "
                    "%{customdata[2]} open (%{customdata[3]})<extra></extra>"
                ),
                name=label,
                visible=category == "size",
            )
        )
    layout = dict(
        BASE_LAYOUT,
        title=title("Value within 75% of liquidation, by cohort and coin"),
        xaxis={
            "title": {"text": "coin (most value at risk over the size cohorts on the left)"},
            "categoryorder": "array",
            "categoryarray": [chart_text(coin) for coin in coins],
        },
        yaxis={"title": {"text": ""}, "autorange": "reversed"},
        height=600,
        showlegend=False,
        updatemenus=[
            {
                "type": "buttons",
                "direction": "left",
                **MENU_PLACE,
                "active": 0,
                "buttons": [
                    {
                        "label": "Size cohorts",
                        "method": "update",
                        "args": [{"visible": [True, False]}],
                    },
                    {
                        "label": "PnL cohorts",
                        "method": "update",
                        "args": [{"visible": [False, True]}],
                    },
                ],
            }
        ],
        margin={**BASE_LAYOUT["margin"], "l": 140},
    )
    return {"data": traces, "layout": layout}


def liquidations_figure(
    buckets: Buckets, panels: list[tuple[str, str | None]], cascades: list[dict[str, Any]]
) -> Figure:
    """Liquidated value per bucket (longs up, shorts down) and cascades, one coin at a time."""
    traces = []
    period = BUCKET_PERIODS[buckets.unit]
    for index, (_, coin) in enumerate(panels):
        rows = [row for row in buckets.rows if coin is None or row["coin"] == coin]
        for side, sign, colour, name in (
            (LONGS_SIDE, 1, LONGS_COLOUR, "longs liquidated"),
            (SHORTS_SIDE, -1, SHORTS_COLOUR, "shorts liquidated"),
        ):
            value: dict[datetime, float] = defaultdict(float)
            fills: dict[datetime, int] = defaultdict(int)
            for row in rows:
                if row["side"] == side:
                    value[utc(row["bucket"])] += row["value"] or 0.0
                    fills[utc(row["bucket"])] += row["fills"]
            moments = sorted(value)
            traces.append(
                dict(
                    type="bar",
                    x=moments,
                    y=[sign * value[moment] for moment in moments],
                    xperiod=period,
                    xperiodalignment="middle",
                    marker={"color": colour, "line": {"width": 0}},
                    customdata=[[money(value[m]), f"{fills[m]:,}"] for m in moments],
                    hovertemplate=(
                        f"<b>%{{x}}</b><br>{name}: %{{customdata[0]}} in %{{customdata[1]}} "
                        "fills<extra></extra>"
                    ),
                    name=name,
                    visible=index == 0,
                )
            )
        traces.append(cascade_trace(panel_cascades(cascades, coin), visible=index == 0))
    per_panel = 3
    layout = dict(
        BASE_LAYOUT,
        title=title(f"USD liquidated per {buckets.unit} (UTC), and cascades"),
        barmode="relative",
        bargap=0.1,
        height=620,
        xaxis={"rangeslider": {"visible": True, "thickness": 0.06}, "type": "date", "anchor": "y2"},
        yaxis={
            "title": {"text": f"USD per {buckets.unit}<br>longs up, shorts down"},
            "domain": [0.38, 1],
            **AXIS_FORMAT,
        },
        yaxis2={
            "title": {"text": "cascade value"},
            "domain": [0, 0.28],
            "range": cascade_range(cascades),
            **AXIS_FORMAT,
        },
        margin={**BASE_LAYOUT["margin"], "l": 90},
        updatemenus=[
            {
                "type": "dropdown",
                **MENU_PLACE,
                "active": 0,
                "buttons": [
                    {
                        "label": chart_text(label),
                        "method": "update",
                        "args": [
                            {
                                "visible": [
                                    panel == index
                                    for panel in range(len(panels))
                                    for _ in range(per_panel)
                                ]
                            },
                            {"yaxis2.range": cascade_range(panel_cascades(cascades, coin))},
                        ],
                    }
                    for index, (label, coin) in enumerate(panels)
                ],
            }
        ],
    )
    return {"data": traces, "layout": layout}


def panel_cascades(cascades: list[dict[str, Any]], coin: str | None) -> list[dict[str, Any]]:
    """The cascades of a panel: one coin's, or all of them (coin None)."""
    return [row for row in cascades if coin is None or row["coin"] == coin]


def cascade_range(cascades: list[dict[str, Any]]) -> list[float]:
    """The cascade panel's value range: from a little below $0, so that a marker at $0 shows
    whole, to a little above the largest."""
    largest = max((row["notional"] for row in cascades), default=0.0) or 1.0
    return [-(HEADROOM - 1) * largest, HEADROOM * largest]


def cascade_trace(cascades: list[dict[str, Any]], visible: bool) -> dict[str, Any]:
    """Cascades as diamonds at their start, in the lower panel by their value."""
    return dict(
        type="scatter",
        x=[utc(row["started_at"]) for row in cascades],
        y=[row["notional"] for row in cascades],
        yaxis="y2",
        mode="markers",
        marker={
            "symbol": "diamond",
            "size": 9,
            "color": CASCADE_COLOUR,
            "line": {"color": "#7a3e00", "width": 1},
        },
        customdata=[
            [
                chart_text(row["coin"]),
                timestamp(row["started_at"]),
                f"{row['fills']:,}",
                f"{row['wallets']:,}",
                money(row["notional"]),
                percent((row["last_price"] - row["first_price"]) / row["first_price"] * 100),
            ]
            for row in cascades
        ],
        hovertemplate=(
            "<b>cascade on %{customdata[0]}</b><br>%{customdata[1]} UTC<br>%{customdata[2]} "
            "fills of %{customdata[3]} wallets, %{customdata[4]}<br>price move %{customdata[5]}"
            "<extra></extra>"
        ),
        name="cascade (lower panel)",
        visible=visible,
    )
