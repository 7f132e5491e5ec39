"""The report page: one self-contained HTML file of tables and interactive charts."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import dlt

from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.report.markup import element_id, html_text
from hypertracker_source.report.queries import (
    REPORT_TABLES,
    ReportData,
    Snapshot,
    read_report_data,
)
from hypertracker_source.report.settings import (
    REPORT_CASCADE_ROWS,
    REPORT_FILL_COINS,
    REPORT_HEATMAP_VALUE_SHARE,
    REPORT_RISK_COINS,
)
from hypertracker_source.report.text import (
    NUMBER_RULE,
    duration,
    money,
    percent,
    price,
    price_range,
    timestamp,
)

HEATMAP_ID_PREFIX = "heatmap-"
"""A heatmap chart's element id: this prefix, then its coin (see markup.element_id)."""


@dataclass
class Section:
    """One part of the page: a heading, what it shows, tables of figures and the charts."""

    anchor: str
    title: str
    intro: str
    tables: list[tuple[str, list[str], list[list[str]]]] = field(default_factory=list)
    charts: list[str] = field(default_factory=list)
    note: str | None = None
    controls: str = ""


PAGE_TITLE = "HyperTracker liquidation report"
REPORT_MARKER = '<meta name="generator" content="hypertracker report">'
"""Marks a page as a report of ours: `report --output` replaces only such a file without --force."""
MARKER_SEARCH_BYTES = 4096
"""The marker is in a report's head, within its first bytes."""


def check_output(page: Path, database: Path | None, force: bool) -> None:
    """Refuses to write a page over the database it reads, or over a file that is not a report."""
    if force or not page.exists():
        return
    if database is not None and page.resolve() == database.resolve():
        raise HyperTrackerError(
            f"--output {page} is the DuckDB file the report reads: name another file with "
            "--output (or replace the database with --force)"
        )
    with page.open("rb") as existing:
        head = existing.read(MARKER_SEARCH_BYTES)
    if REPORT_MARKER.encode() not in head:
        raise HyperTrackerError(
            f"--output {page} exists and is not a hypertracker report: name another file with "
            "--output, or overwrite it with --force"
        )


def write_report(dataset: dlt.Dataset, page: Path) -> Path:
    """Writes the report page of a dataset; returns its path."""
    # imported here: the charts need plotly, which the rest of the package does not
    from hypertracker_source.report import charts

    data = read_report_data(dataset)
    prefix = page.stem
    sections = [
        heatmap_section(data, charts, prefix),
        risk_section(data, charts, prefix),
        liquidations_section(data, charts, prefix),
    ]
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(render_page(data, sections, charts.plotly_script()), encoding="utf-8")
    return page


def missing_table_note(table: str, how: str) -> str:
    """Says that a table was not loaded, and how to load it."""
    return f"This dataset has no {table} table: load it with {how}."


def heatmap_section(data: ReportData, charts: ModuleType, prefix: str) -> Section:
    """Each coin's liquidation heatmap, stepping through its snapshots, with the mark price."""
    section = Section(
        "heatmaps",
        "Liquidation heatmaps",
        "The USD value of open positions that would be liquidated if the price reached each "
        "bin. The dashed line is the mark price of the coin's last liquidation before the "
        "snapshot, the nearest thing to a current price that the API gives: longs are "
        "liquidated by a fall to the bins below it (red), shorts by a rise to the bins above "
        "(blue). Hover a bar for its cohort and distance; drag to zoom, double-click to reset; "
        "the slider steps through the snapshots loaded so far. The chart opens on the range "
        f"that holds {REPORT_HEATMAP_VALUE_SHARE:.0%} of the value.",
    )
    if "liquidation_heatmap" not in data.tables:
        section.note = missing_table_note(
            "liquidation_heatmap", "`hypertracker load --resources liquidation_heatmap`"
        )
        return section
    if not data.heatmaps:
        section.note = "The liquidation_heatmap table is empty."
        return section
    rows = []
    for coin, snapshots in sorted(data.heatmaps.items()):
        latest = snapshots[-1]
        rows.append(heatmap_row(coin, latest, len(snapshots), data))
        chart = charts.figure_html(
            charts.heatmap_figure(coin, snapshots, data.cohorts),
            element_id(HEATMAP_ID_PREFIX, coin),
            f"{prefix}-heatmap-{file_slug(coin)}",
        )
        section.charts.append(chart_box(chart, coin))
    section.tables.append(
        (
            "heatmaps-table",
            [
                "coin",
                "snapshot (UTC)",
                "snapshots",
                "price bins",
                "liquidation value",
                "positions",
                "mark price",
                "longs below",
                "shorts above",
                "largest bin",
                "most impacted there",
            ],
            rows,
        )
    )
    section.controls = coin_picker(sorted(data.heatmaps))
    return section


