"""The `hypertracker report` page: heatmaps, cohort risk and liquidations over time, as HTML+PNG."""

import base64
import html
import io
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import dlt
from dlt.common.exceptions import MissingDependencyException

try:
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.axes import Axes
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter
except ModuleNotFoundError:
    raise MissingDependencyException(
        "hypertracker report", ["hypertracker-source[report]"]
    ) from None

from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.settings import (
    REPORT_FILL_COINS,
    REPORT_HEATMAP_VALUE_SHARE,
    REPORT_MAX_TIME_BUCKETS,
    REPORT_RISK_COINS,
    SEGMENT_NAMES,
)

REPORT_TABLES = ("liquidation_heatmap", "liquidation_risk", "liquidation_fills", "segments")

LONGS_SIDE = "A"
"""A liquidation that sells (ask side) closes a long position."""
SHORTS_SIDE = "B"
"""A liquidation that buys (bid side) closes a short position."""
LONGS_COLOUR = "#c0392b"
SHORTS_COLOUR = "#2471a3"

TIME_BUCKETS = (
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(weeks=1)),
    ("month", timedelta(days=30.44)),
)
"""The bucket widths a liquidations-over-time panel can take, narrowest first."""

HEATMAP_QUERY = """
SELECT h.coin, h.price_bin_start, h.price_bin_end, h.liquidation_value, h.positions_count,
       h.most_impacted_segment, h.snapshot_at
FROM liquidation_heatmap AS h
JOIN (SELECT coin, MAX(snapshot_at) AS latest FROM liquidation_heatmap GROUP BY coin) AS l
  ON h.coin = l.coin AND h.snapshot_at = l.latest
ORDER BY h.coin, h.price_bin_index
"""
RISK_QUERY = """
SELECT r.segment_id, r.coin, r.total_value, r.risk_value, r.percent_risk, r.snapshot_at
FROM liquidation_risk AS r
JOIN (SELECT segment_id, MAX(snapshot_at) AS latest FROM liquidation_risk GROUP BY segment_id) AS l
  ON r.segment_id = l.segment_id AND r.snapshot_at = l.latest
"""
FILLS_SPAN_QUERY = "SELECT MIN(time) AS first_fill, MAX(time) AS last_fill FROM liquidation_fills"
FILLS_QUERY = """
SELECT coin, side, DATE_TRUNC('{unit}', time) AS bucket, SUM(px * sz) AS value, COUNT(*) AS fills
FROM liquidation_fills
GROUP BY coin, side, DATE_TRUNC('{unit}', time)
"""
SEGMENTS_QUERY = "SELECT id, name, category FROM segments"
STORED_SCHEMAS_QUERY = "SELECT DISTINCT schema_name FROM _dlt_version"


@dataclass(frozen=True)
class Chart:
    """One PNG chart: its file name beside the page, what it shows, and its bytes."""

    file_name: str
    caption: str
    png: bytes


@dataclass
class Section:
    """One part of the page: a heading, what it shows, a table of figures and the charts."""

    anchor: str
    title: str
    intro: str
    headers: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    charts: list[Chart] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class Cohorts:
    """The wallet cohorts: names by segment id, display order, and the ones that split by size."""

    names: dict[int, str]
    size_ids: frozenset[int]

    def name(self, segment_id: int) -> str:
        """A cohort's name, or its id when the dataset does not know it."""
        return self.names.get(segment_id, f"segment {segment_id}")

    def ordered(self, segment_ids: Iterable[int]) -> list[int]:
        """Segment ids in display order: size cohorts from small to large, then PnL cohorts."""
        order = {segment_id: index for index, segment_id in enumerate(SEGMENT_NAMES)}
        return sorted(
            set(segment_ids), key=lambda segment_id: (order.get(segment_id, len(order)), segment_id)
        )

    def colours(self) -> dict[int, Any]:
        """One colour per cohort, the same in every chart: tab20's strong shades, then its pale."""
        palette = [tuple(rgba) for rgba in colormaps["tab20"](range(20))]
        shades = [*palette[0::2], *palette[1::2]]
        return {
            segment_id: shades[index % len(shades)]
            for index, segment_id in enumerate(self.ordered({*SEGMENT_NAMES, *self.names}))
        }


