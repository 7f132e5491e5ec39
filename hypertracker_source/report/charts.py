"""What the report's charts share: plotly itself, their colours and layout, and their HTML.

Figures are plain dicts in plotly's JSON schema, written without plotly's validation, which took
most of the build time (1.2 s per heatmap snapshot); the browser test checks that they draw. The
figures are built by heatmap_chart, risk_chart and liquidations_chart.
"""

from datetime import datetime, timezone
from typing import Any

from dlt.common.exceptions import MissingDependencyException

try:
    import plotly.io
    from plotly.colors import make_colorscale, sequential
    from plotly.offline import get_plotlyjs
except ModuleNotFoundError:
    raise MissingDependencyException("hypertracker report", ["plotly"]) from None

LONGS_COLOUR = "#c0392b"
SHORTS_COLOUR = "#2471a3"
RISK_COLOURS = make_colorscale(sequential.YlOrRd)
"""Pale yellow at 0% at risk to dark red at 100% (plotly.js reads the name "YlOrRd" reversed)."""
HEADROOM = 1.15
"""A value axis reaches this far past its largest value, so that no bar or marker touches the
edge and the mark price's label has room above the bars."""

Figure = dict[str, Any]
"""A plotly figure: data (traces), layout and frames."""

_EXPORT_SCALE = 3
"""Chart downloads (the camera button) are PNGs at three times the size on screen."""

_TEMPLATE = "plotly_white"

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
        "toImageButtonOptions": {"format": "png", "filename": file_name, "scale": _EXPORT_SCALE},
    }
    template = plotly.io.templates[_TEMPLATE].to_plotly_json()
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
