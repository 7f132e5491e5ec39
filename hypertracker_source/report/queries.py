"""What the report shows, read from a loaded dataset with the dbt package's definitions in SQL."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from hypertracker_source.config.defaults import SEGMENT_NAMES
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.report.settings import (
    CASCADE_MAX_GAP_SECONDS,
    CASCADE_MIN_NOTIONAL_USD,
    CASCADE_MIN_WALLETS,
    REPORT_MAX_SNAPSHOTS,
    REPORT_MAX_TIME_BUCKETS,
    REPORT_SNAPSHOT_HOURS,
)
from hypertracker_source.tables import FILLS, HEATMAP, RISK, SEGMENTS

REPORT_TABLES = (HEATMAP.name, RISK.name, FILLS.name, SEGMENTS.name)

_TIME_BUCKETS = (
    ("hour", timedelta(hours=1)),
    ("day", timedelta(days=1)),
    ("week", timedelta(weeks=1)),
    ("month", timedelta(days=30.44)),
)
"""The bucket widths the liquidations-over-time chart can take, narrowest first."""

_SNAPSHOTS = f"(SELECT DISTINCT coin, snapshot_at FROM {HEATMAP.name})"
_SNAPSHOT_TIMES_QUERY = f"SELECT coin, snapshot_at FROM {_SNAPSHOTS} AS s"
_HEATMAP_QUERY = f"""
SELECT coin, snapshot_at, price_bin_start, price_bin_end, liquidation_value, positions_count,
       most_impacted_segment
FROM {HEATMAP.name}
WHERE snapshot_at >= CAST('{{since}}' AS TIMESTAMPTZ)
ORDER BY coin, snapshot_at, price_bin_index
"""
_MARKS_QUERY = f"""
SELECT coin, snapshot_at, mark_price, mark_at FROM (
  SELECT s.coin, s.snapshot_at, f.liquidation_mark_px AS mark_price, f.time AS mark_at,
         ROW_NUMBER() OVER (PARTITION BY s.coin, s.snapshot_at
                            ORDER BY f.time DESC, f.address DESC, f.start_position DESC) AS recency
  FROM {_SNAPSHOTS} AS s
  JOIN {FILLS.name} AS f
    ON f.coin = s.coin AND f.time <= s.snapshot_at AND f.liquidation_mark_px IS NOT NULL
) AS m
WHERE recency = 1
"""
"""The mark price of each coin's last liquidation at or before each heatmap snapshot."""
_RISK_QUERY = f"""
SELECT r.segment_id, r.coin, r.total_value, r.risk_value, r.percent_risk, r.snapshot_at
FROM {RISK.name} AS r
JOIN (SELECT segment_id, MAX(snapshot_at) AS latest FROM {RISK.name} GROUP BY segment_id) AS l
  ON r.segment_id = l.segment_id AND r.snapshot_at = l.latest
"""
_SNAPSHOT_SPAN_QUERY = """
SELECT MIN(snapshot_at) AS first_snapshot, MAX(snapshot_at) AS last_snapshot,
       COUNT(DISTINCT snapshot_at) AS snapshots
FROM {table}
"""
_FILLS_SPAN_QUERY = f"SELECT MIN(time) AS first_fill, MAX(time) AS last_fill FROM {FILLS.name}"
_FILLS_QUERY = f"""
SELECT coin, side, DATE_TRUNC('{{unit}}', time AT TIME ZONE 'UTC') AS bucket, SUM(px * sz) AS value,
       COUNT(*) AS fills
FROM {FILLS.name}
GROUP BY coin, side, DATE_TRUNC('{{unit}}', time AT TIME ZONE 'UTC')
ORDER BY bucket, coin, side
"""
_CASCADES_QUERY = f"""
WITH gaps AS (
  SELECT coin, time, address, side, start_position, px, px * sz AS notional,
         CASE WHEN EXTRACT(epoch FROM time) - LAG(EXTRACT(epoch FROM time)) OVER (
                PARTITION BY coin ORDER BY time, address, start_position
              ) <= {CASCADE_MAX_GAP_SECONDS} THEN 0 ELSE 1 END AS starts_burst
  FROM {FILLS.name}
), bursts AS (
  SELECT *, SUM(starts_burst) OVER (
           PARTITION BY coin ORDER BY time, address, start_position
           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS burst
  FROM gaps
), ranked AS (
  SELECT *,
         ROW_NUMBER() OVER (PARTITION BY coin, burst ORDER BY time, address, start_position)
           AS from_first,
         ROW_NUMBER() OVER (PARTITION BY coin, burst
                            ORDER BY time DESC, address DESC, start_position DESC) AS from_last
  FROM bursts
)
SELECT coin, MIN(time) AS started_at, MAX(time) AS ended_at, COUNT(*) AS fills,
       COUNT(DISTINCT address) AS wallets, SUM(notional) AS notional,
       SUM(CASE WHEN side = 'A' THEN notional ELSE 0 END) AS longs_notional,
       MAX(CASE WHEN from_first = 1 THEN px END) AS first_price,
       MAX(CASE WHEN from_last = 1 THEN px END) AS last_price
FROM ranked
GROUP BY coin, burst
HAVING COUNT(DISTINCT address) >= {CASCADE_MIN_WALLETS}
   AND SUM(notional) >= {CASCADE_MIN_NOTIONAL_USD}
"""
"""Bursts of one coin's liquidations, as the dbt package's liquidation_cascades model finds them.

Unordered: sqlglot writes an ORDER BY on an aggregate as its alias, which MariaDB refuses."""
_SEGMENTS_QUERY = f"SELECT id, name, category FROM {SEGMENTS.name}"
_STORED_SCHEMAS_QUERY = "SELECT DISTINCT schema_name FROM _dlt_version"
_LISTED_DATASETS = 10
"""How many datasets an error about a missing one names."""
_DATASETS_QUERY = """
SELECT DISTINCT table_schema FROM information_schema.tables WHERE table_name = '_dlt_loads'
"""