def write_report(dataset: dlt.Dataset, page: Path) -> list[Path]:
    """Writes the report page and its PNG charts beside it; returns the files written."""
    tables = set(dataset.tables)
    if not tables.intersection(REPORT_TABLES):
        raise HyperTrackerError(
            f"Dataset {dataset.dataset_name!r} holds none of the tables "
            f"{', '.join(REPORT_TABLES)}: load it first with `hypertracker load` (or "
            "`hypertracker demo`), or name the dataset that holds them with --dataset"
        )
    cohorts = read_cohorts(dataset, tables)
    prefix = page.stem
    sections = [
        heatmap_section(dataset, tables, cohorts, prefix),
        risk_section(dataset, tables, cohorts, prefix),
        fills_section(dataset, tables, prefix),
    ]
    page.parent.mkdir(parents=True, exist_ok=True)
    written = []
    for chart in (chart for section in sections for chart in section.charts):
        path = page.parent / chart.file_name
        path.write_bytes(chart.png)
        written.append(path)
    page.write_text(render_page(dataset, sections), encoding="utf-8")
    return [page, *written]


def stored_dataset(destination: Any, dataset_name: str) -> dlt.Dataset:
    """A loaded dataset, read back with every schema stored in it.

    dlt reads a dataset back with its newest schema only, and pipelines that load different
    tables into one dataset (as in the Dagster example) each store a schema of their own.
    """
    dataset = dlt.dataset(destination, dataset_name)
    if "_dlt_version" not in dataset.tables:
        return dataset
    names = sorted(name for (name,) in dataset(STORED_SCHEMAS_QUERY).fetchall())
    if len(names) < 2:
        return dataset
    schemas = [dlt.dataset(destination, dataset_name, schema=name).schema for name in names]
    return dlt.dataset(destination, dataset_name, schema=schemas)


def query_rows(dataset: dlt.Dataset, sql: str) -> list[dict[str, Any]]:
    """Runs a query written in DuckDB's SQL on any destination; returns its rows."""
    return relation_rows(dataset.query(sql, query_dialect="duckdb"))


def relation_rows(relation: dlt.Relation) -> list[dict[str, Any]]:
    """A relation's rows as dicts (none when dlt reads back no table)."""
    table = relation.arrow()
    return [] if table is None else table.to_pylist()


def read_cohorts(dataset: dlt.Dataset, tables: set[str]) -> Cohorts:
    """The cohorts from the `segments` table, or their known names when it was not loaded."""
    if "segments" not in tables:
        return Cohorts(dict(SEGMENT_NAMES), frozenset())
    rows = query_rows(dataset, SEGMENTS_QUERY)
    return Cohorts(
        {row["id"]: row["name"] for row in rows},
        frozenset(row["id"] for row in rows if row["category"] == "size"),
    )


def missing_table_note(table: str, how: str) -> str:
    """Says that a table was not loaded, and how to load it."""
    return f"This dataset has no {table} table: load it with {how}."


def heatmap_section(
    dataset: dlt.Dataset, tables: set[str], cohorts: Cohorts, prefix: str
) -> Section:
    """The liquidation heatmap of every loaded coin, in its latest snapshot."""
    section = Section(
        "heatmaps",
        "Liquidation heatmaps",
        "The USD value of open positions that would be liquidated in each price bin, from the "
        "latest snapshot of each coin. Each bar is coloured by the cohort most impacted in that "
        "bin. The charts show the price range that holds "
        f"{REPORT_HEATMAP_VALUE_SHARE:.0%} of the value; the near-empty tails are cut.",
        [
            "coin",
            "snapshot (UTC)",
            "price bins",
            "liquidation value",
            "positions",
            "largest bin",
            "most impacted there",
        ],
    )
    if "liquidation_heatmap" not in tables:
        section.note = missing_table_note(
            "liquidation_heatmap", "`hypertracker load --resources liquidation_heatmap`"
        )
        return section
    by_coin: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in query_rows(dataset, HEATMAP_QUERY):
        by_coin[row["coin"]].append(row)
    if not by_coin:
        section.note = "The liquidation_heatmap table is empty."
    for coin, bins in sorted(by_coin.items()):
        largest = max(bins, key=lambda row: row["liquidation_value"] or 0)
        section.rows.append(
            [
                coin,
                timestamp(bins[0]["snapshot_at"]),
                f"{len(bins):,}",
                money(sum(row["liquidation_value"] or 0 for row in bins)),
                f"{sum(row['positions_count'] or 0 for row in bins):,}",
                price_range(largest["price_bin_start"], largest["price_bin_end"]),
                cohorts.name(largest["most_impacted_segment"]),
            ]
        )
        section.charts.append(heatmap_chart(coin, bins, cohorts, prefix))
    return section