def heatmap_row(coin: str, latest: Snapshot, snapshots: int, data: ReportData) -> list[str]:
    """A coin's row in the heatmap table, from its latest snapshot."""
    bins = latest.bins
    largest = max(bins, key=lambda row: row["liquidation_value"] or 0)
    mark = latest.mark_price
    below = sum(r["liquidation_value"] or 0 for r in bins if mark and r["price_bin_end"] <= mark)
    above = sum(r["liquidation_value"] or 0 for r in bins if mark and r["price_bin_end"] > mark)
    return [
        coin,
        timestamp(latest.snapshot_at),
        f"{snapshots:,}",
        f"{len(bins):,}",
        money(sum(row["liquidation_value"] or 0 for row in bins)),
        f"{sum(row['positions_count'] or 0 for row in bins):,}",
        price(mark) if mark else "no fills",
        money(below) if mark else "",
        money(above) if mark else "",
        price_range(largest["price_bin_start"], largest["price_bin_end"]),
        data.cohorts.name(largest["most_impacted_segment"]),
    ]


def coin_picker(coins: list[str]) -> str:
    """A drop-down that shows one coin's heatmap at a time."""
    options = "".join(f'<option value="{html_text(c)}">{html_text(c)}</option>' for c in coins)
    return (
        '<label class="picker">Coin <select id="heatmap-coin" data-prefix="heatmap-">'
        f"{options}</select></label>"
    )


COHORT_GROUPS = (("size", "size cohorts"), ("pnl", "PnL cohorts"))
"""The two ways the API groups wallets: every wallet is in one cohort of each, at once."""


def risk_section(data: ReportData, charts: ModuleType, prefix: str) -> Section:
    """The liquidation risk of every cohort on the coins with the most value at risk."""
    counts = Counter(data.cohorts.categories.values())
    section = Section(
        "risk",
        "Liquidation risk by cohort",
        "For each cohort and coin, the USD value of open positions within 75% of their "
        "liquidation threshold (bubble area and label) and its share of the cohort's open value "
        "on the coin (colour). Every wallet is in one size cohort and one PnL cohort at once, so "
        "the two groupings are shown apart and never summed together: the table's totals sum "
        f"the {counts['size']} size cohorts in one set of columns and the {counts['pnl']} PnL "
        "cohorts in the other, and the buttons switch the chart between them. The coins are the "
        f"{REPORT_RISK_COINS} with the most value at risk summed over the size cohorts. From the "
        "latest snapshot of each cohort.",
    )
    if "liquidation_risk" not in data.tables:
        section.note = missing_table_note(
            "liquidation_risk",
            "`hypertracker load` (its resources are liquidation_risk_<cohort>, such as "
            "liquidation_risk_smart_money)",
        )
        return section
    if not data.risk:
        section.note = "The liquidation_risk table is empty."
        return section
    totals = {category: risk_totals(data, category) for category, _ in COHORT_GROUPS}
    size_risk = totals["size"][0]
    coins = sorted(size_risk, key=lambda coin: (-size_risk[coin], coin))[:REPORT_RISK_COINS]
    if not data.cohorts.categories:
        section.note = (
            "This dataset has no segments table, so which cohort is a size or a PnL cohort is "
            "unknown and nothing is summed: load it with `hypertracker load --resources segments`."
        )
        coins = sorted({row["coin"] for row in data.risk})[:REPORT_RISK_COINS]
    else:
        headers = ["coin"] + [
            f"{column}, {label}"
            for _, label in COHORT_GROUPS
            for column in ("value at risk", "open value", "share at risk")
        ]
        rows = [
            [
                coin,
                *(
                    cell
                    for category, _ in COHORT_GROUPS
                    for cell in risk_cells(totals[category], coin)
                ),
            ]
            for coin in coins
        ]
        section.tables.append(("risk-table", headers, rows))
    chart = charts.figure_html(
        charts.risk_figure(data.risk, coins, data.cohorts), "risk-chart", f"{prefix}-risk"
    )
    section.charts.append(chart_box(chart))
    return section