@dataclass(frozen=True)
class Cohorts:
    """The wallet cohorts: names and categories by segment id."""

    names: dict[int, str]
    categories: dict[int, str]

    def name(self, segment_id: int) -> str:
        """A cohort's name, or its id when the dataset does not know it."""
        return self.names.get(segment_id, f"segment {segment_id}")

    def ordered(self, segment_ids: Iterable[int]) -> list[int]:
        """Segment ids in display order: size cohorts from small to large, then PnL cohorts."""
        order = {segment_id: index for index, segment_id in enumerate(SEGMENT_NAMES)}
        return sorted(
            set(segment_ids), key=lambda segment_id: (order.get(segment_id, len(order)), segment_id)
        )


@dataclass
class Snapshot:
    """One coin's heatmap in one data version, and the mark price of its last liquidation then."""

    coin: str
    snapshot_at: datetime
    bins: list[dict[str, Any]] = field(default_factory=list)
    mark_price: float | None = None
    mark_at: datetime | None = None


@dataclass
class Buckets:
    """Liquidated value per coin, side and time bucket of one width."""

    unit: str
    width: timedelta
    rows: list[dict[str, Any]]


@dataclass
class ReportData:
    """Everything the page shows, read from one dataset."""

    dataset_name: str
    generated_at: datetime
    tables: set[str]
    row_counts: dict[str, int]
    cohorts: Cohorts
    heatmaps: dict[str, list[Snapshot]] = field(default_factory=dict)
    snapshot_span: tuple[datetime, datetime, int] | None = None
    risk: list[dict[str, Any]] = field(default_factory=list)
    fill_span: tuple[datetime, datetime] | None = None
    buckets: Buckets | None = None
    cascades: list[dict[str, Any]] = field(default_factory=list)