def heatmap_chart(coin: str, bins: list[dict[str, Any]], cohorts: Cohorts, prefix: str) -> Chart:
    """A coin's heatmap as bars by price, coloured by most-impacted cohort."""
    values = np.array([row["liquidation_value"] or 0.0 for row in bins])
    first, last = value_span(values, REPORT_HEATMAP_VALUE_SHARE)
    shown = bins[first : last + 1]
    colours = cohorts.colours()
    value_by_cohort: dict[int, float] = defaultdict(float)
    for row in shown:
        value_by_cohort[row["most_impacted_segment"]] += row["liquidation_value"] or 0.0

    figure = Figure(figsize=(12, 4.6), layout="constrained")
    axes = figure.subplots()
    axes.bar(
        [row["price_bin_start"] for row in shown],
        [row["liquidation_value"] or 0.0 for row in shown],
        width=[row["price_bin_end"] - row["price_bin_start"] for row in shown],
        align="edge",
        color=[colours.get(row["most_impacted_segment"], "grey") for row in shown],
        linewidth=0,
    )
    axes.set_title(
        f"{coin}: liquidation value by price, snapshot {timestamp(bins[0]['snapshot_at'])} UTC"
    )
    axes.set_xlabel(f"{coin} price (USD)")
    axes.set_ylabel("liquidation value (USD)")
    axes.xaxis.set_major_formatter(FuncFormatter(lambda value, _: money(value)))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: money(value)))
    axes.set_xlim(shown[0]["price_bin_start"], shown[-1]["price_bin_end"])
    axes.grid(axis="y", alpha=0.3)
    ranked = sorted(value_by_cohort, key=value_by_cohort.__getitem__, reverse=True)
    axes.legend(
        handles=[
            Patch(color=colours.get(segment_id, "grey"), label=cohorts.name(segment_id))
            for segment_id in ranked
        ],
        title="most impacted cohort",
        loc="upper left",
        bbox_to_anchor=(1.01, 1),
        fontsize="small",
    )
    caption = (
        f"{coin}: {len(shown)} of {len(bins)} price bins shown, "
        f"{price_range(shown[0]['price_bin_start'], shown[-1]['price_bin_end'])}; "
        "cohorts in the legend by value, largest first."
    )
    return Chart(f"{prefix}-heatmap-{file_slug(coin)}.png", caption, png_bytes(figure))


def value_span(values: np.ndarray, share: float) -> tuple[int, int]:
    """The first and last index of the bins holding `share` of the value, tails cut evenly."""
    total = values.sum()
    if total <= 0:
        return 0, len(values) - 1
    cumulative = np.cumsum(values)
    tail = total * (1 - share) / 2
    first = int(np.searchsorted(cumulative, tail, side="right"))
    last = int(np.searchsorted(cumulative, total - tail, side="left"))
    return first, min(last, len(values) - 1)


