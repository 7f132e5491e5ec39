"""The heatmap chart: a coin's liquidation value by price, stepping through its snapshots."""

from typing import Any

from hypertracker_source.report.charts import (
    BASE_LAYOUT,
    HEADROOM,
    LONGS_COLOUR,
    SHORTS_COLOUR,
    Figure,
    title,
    utc,
)
from hypertracker_source.report.markup import chart_text
from hypertracker_source.report.queries import Cohorts, Snapshot
from hypertracker_source.report.settings import REPORT_HEATMAP_VALUE_SHARE
from hypertracker_source.report.text import (
    AXIS_FORMAT,
    money,
    percent,
    price,
    price_range,
    timestamp,
)

_UNKNOWN_COLOUR = "#8c8c8c"
_MARK_COLOUR = "#1b1b1b"


def _shown_range(bins: list[dict[str, Any]], share: float) -> tuple[float, float]:
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


def _bin_colour(row: dict[str, Any], mark: float | None) -> str:
    """Longs' colour below the mark price (a fall liquidates them), shorts' above, grey unknown."""
    if mark is None:
        return _UNKNOWN_COLOUR
    return LONGS_COLOUR if row["price_bin_end"] <= mark else SHORTS_COLOUR


def _heatmap_trace(snapshot: Snapshot, cohorts: Cohorts) -> dict[str, Any]:
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
        marker={"color": [_bin_colour(row, mark) for row in rows], "line": {"width": 0}},
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


def _mark_decorations(snapshot: Snapshot) -> dict[str, Any]:
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
        "line": {"color": _MARK_COLOUR, "width": 2, "dash": "dash"},
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
    low, high = _shown_range(latest.bins, REPORT_HEATMAP_VALUE_SHARE)
    names = [utc(snapshot.snapshot_at).isoformat() for snapshot in snapshots]
    frames = [
        {
            "name": name,
            "data": [_heatmap_trace(snapshot, cohorts)],
            "layout": _mark_decorations(snapshot),
        }
        for name, snapshot in zip(names, snapshots, strict=True)
    ]
    legend = (
        [(LONGS_COLOUR, "longs (below the mark)"), (SHORTS_COLOUR, "shorts (above the mark)")]
        if latest.mark_price is not None
        else [(_UNKNOWN_COLOUR, "no fills loaded: no mark price")]
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
        **_mark_decorations(latest),
        title=title(f"{chart_text(coin)}: USD liquidated at each price"),
        xaxis={
            "title": {"text": f"{chart_text(coin)} price (USD)"},
            "range": [low, high],
            **AXIS_FORMAT,
        },
        yaxis={
            "title": {"text": "liquidation value (USD)"},
            "range": [0, HEADROOM * _tallest_bin(snapshots)],
            "fixedrange": False,
            **AXIS_FORMAT,
        },
        bargap=0,
        height=480,
        sliders=[_snapshot_slider(names)] if len(snapshots) > 1 else [],
    )
    return {"data": [_heatmap_trace(latest, cohorts), *keys], "layout": layout, "frames": frames}


def _tallest_bin(snapshots: list[Snapshot]) -> float:
    """The largest bin of any snapshot a heatmap steps through (1 when all are empty)."""
    values = [row["liquidation_value"] or 0.0 for snapshot in snapshots for row in snapshot.bins]
    return max(values, default=0.0) or 1.0


def _snapshot_slider(names: list[str]) -> dict[str, Any]:
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