def read_report_data(dataset: dlt.Dataset) -> ReportData:
    """Reads what the page shows; fails with the fix when the dataset holds none of its tables."""
    tables = set(dataset.tables)
    if not tables.intersection(REPORT_TABLES):
        raise HyperTrackerError(
            f"Dataset {dataset.dataset_name!r} holds none of the tables "
            f"{', '.join(REPORT_TABLES)}: load it first with `hypertracker load` (or "
            "`hypertracker demo`), or name the dataset that holds them with --dataset"
        )
    loaded = [table for table in REPORT_TABLES if table in tables]
    counts = _relation_rows(dataset.row_counts(table_names=loaded))
    data = ReportData(
        dataset.dataset_name,
        datetime.now(timezone.utc),
        tables,
        {row["table_name"]: row["row_count"] for row in counts},
        _read_cohorts(dataset, tables),
    )
    if HEATMAP.name in tables:
        data.heatmaps = _read_heatmaps(dataset, FILLS.name in tables)
        data.snapshot_span = _read_snapshot_span(dataset, HEATMAP.name)
    if RISK.name in tables:
        data.risk = _query_rows(dataset, _RISK_QUERY)
        data.snapshot_span = data.snapshot_span or _read_snapshot_span(dataset, RISK.name)
    if FILLS.name in tables:
        (span,) = _query_rows(dataset, _FILLS_SPAN_QUERY)
        if span["first_fill"] is not None:
            data.fill_span = (span["first_fill"], span["last_fill"])
            unit, width = _bucket_for(span["last_fill"] - span["first_fill"])
            data.buckets = Buckets(unit, width, _bucket_rows(dataset, unit))
            cascades = _query_rows(dataset, _CASCADES_QUERY)
            data.cascades = sorted(cascades, key=lambda row: (row["started_at"], row["coin"]))
    return data


def _bucket_rows(dataset: dlt.Dataset, unit: str) -> list[dict[str, Any]]:
    """Liquidated value per coin, side and bucket, each bucket an instant in UTC.

    MySQL and MariaDB hand the truncated time back as text, without a zone: it is UTC there.
    """
    rows = _query_rows(dataset, _FILLS_QUERY.format(unit=unit))
    for row in rows:
        bucket = row["bucket"]
        bucket = datetime.fromisoformat(bucket) if isinstance(bucket, str) else bucket
        row["bucket"] = bucket if bucket.tzinfo else bucket.replace(tzinfo=timezone.utc)
    return rows


def _query_rows(dataset: dlt.Dataset, sql: str) -> list[dict[str, Any]]:
    """Runs a query written in DuckDB's SQL on any destination; returns its rows."""
    return _relation_rows(dataset.query(sql, query_dialect="duckdb"))


def _relation_rows(relation: dlt.Relation) -> list[dict[str, Any]]:
    """A relation's rows as dicts (none when dlt reads back no table)."""
    table = relation.arrow()
    return [] if table is None else table.to_pylist()


def _read_cohorts(dataset: dlt.Dataset, tables: set[str]) -> Cohorts:
    """The cohorts from the `segments` table, or their known names when it was not loaded."""
    if SEGMENTS.name not in tables:
        return Cohorts(dict(SEGMENT_NAMES), {})
    rows = _query_rows(dataset, _SEGMENTS_QUERY)
    return Cohorts(
        {row["id"]: row["name"] for row in rows}, {row["id"]: row["category"] for row in rows}
    )