def risk_section(dataset: dlt.Dataset, tables: set[str], cohorts: Cohorts, prefix: str) -> Section:
    """The liquidation risk of every cohort on the coins with the most value at risk."""
    ranking = "size cohorts" if cohorts.size_ids else "cohorts"
    section = Section(
        "risk",
        "Liquidation risk by cohort",
        "For each cohort, the share of its open value on a coin that is within 75% of its "
        f"liquidation threshold (colour) and that value in USD (text), on the "
        f"{REPORT_RISK_COINS} coins with the most value at risk summed over the {ranking} "
        "(every wallet is in one size cohort and one PnL cohort, so only one of the two is "
        "summed). From the latest snapshot of each cohort.",
        ["coin", "value at risk", "open value", "share at risk"],
    )
    if "liquidation_risk" not in tables:
        section.note = missing_table_note(
            "liquidation_risk",
            "`hypertracker load` (its resources are liquidation_risk_<cohort>, such as "
            "liquidation_risk_smart_money)",
        )
        return section
    rows = query_rows(dataset, RISK_QUERY)
    if not rows:
        section.note = "The liquidation_risk table is empty."
        return section
    summed = [row for row in rows if not cohorts.size_ids or row["segment_id"] in cohorts.size_ids]
    at_risk: dict[str, float] = defaultdict(float)
    open_value: dict[str, float] = defaultdict(float)
    for row in summed:
        at_risk[row["coin"]] += row["risk_value"] or 0.0
        open_value[row["coin"]] += row["total_value"] or 0.0
    coins = sorted(at_risk, key=lambda coin: (-at_risk[coin], coin))[:REPORT_RISK_COINS]
    for coin in coins:
        share = at_risk[coin] / open_value[coin] if open_value[coin] else 0.0
        section.rows.append([coin, money(at_risk[coin]), money(open_value[coin]), f"{share:.1%}"])
    section.charts.append(risk_chart(rows, coins, cohorts, prefix))
    return section


def risk_chart(
    rows: list[dict[str, Any]], coins: list[str], cohorts: Cohorts, prefix: str
) -> Chart:
    """A cohort-by-coin grid: colour the percent at risk, text the USD value at risk."""
    segment_ids = cohorts.ordered(row["segment_id"] for row in rows)
    cell = {(row["segment_id"], row["coin"]): row for row in rows}
    percent = np.full((len(segment_ids), len(coins)), np.nan)
    figure = Figure(figsize=(12, max(4.0, 1.6 + 0.42 * len(segment_ids))), layout="constrained")
    axes = figure.subplots()
    for y, segment_id in enumerate(segment_ids):
        for x, coin in enumerate(coins):
            row = cell.get((segment_id, coin))
            if row is None:
                axes.text(x, y, "none", ha="center", va="center", fontsize=8, color="grey")
                continue
            percent[y, x] = row["percent_risk"] or 0.0
            risk_value = row["risk_value"] or 0.0
            label = money(risk_value) if risk_value >= 1 or not risk_value else "<$1"
            colour = "white" if percent[y, x] > 60 else "black" if risk_value else "grey"
            axes.text(x, y, label, ha="center", va="center", fontsize=8, color=colour)
    image = axes.imshow(percent, cmap="OrRd", vmin=0, vmax=100, aspect="auto")
    axes.set_xticks(range(len(coins)), coins, rotation=30, ha="right")
    axes.set_yticks(range(len(segment_ids)), [cohorts.name(s) for s in segment_ids])
    axes.tick_params(length=0)
    size_rows = [y for y, segment_id in enumerate(segment_ids) if segment_id in cohorts.size_ids]
    if size_rows and len(size_rows) < len(segment_ids):
        axes.axhline(max(size_rows) + 0.5, color="black", linewidth=1.5)
    axes.set_title("Liquidation risk by cohort: USD value within 75% of liquidation")
    axes.set_xlabel("coin (most value at risk on the left)")
    axes.set_ylabel("cohort")
    colour_bar = figure.colorbar(image, ax=axes, shrink=0.8)
    colour_bar.set_label("% of open value at risk")
    caption = (
        f"Risk of {len(segment_ids)} cohorts on the {len(coins)} coins with the most value at "
        "risk: size cohorts above the line, PnL cohorts below; 'none' where the cohort holds no "
        "position on the coin."
    )
    return Chart(f"{prefix}-risk.png", caption, png_bytes(figure))