def risk_totals(data: ReportData, category: str) -> tuple[dict[str, float], dict[str, float]]:
    """Value at risk and open value by coin, summed over the cohorts of one category."""
    at_risk: dict[str, float] = defaultdict(float)
    open_value: dict[str, float] = defaultdict(float)
    for row in data.risk:
        if data.cohorts.categories.get(row["segment_id"]) == category:
            at_risk[row["coin"]] += row["risk_value"] or 0.0
            open_value[row["coin"]] += row["total_value"] or 0.0
    return at_risk, open_value


def risk_cells(totals: tuple[dict[str, float], dict[str, float]], coin: str) -> list[str]:
    """A coin's value at risk, open value and share at risk in one category, as table cells."""
    at_risk, open_value = totals
    share = at_risk[coin] / open_value[coin] if open_value[coin] else 0.0
    return [money(at_risk[coin]), money(open_value[coin]), f"{share:.1%}"]


def liquidations_section(data: ReportData, charts: ModuleType, prefix: str) -> Section:
    """Liquidated value over time, longs against shorts, with the cascades marked."""
    section = Section(
        "liquidations",
        "Liquidations over time",
        "The USD value (price times size) of liquidation fills per period: long positions "
        "closed (sells, side A) above the line, short positions closed (buys, side B) below. "
        "Diamonds mark cascades, bursts of one coin's liquidations of at least 3 wallets each "
        "within 60 s of the one before, at their start and by their value (lower panel). Pick "
        f"all coins or one of the {REPORT_FILL_COINS} with the most value liquidated; drag the "
        "range slider to zoom in time.",
    )
    if "liquidation_fills" not in data.tables:
        section.note = missing_table_note(
            "liquidation_fills", "`hypertracker load --resources liquidation_fills`"
        )
        return section
    if data.buckets is None:
        section.note = "The liquidation_fills table is empty."
        return section
    rows = data.buckets.rows
    totals: dict[str, float] = defaultdict(float)
    for row in rows:
        totals[row["coin"]] += row["value"] or 0.0
    coins = sorted(totals, key=lambda coin: (-totals[coin], coin))[:REPORT_FILL_COINS]
    panels: list[tuple[str, str | None]] = [("All coins", None), *((c, c) for c in coins)]
    table = []
    for label, coin in panels:
        chosen = [row for row in rows if coin is None or row["coin"] == coin]
        table.append([label, *side_totals(chosen, "A"), *side_totals(chosen, "B")])
    headers = ["coin", "longs liquidated", "long value", "shorts liquidated", "short value"]
    section.tables.append(("liquidations-table", headers, table))
    section.tables.append(cascades_table(data.cascades))
    chart = charts.figure_html(
        charts.liquidations_figure(data.buckets, panels, data.cascades),
        "liquidations-chart",
        f"{prefix}-liquidations",
    )
    section.charts.append(chart_box(chart))
    return section


def side_totals(rows: list[dict[str, Any]], side: str) -> list[str]:
    """The fill count and value of one side's rows, as table cells."""
    chosen = [row for row in rows if row["side"] == side]
    return [
        f"{sum(row['fills'] for row in chosen):,}",
        money(sum(row["value"] or 0.0 for row in chosen)),
    ]


def cascades_table(cascades: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]]]:
    """The largest cascades, as a table."""
    largest = sorted(cascades, key=lambda row: (-row["notional"], row["started_at"]))
    rows = [
        [
            row["coin"],
            timestamp(row["started_at"]),
            duration(row["ended_at"] - row["started_at"]),
            f"{row['fills']:,}",
            f"{row['wallets']:,}",
            money(row["notional"]),
            percent((row["last_price"] - row["first_price"]) / row["first_price"] * 100),
        ]
        for row in largest[:REPORT_CASCADE_ROWS]
    ]
    headers = ["cascade coin", "start (UTC)", "lasted", "fills", "wallets", "value", "price move"]
    return "cascades-table", headers, rows


def file_slug(coin: str) -> str:
    """A coin name safe in a file name: xyz:MSTR becomes xyz-MSTR."""
    return "".join(char if char.isalnum() else "-" for char in coin)


PAGE_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0; color: #1b1b1b;
       background: #fafafa; }