def _read_heatmaps(dataset: dlt.Dataset, with_marks: bool) -> dict[str, list[Snapshot]]:
    """Each coin's recent heatmap snapshots, oldest first, with the mark price at each."""
    times: dict[str, list[datetime]] = defaultdict(list)
    for row in _query_rows(dataset, _SNAPSHOT_TIMES_QUERY):
        times[row["coin"]].append(row["snapshot_at"])
    if not times:
        return {}
    chosen = {(coin, moment) for coin, moments in times.items() for moment in _recent(moments)}
    since = min(moment for _, moment in chosen).isoformat()
    snapshots: dict[tuple[str, datetime], Snapshot] = {}
    for row in _query_rows(dataset, _HEATMAP_QUERY.format(since=since)):
        key = (row["coin"], row["snapshot_at"])
        if key in chosen:
            snapshots.setdefault(key, Snapshot(*key)).bins.append(row)
    for mark in _query_rows(dataset, _MARKS_QUERY) if with_marks else []:
        snapshot = snapshots.get((mark["coin"], mark["snapshot_at"]))
        if snapshot is not None:
            snapshot.mark_price, snapshot.mark_at = mark["mark_price"], mark["mark_at"]
    by_coin: dict[str, list[Snapshot]] = defaultdict(list)
    for coin, _ in sorted(snapshots):
        by_coin[coin].append(snapshots[coin, _])
    return dict(by_coin)


def _recent(moments: list[datetime]) -> list[datetime]:
    """The snapshots the slider shows: those of the last hours, thinned evenly to the most it
    steps through, the latest always among them."""
    latest = max(moments)
    window = sorted(m for m in moments if latest - m <= timedelta(hours=REPORT_SNAPSHOT_HOURS))
    step = -(-len(window) // REPORT_MAX_SNAPSHOTS)
    return window[::-1][::step][::-1]


def _read_snapshot_span(dataset: dlt.Dataset, table: str) -> tuple[datetime, datetime, int] | None:
    """The first and last snapshot of a table and how many there are, or None when empty."""
    (span,) = _query_rows(dataset, _SNAPSHOT_SPAN_QUERY.format(table=table))
    if span["first_snapshot"] is None:
        return None
    return span["first_snapshot"], span["last_snapshot"], span["snapshots"]


def _bucket_for(span: timedelta) -> tuple[str, timedelta]:
    """The narrowest time bucket that draws the span in at most REPORT_MAX_TIME_BUCKETS bars."""
    for unit, width in _TIME_BUCKETS:
        if span / width <= REPORT_MAX_TIME_BUCKETS:
            return unit, width
    return _TIME_BUCKETS[-1]


def stored_dataset(destination: Any, dataset_name: str) -> dlt.Dataset:
    """A loaded dataset, read back with every schema stored in it.

    dlt reads a dataset back with its newest schema only, and pipelines that load different
    tables into one dataset (as in the Dagster example) each store a schema of their own.
    """
    dataset = dlt.dataset(destination, dataset_name)
    try:
        names = sorted(name for (name,) in dataset(_STORED_SCHEMAS_QUERY).fetchall())
    except DatabaseUndefinedRelation:
        raise HyperTrackerError(_missing_dataset_message(destination, dataset_name)) from None
    if len(names) < 2:
        return dataset
    schemas = [dlt.dataset(destination, dataset_name, schema=name).schema for name in names]
    return dlt.dataset(destination, dataset_name, schema=schemas)


def _missing_dataset_message(destination: Any, dataset_name: str) -> str:
    """Says that a dataset is not in the destination, and names the ones that are."""
    found = _loaded_datasets(destination)
    listed = ", ".join(found[:_LISTED_DATASETS]) if found else "none"
    if len(found) > _LISTED_DATASETS:
        listed += f" and {len(found) - _LISTED_DATASETS} more"
    return (
        f"No dataset {dataset_name!r} was loaded in this destination (datasets loaded with dlt "
        f"there: {listed}): name one with --dataset, or load it with `hypertracker load`"
    )


def _loaded_datasets(destination: Any) -> list[str]:
    """The datasets (schemas) of a destination that hold dlt's load table."""
    with dlt.dataset(destination, "information_schema").sql_client as client:
        rows = client.execute_sql(_DATASETS_QUERY)
    return sorted(name for (name,) in rows or [])