def fills_section(dataset: dlt.Dataset, tables: set[str], prefix: str) -> Section:
    """Liquidated value over time, longs against shorts, for all coins and the top ones."""
    section = Section(
        "liquidations",
        "Liquidations over time",
        "The USD value (price times size) of liquidation fills per period: long positions "
        "closed (sells, side A) above the line, short positions closed (buys, side B) below. "
        f"All coins, then the {REPORT_FILL_COINS} coins with the most value liquidated.",
        ["coin", "longs liquidated", "long value", "shorts liquidated", "short value"],
    )
    if "liquidation_fills" not in tables:
        section.note = missing_table_note(
            "liquidation_fills", "`hypertracker load --resources liquidation_fills`"
        )
        return section
    (span,) = query_rows(dataset, FILLS_SPAN_QUERY)
    if span["first_fill"] is None:
        section.note = "The liquidation_fills table is empty."
        return section
    unit, width = bucket_for(span["last_fill"] - span["first_fill"])
    rows = query_rows(dataset, FILLS_QUERY.format(unit=unit))
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["coin"]] += row["value"] or 0.0
    coins = sorted(totals, key=lambda coin: (-totals[coin], coin))[:REPORT_FILL_COINS]
    panels = [("All coins", rows)] + [
        (coin, [row for row in rows if row["coin"] == coin]) for coin in coins
    ]
    for label, panel_rows in panels:
        longs, shorts = side_totals(panel_rows, LONGS_SIDE), side_totals(panel_rows, SHORTS_SIDE)
        section.rows.append([label, *longs, *shorts])
    section.charts.append(fills_chart(panels, unit, width, prefix))
    return section


def side_totals(rows: list[dict[str, Any]], side: str) -> list[str]:
    """The fill count and value of one side's rows, as table cells."""
    chosen = [row for row in rows if row["side"] == side]
    return [
        f"{sum(row['fills'] for row in chosen):,}",
        money(sum(row["value"] or 0.0 for row in chosen)),
    ]


def bucket_for(span: timedelta) -> tuple[str, timedelta]:
    """The narrowest time bucket that draws the span in at most REPORT_MAX_TIME_BUCKETS bars."""
    for unit, width in TIME_BUCKETS:
        if span / width <= REPORT_MAX_TIME_BUCKETS:
            return unit, width
    return TIME_BUCKETS[-1]


def fills_chart(
    panels: list[tuple[str, list[dict[str, Any]]]], unit: str, width: timedelta, prefix: str
) -> Chart:
    """Small multiples of liquidated value per time bucket, longs up and shorts down."""
    columns = 2
    grid_rows = -(-len(panels) // columns)
    figure = Figure(figsize=(12, 0.6 + 2.8 * grid_rows), layout="constrained")
    grid = figure.subplots(grid_rows, columns, sharex=True, squeeze=False)
    for axes, (label, rows) in zip(grid.flat, panels, strict=False):
        draw_sides(axes, rows, width)
        axes.set_title(label)
        axes.set_ylabel(f"USD per {unit}")
    for axes in grid.flat[len(panels) :]:
        axes.set_visible(False)
    figure.legend(
        handles=[
            Patch(color=LONGS_COLOUR, label="longs liquidated (side A)"),
            Patch(color=SHORTS_COLOUR, label="shorts liquidated (side B)"),
        ],
        loc="outside upper center",
        ncols=2,
    )
    caption = f"Liquidated value per {unit}: all coins, then the coins with the most liquidated."
    return Chart(f"{prefix}-liquidations.png", caption, png_bytes(figure))


def draw_sides(axes: Axes, rows: list[dict[str, Any]], width: timedelta) -> None:
    """Draws one panel: each bucket's long value above zero and short value below."""
    sides = ((LONGS_SIDE, 1, LONGS_COLOUR), (SHORTS_SIDE, -1, SHORTS_COLOUR))
    by_side: dict[str, dict[datetime, float]] = {side: defaultdict(float) for side, _, _ in sides}
    for row in rows:
        if row["side"] in by_side:
            by_side[row["side"]][row["bucket"]] += row["value"] or 0.0
    bar_width = width * 0.85
    for side, sign, colour in sides:
        buckets = sorted(by_side[side])
        # matplotlib's type hints leave out the datetimes its date converter takes
        axes.bar(
            buckets,  # type: ignore[arg-type]
            [sign * by_side[side][bucket] for bucket in buckets],
            width=bar_width,  # type: ignore[arg-type]
            align="edge",
            color=colour,
            linewidth=0,
        )
    axes.axhline(0, color="black", linewidth=0.6)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: money(abs(value))))
    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    axes.tick_params(labelbottom=True)
    axes.grid(axis="y", alpha=0.3)


