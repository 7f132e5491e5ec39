"""The cohort risk chart: each cohort's value near liquidation on the coins most at risk."""

from typing import Any

from hypertracker_source.report.charts import BASE_LAYOUT, MENU_PLACE, RISK_COLOURS, Figure, title
from hypertracker_source.report.markup import chart_text
from hypertracker_source.report.queries import Cohorts
from hypertracker_source.report.text import money

_RISK_BUBBLE_PIXELS = 26
"""The diameter of the largest risk bubble: its label above it clears the row above."""
_LABEL_PLACES = ("top center", "bottom center")
"""Risk labels go above the bubble in one column and below it in the next, so that neighbours'
labels never meet at 800 px."""
_RISK_LABEL_SHARE = 0.03
"""Risk bubbles of at least this share of the largest carry their USD label; hover shows all."""


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
                    if (row["risk_value"] or 0) >= _RISK_LABEL_SHARE * largest
                    else ""
                    for _, _, row in points
                ],
                textposition=[
                    _LABEL_PLACES[coins.index(coin) % len(_LABEL_PLACES)] for _, coin, _ in points
                ],
                textfont={"size": 10},
                marker={
                    "size": [row["risk_value"] or 0.0 for _, _, row in points],
                    "sizemode": "area",
                    "sizeref": 2.0 * (largest or 1) / _RISK_BUBBLE_PIXELS**2,
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
