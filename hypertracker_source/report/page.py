"""The report page: one self-contained HTML file of tables and interactive charts."""

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import dlt

from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.report.markup import html_text
from hypertracker_source.report.queries import REPORT_TABLES, ReportData, read_report_data
from hypertracker_source.report.text import NUMBER_RULE, timestamp

if TYPE_CHECKING:
    from hypertracker_source.report.sections import Section

PAGE_TITLE = "HyperTracker liquidation report"
_REPORT_MARKER = '<meta name="generator" content="hypertracker report">'
"""Marks a page as a report of ours: `report --output` replaces only such a file without --force."""
_MARKER_SEARCH_BYTES = 4096
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
        head = existing.read(_MARKER_SEARCH_BYTES)
    if _REPORT_MARKER.encode() not in head:
        raise HyperTrackerError(
            f"--output {page} exists and is not a hypertracker report: name another file with "
            "--output, or overwrite it with --force"
        )


def write_report(dataset: dlt.Dataset, page: Path) -> Path:
    """Writes the report page of a dataset; returns its path."""
    # imported here: the charts need plotly, which the rest of the package does not
    from hypertracker_source.report.charts import plotly_script
    from hypertracker_source.report.sections import report_sections

    data = read_report_data(dataset)
    sections = report_sections(data, page.stem)
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(_render_page(data, sections, plotly_script()), encoding="utf-8")
    return page


_PAGE_STYLE = """
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

_PAGE_SCRIPT = """
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


def _render_page(data: ReportData, sections: "list[Section]", plotly_js: str) -> str:
    """The HTML page: a header, then each section with its tables and its charts."""
    escape = html_text
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        _REPORT_MARKER,
        f"<title>{PAGE_TITLE}</title>",
        f"<style>{_PAGE_STYLE}</style>",
        f'<script type="text/javascript">{plotly_js}</script>',
        "</head><body><main>",
        f"<h1>{PAGE_TITLE}</h1>",
        *(f'<p class="meta">{escape(line)}</p>' for line in _header_lines(data)),
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
                parts.append(_html_table(table_id, headers, rows))
        parts.append(section.controls)
        parts.extend(section.charts)
        parts.append("</section>")
    parts.append(f"</main><script>{_PAGE_SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _header_lines(data: ReportData) -> list[str]:
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
        lines.append(f"Liquidation fills from {_span_text(*data.fill_span)} UTC.")
    if data.snapshot_span:
        first, last, count = data.snapshot_span
        lines.append(
            f"Heatmap and risk snapshots: {count:,} data version{'s' if count != 1 else ''}, "
            f"{_span_text(first, last)} UTC."
        )
    lines.append(NUMBER_RULE)
    return lines


def _span_text(first: datetime, last: datetime) -> str:
    """A time range as the header writes it."""
    return timestamp(first) if first == last else f"{timestamp(first)} to {timestamp(last)}"


def _html_table(table_id: str, headers: list[str], rows: list[list[str]]) -> str:
    """An HTML table of text cells, scrolling sideways on a narrow screen."""
    head = "".join(f"<th>{html_text(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(_table_cell(cell) for cell in row) + "</tr>" for row in rows)
    return (
        f'<div class="scroll"><table id="{table_id}"><thead><tr>{head}</tr></thead>'
        f"<tbody>{body}</tbody></table></div>"
    )


def _table_cell(text: str) -> str:
    """A table cell, right-aligned when it holds an amount, a count or a change."""
    bare = text.lstrip("+-$\u2212").replace(",", "").replace(".", "").rstrip("%s ").rstrip("kMBT")
    number = bare.isdigit()
    return f'<td class="number">{html_text(text)}</td>' if number else f"<td>{html_text(text)}</td>"
