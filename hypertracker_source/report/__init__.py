"""The `hypertracker report` page: interactive heatmaps, cohort risk and liquidations over time.

queries reads the dataset; sections lays out each part's text, tables and chart, drawn by
heatmap_chart, risk_chart and liquidations_chart on what charts shares; page writes the
self-contained HTML file; text and markup write numbers and the API's strings; settings holds the
report's constants.
Importing this package needs no plotly; writing a page does.
"""

from hypertracker_source.report.page import check_output, write_report
from hypertracker_source.report.queries import stored_dataset
from hypertracker_source.report.text import money, price_range

__all__ = ["check_output", "money", "price_range", "stored_dataset", "write_report"]