def png_bytes(figure: Figure) -> bytes:
    """Renders a figure to PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def money(value: float, digits: int = 3) -> str:
    """A USD amount to a few significant digits: $1.27B, $351M, $12.3K, $42.5, $0.0123."""
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if magnitude >= threshold:
            return f"${value / threshold:.{digits}g}{suffix}"
    return f"${value:.{digits}g}" if magnitude else "$0"


def price_range(start: float, end: float) -> str:
    """A price bin's range, precise enough to tell neighbouring bins apart."""
    return f"{money(start, 4)} to {money(end, 4)}"


def timestamp(moment: datetime) -> str:
    """An instant as the page writes it, in UTC to the minute."""
    return moment.strftime("%Y-%m-%d %H:%M")


def file_slug(coin: str) -> str:
    """A coin name safe in a file name: xyz:MSTR becomes xyz-MSTR."""
    return "".join(char if char.isalnum() else "-" for char in coin)


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; margin: 0; color: #1b1b1b; background: #fafafa; }
main { max-width: 1260px; margin: 0 auto; padding: 24px 32px 48px; }
h1 { margin-bottom: 4px; } h2 { margin-top: 40px; border-bottom: 1px solid #ddd; }
.meta, figcaption, .note { color: #555; }
nav a { margin-right: 16px; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size: 14px; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e4e4e4; text-align: left; }
td.number { text-align: right; }
figure { margin: 16px 0 28px; } img { max-width: 100%; border: 1px solid #e4e4e4; }
"""


def render_page(dataset: dlt.Dataset, sections: list[Section]) -> str:
    """The HTML page: a header, then each section with its table and its embedded charts."""
    escape = html.escape
    loaded_tables = [table for table in REPORT_TABLES if table in dataset.tables]
    counts = {
        row["table_name"]: row["row_count"]
        for row in relation_rows(dataset.row_counts(table_names=loaded_tables))
    }
    loaded = ", ".join(
        f"{table} {counts[table]:,} rows" for table in REPORT_TABLES if table in counts
    )
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>HyperTracker liquidation report</title>",
        f"<style>{PAGE_STYLE}</style></head><body><main>",
        "<h1>HyperTracker liquidation report</h1>",
        f'<p class="meta">Dataset <code>{escape(dataset.dataset_name)}</code>: '
        f"{escape(loaded)}.</p>",
        "<nav>"
        + "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
        + "</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{escape(section.title)}</h2>')
        parts.append(f"<p>{escape(section.intro)}</p>")
        if section.note:
            parts.append(f'<p class="note">{escape(section.note)}</p>')
        if section.rows:
            parts.append(html_table(section.headers, section.rows))
        for chart in section.charts:
            data = base64.b64encode(chart.png).decode()
            parts.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{escape(chart.caption)}">'
                f"<figcaption>{escape(chart.caption)} ({escape(chart.file_name)})</figcaption>"
                "</figure>"
            )
        parts.append("</section>")
    parts.append("</main></body></html>")
    return "\n".join(parts)


def html_table(headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table of text cells."""
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(table_cell(cell) for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def table_cell(text: str) -> str:
    """A table cell, right-aligned when it holds an amount or a count."""
    number = text[:1] == "$" or text.replace(",", "").replace(".", "").rstrip("%").isdigit()
    return (
        f'<td class="number">{html.escape(text)}</td>'
        if number
        else f"<td>{html.escape(text)}</td>"
    )
