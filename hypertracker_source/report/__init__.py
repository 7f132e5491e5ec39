"""The `hypertracker report` page: interactive heatmaps, cohort risk and liquidations over time.

queries reads the dataset, charts draws plotly figures, page writes the self-contained HTML file;
settings holds the report's constants.
Importing this package needs no plotly; writing a page does.
"""

from hypertracker_source.report.page import check_output, write_report
from hypertracker_source.report.queries import stored_dataset
from hypertracker_source.report.text import money, price_range

__all__ = ["check_output", "money", "price_range", "stored_dataset", "write_report"]