main { max-width: 1280px; margin: 0 auto; padding: 20px 24px 48px; }
h1 { margin: 0 0 6px; font-size: 26px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; }
.meta { color: #444; margin: 2px 0; } .note { color: #555; font-style: italic; }
nav { margin: 12px 0; } nav a { margin-right: 16px; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 12px 0 20px; font-size: 14px; white-space: nowrap; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }
th { background: #f0f0f0; white-space: normal; vertical-align: bottom; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
.chart { background: white; border: 1px solid #e4e4e4; margin: 12px 0 24px; }
.picker { display: inline-block; margin: 8px 0; font-weight: 600; }
.picker select { font-size: 15px; margin-left: 6px; padding: 2px 6px; }
.hidden { display: none; }
"""

PAGE_SCRIPT = """
document.querySelectorAll("select[data-prefix]").forEach(function (picker) {
  function show() {
    document.querySelectorAll("[data-group='" + picker.id + "']").forEach(function (box) {
      var shown = box.dataset.value === picker.value;
      box.classList.toggle("hidden", !shown);
      if (shown) { box.querySelectorAll(".js-plotly-plot").forEach(Plotly.Plots.resize); }
    });
  }
  picker.addEventListener("change", show);
  show();
});
"""
"""Hand-written: shows the chosen coin's chart; plotly's own menus switch traces, not figures."""


def render_page(data: ReportData, sections: list[Section], plotly_js: str) -> str:
    """The HTML page: a header, then each section with its tables and its charts."""
    escape = html_text
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        REPORT_MARKER,
        f"<title>{PAGE_TITLE}</title>",
        f"<style>{PAGE_STYLE}</style>",
        f'<script type="text/javascript">{plotly_js}</script>',
        "</head><body><main>",
        f"<h1>{PAGE_TITLE}</h1>",
        *(f'<p class="meta">{escape(line)}</p>' for line in header_lines(data)),
        "<nav>"
        + "".join(f'<a href="#{s.anchor}">{escape(s.title)}</a>' for s in sections)
        + "</nav>",
    ]
    for section in sections:
        parts.append(f'<section id="{section.anchor}"><h2>{escape(section.title)}</h2>')
        parts.append(f"<p>{escape(section.intro)}</p>")
        if section.note:
            parts.append(f'<p class="note">{escape(section.note)}</p>')
        for table_id, headers, rows in section.tables:
            if rows:
                parts.append(html_table(table_id, headers, rows))
        parts.append(section.controls)
        parts.extend(section.charts)
        parts.append("</section>")
    parts.append(f"</main><script>{PAGE_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def chart_box(chart: str, coin: str | None = None) -> str:
    """A chart's frame; a heatmap's is tagged with its coin for the coin picker."""
    if coin is None:
        return f'<div class="chart">{chart}</div>'
    return (
        f'<div class="chart" data-group="heatmap-coin" data-value="{html_text(coin)}">{chart}</div>'
    )


def header_lines(data: ReportData) -> list[str]:
    """The lines under the title: when, which dataset, what time range and how many rows."""
    loaded = ", ".join(
        f"{table} {data.row_counts[table]:,} rows"
        for table in REPORT_TABLES
        if table in data.row_counts
    )
    lines = [
        f"Generated at {timestamp(data.generated_at)} UTC from dataset "
        f"{data.dataset_name}: {loaded}."
    ]
    if data.fill_span:
        lines.append(f"Liquidation fills from {span_text(*data.fill_span)} UTC.")
    if data.snapshot_span:
        first, last, count = data.snapshot_span
        lines.append(
            f"Heatmap and risk snapshots: {count:,} data version{'s' if count != 1 else ''}, "
            f"{span_text(first, last)} UTC."
        )
    lines.append(NUMBER_RULE)
    return lines


def span_text(first: datetime, last: datetime) -> str:
    """A time range as the header writes it."""
    return timestamp(first) if first == last else f"{timestamp(first)} to {timestamp(last)}"


def html_table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table of text cells, scrolling sideways on a narrow screen."""
    head = "".join(f"<th>{html_text(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(table_cell(cell) for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def table_cell(text: str) -> str:
    """A table cell, right-aligned when it holds an amount, a count or a change."""
    bare = text.lstrip("+-$\u2212").replace(",", "").replace(".", "").rstrip("%s ").rstrip("kMBT")
    number = bare.isdigit()
    return f'<td class="number">{html_text(text)}</td>' if number else f"<td>{html_text(text)}</td>"
