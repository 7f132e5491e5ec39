"""The liquidations-over-time chart: value per period, longs against shorts, and cascades."""

from collections import defaultdict
from datetime import datetime
from typing import Any

from hypertracker_source.report.charts import (
    BASE_LAYOUT,
    HEADROOM,
    LONGS_COLOUR,
    MENU_PLACE,
    SHORTS_COLOUR,
    Figure,
    title,
    utc,
)
from hypertracker_source.report.markup import chart_text
from hypertracker_source.report.queries import Buckets
from hypertracker_source.report.text import AXIS_FORMAT, money, percent, timestamp

_LONGS_SIDE = "A"
"""A liquidation that sells (ask side) closes a long position."""
_SHORTS_SIDE = "B"
"""A liquidation that buys (bid side) closes a short position."""
_CASCADE_COLOUR = "#e67e22"
_BUCKET_PERIODS: dict[str, Any] = {
    "hour": 3_600_000,
    "day": 86_400_000,
    "week": 604_800_000,
    "month": "M1",
}
"""Each time bucket's width as plotly's bar period: milliseconds, or months."""


def liquidations_figure(
    buckets: Buckets, panels: list[tuple[str, str | None]], cascades: list[dict[str, Any]]
) -> Figure:
    """Liquidated value per bucket (longs up, shorts down) and cascades, one coin at a time."""
    traces = []
    period = _BUCKET_PERIODS[buckets.unit]
    for index, (_, coin) in enumerate(panels):
        rows = [row for row in buckets.rows if coin is None or row["coin"] == coin]
        for side, sign, colour, name in (
            (_LONGS_SIDE, 1, LONGS_COLOUR, "longs liquidated"),
            (_SHORTS_SIDE, -1, SHORTS_COLOUR, "shorts liquidated"),
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
        traces.append(_cascade_trace(_panel_cascades(cascades, coin), visible=index == 0))
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
            "range": _cascade_range(cascades),
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
                            {"yaxis2.range": _cascade_range(_panel_cascades(cascades, coin))},
                        ],
                    }
                    for index, (label, coin) in enumerate(panels)
                ],
            }
        ],
    )
    return {"data": traces, "layout": layout}


def _panel_cascades(cascades: list[dict[str, Any]], coin: str | None) -> list[dict[str, Any]]:
    """The cascades of a panel: one coin's, or all of them (coin None)."""
    return [row for row in cascades if coin is None or row["coin"] == coin]


def _cascade_range(cascades: list[dict[str, Any]]) -> list[float]:
    """The cascade panel's value range: from a little below $0, so that a marker at $0 shows
    whole, to a little above the largest."""
    largest = max((row["notional"] for row in cascades), default=0.0) or 1.0
    return [-(HEADROOM - 1) * largest, HEADROOM * largest]


def _cascade_trace(cascades: list[dict[str, Any]], visible: bool) -> dict[str, Any]:
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
            "color": _CASCADE_COLOUR,
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
