"""The report's three sections, heatmaps, cohort risk and liquidations: text, tables, charts."""

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

from hypertracker_source.report.charts import figure_html
from hypertracker_source.report.heatmap_chart import heatmap_figure
from hypertracker_source.report.liquidations_chart import liquidations_figure
from hypertracker_source.report.markup import element_id, html_text
from hypertracker_source.report.queries import ReportData, Snapshot
from hypertracker_source.report.risk_chart import risk_figure
from hypertracker_source.report.settings import (
    CASCADE_MAX_GAP_SECONDS,
    CASCADE_MIN_WALLETS,
    REPORT_CASCADE_ROWS,
    REPORT_FILL_COINS,
    REPORT_HEATMAP_VALUE_SHARE,
    REPORT_RISK_COINS,
)
from hypertracker_source.report.text import duration, money, percent, price, price_range, timestamp

_HEATMAP_ID_PREFIX = "heatmap-"
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


def report_sections(data: ReportData, prefix: str) -> list[Section]:
    """The page's sections, in order; chart downloads are named after `prefix`."""
    return [
        _heatmap_section(data, prefix),
        _risk_section(data, prefix),
        _liquidations_section(data, prefix),
    ]


def _no_data_note(data: ReportData, table: str, how: str, has_rows: bool) -> str | None:
    """Says that a table was not loaded, and how to load it, or that it is empty; None when the
    section has rows to show."""
    if table not in data.tables:
        return f"This dataset has no {table} table: load it with {how}."
    return None if has_rows else f"The {table} table is empty."


def _heatmap_section(data: ReportData, prefix: str) -> Section:
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
    section.note = _no_data_note(
        data,
        "liquidation_heatmap",
        "`hypertracker load --resources liquidation_heatmap`",
        bool(data.heatmaps),
    )
    if section.note:
        return section
    rows = []
    for coin, snapshots in sorted(data.heatmaps.items()):
        latest = snapshots[-1]
        rows.append(_heatmap_row(coin, latest, len(snapshots), data))
        chart = figure_html(
            heatmap_figure(coin, snapshots, data.cohorts),
            element_id(_HEATMAP_ID_PREFIX, coin),
            f"{prefix}-heatmap-{_file_slug(coin)}",
        )
        section.charts.append(_chart_box(chart, coin))
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
    section.controls = _coin_picker(sorted(data.heatmaps))
    return section


def _heatmap_row(coin: str, latest: Snapshot, snapshots: int, data: ReportData) -> list[str]:
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


def _coin_picker(coins: list[str]) -> str:
    """A drop-down that shows one coin's heatmap at a time."""
    options = "".join(f'<option value="{html_text(c)}">{html_text(c)}</option>' for c in coins)
    return (
        '<label class="picker">Coin <select id="heatmap-coin" data-prefix="heatmap-">'
        f"{options}</select></label>"
    )


_COHORT_GROUPS = (("size", "size cohorts"), ("pnl", "PnL cohorts"))
"""The two ways the API groups wallets: every wallet is in one cohort of each, at once."""


def _risk_section(data: ReportData, prefix: str) -> Section:
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
    section.note = _no_data_note(
        data,
        "liquidation_risk",
        "`hypertracker load` (its resources are liquidation_risk_<cohort>, such as "
        "liquidation_risk_smart_money)",
        bool(data.risk),
    )
    if section.note:
        return section
    totals = {category: _risk_totals(data, category) for category, _ in _COHORT_GROUPS}
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
            for _, label in _COHORT_GROUPS
            for column in ("value at risk", "open value", "share at risk")
        ]
        rows = [
            [
                coin,
                *(
                    cell
                    for category, _ in _COHORT_GROUPS
                    for cell in _risk_cells(totals[category], coin)
                ),
            ]
            for coin in coins
        ]
        section.tables.append(("risk-table", headers, rows))
    chart = figure_html(risk_figure(data.risk, coins, data.cohorts), "risk-chart", f"{prefix}-risk")
    section.charts.append(_chart_box(chart))
    return section


def _risk_totals(data: ReportData, category: str) -> tuple[dict[str, float], dict[str, float]]:
    """Value at risk and open value by coin, summed over the cohorts of one category."""
    at_risk: dict[str, float] = defaultdict(float)
    open_value: dict[str, float] = defaultdict(float)
    for row in data.risk:
        if data.cohorts.categories.get(row["segment_id"]) == category:
            at_risk[row["coin"]] += row["risk_value"] or 0.0
            open_value[row["coin"]] += row["total_value"] or 0.0
    return at_risk, open_value


def _risk_cells(totals: tuple[dict[str, float], dict[str, float]], coin: str) -> list[str]:
    """A coin's value at risk, open value and share at risk in one category, as table cells."""
    at_risk, open_value = totals
    share = at_risk[coin] / open_value[coin] if open_value[coin] else 0.0
    return [money(at_risk[coin]), money(open_value[coin]), f"{share:.1%}"]


def _liquidations_section(data: ReportData, prefix: str) -> Section:
    """Liquidated value over time, longs against shorts, with the cascades marked."""
    section = Section(
        "liquidations",
        "Liquidations over time",
        "The USD value (price times size) of liquidation fills per period: long positions "
        "closed (sells, side A) above the line, short positions closed (buys, side B) below. "
        "Diamonds mark cascades, bursts of one coin's liquidations of at least "
        f"{CASCADE_MIN_WALLETS} wallets each within {CASCADE_MAX_GAP_SECONDS} s of the one "
        "before, at their start and by their value (lower panel). Pick "
        f"all coins or one of the {REPORT_FILL_COINS} with the most value liquidated; drag the "
        "range slider to zoom in time.",
    )
    section.note = _no_data_note(
        data,
        "liquidation_fills",
        "`hypertracker load --resources liquidation_fills`",
        data.buckets is not None,
    )
    if section.note or data.buckets is None:
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
        table.append([label, *_side_totals(chosen, "A"), *_side_totals(chosen, "B")])
    headers = ["coin", "longs liquidated", "long value", "shorts liquidated", "short value"]
    section.tables.append(("liquidations-table", headers, table))
    section.tables.append(_cascades_table(data.cascades))
    chart = figure_html(
        liquidations_figure(data.buckets, panels, data.cascades),
        "liquidations-chart",
        f"{prefix}-liquidations",
    )
    section.charts.append(_chart_box(chart))
    return section


def _side_totals(rows: list[dict[str, Any]], side: str) -> list[str]:
    """The fill count and value of one side's rows, as table cells."""
    chosen = [row for row in rows if row["side"] == side]
    return [
        f"{sum(row['fills'] for row in chosen):,}",
        money(sum(row["value"] or 0.0 for row in chosen)),
    ]


def _cascades_table(cascades: list[dict[str, Any]]) -> tuple[str, list[str], list[list[str]]]:
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


def _file_slug(coin: str) -> str:
    """A coin name safe in a file name: xyz:MSTR becomes xyz-MSTR."""
    return "".join(char if char.isalnum() else "-" for char in coin)


def _chart_box(chart: str, coin: str | None = None) -> str:
    """A chart's frame; a heatmap's is tagged with its coin for the coin picker."""
    if coin is None:
        return f'<div class="chart">{chart}</div>'
    return (
        f'<div class="chart" data-group="heatmap-coin" data-value="{html_text(coin)}">{chart}</div>'
    )
