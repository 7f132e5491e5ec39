"""A load: the source through a pipeline chunk after chunk until caught up, and what it prints."""

from collections.abc import Sequence
from typing import Any

import dlt
from dlt.common.pipeline import LoadInfo
from dlt.sources import DltSource

from hypertracker_source import RunStats, hypertracker, load_until_caught_up, pending_fill_reads
from hypertracker_source.chunks import pending_span
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.mysql import index_merge_keys_on_mysql
from hypertracker_source.settings import FILLS_RESOURCE, TABLE_NAMES


def run_load(
    pipeline: dlt.Pipeline,
    settings: dict[str, Any],
    resources: str | None = None,
    refresh: bool = False,
    stats: RunStats | None = None,
    summary: bool = True,
) -> RunStats:
    """Runs the source through the pipeline, chunk after chunk until caught up, and prints what
    landed and what it cost.

    A load an interrupted run left behind is finished first: dlt's `run` would otherwise load only
    that and skip the source. Into MySQL or MariaDB, the staging tables' keys get the index the
    next merge needs (see hypertracker_source/mysql.py). `stats` may come with the API's status
    already asked (by follow), which prints its own line instead of the summary.
    """
    stats = RunStats() if stats is None else stats

    def make_source() -> DltSource:
        """The source of one chunk; every chunk counts into the same stats and reuses the status."""
        source = hypertracker(**settings, run_stats=stats)
        if resources:
            source = source.with_resources(*chosen_resources(source, resources))
        return source

    if pipeline.has_pending_data:
        print("Finishing the load an interrupted run left behind first.")
        pipeline.normalize()
        pipeline.load()
    progress = ChunkProgress(pipeline, stats)
    tables = source_tables(make_source())

    def after_chunk(number: int, load: LoadInfo) -> None:
        """Indexes MySQL's staging keys for the next merge, and shows the chunk."""
        index_merge_keys_on_mysql(pipeline)
        progress.print_chunk(number, load)

    load_until_caught_up(pipeline, make_source, after_chunk, refresh)
    if summary:
        print_summary(pipeline, stats, tables)
    return stats


class ChunkProgress:
    """Prints a line per chunk: the fills it landed, its requests, what is left to read."""

    def __init__(self, pipeline: dlt.Pipeline, stats: RunStats) -> None:
        self._pipeline = pipeline
        self._stats = stats
        self._requests_before = 0

    def print_chunk(self, number: int, load: LoadInfo) -> None:
        """Prints one chunk's line (for a load in more than one chunk) and adds up its rows."""
        trace = self._pipeline.last_trace
        normalize_info = trace.last_normalize_info if trace else None
        row_counts = normalize_info.row_counts if normalize_info else {}
        self._stats.rows.update({table: row_counts.get(table, 0) for table in TABLE_NAMES})
        requests = sum(self._stats.requests.values())
        spent, self._requests_before = requests - self._requests_before, requests
        left = pending_fill_reads(self._pipeline)
        if number == 1 and not left:
            return
        fills = row_counts.get(FILLS_RESOURCE, 0)
        print(f"chunk {number}: {fills:,} fills, {spent} requests; {left_to_read(self._pipeline)}")


def left_to_read(pipeline: dlt.Pipeline) -> str:
    """What the fills reads still pending cover, in words."""
    span = pending_span(pipeline)
    if span is None:
        return "caught up"
    first, last = span
    return f"{pending_fill_reads(pipeline)} reads left, {first:%Y-%m-%d} to {last:%Y-%m-%d %H:%M}"


def chosen_resources(source: DltSource, resources: str) -> list[str]:
    """The resources named by --resources; `liquidation_risk` stands for every cohort's."""
    chosen: list[str] = []
    for name in filter(None, (part.strip() for part in resources.split(","))):
        if name == "liquidation_risk":
            chosen += [r for r in source.resources if r.startswith("liquidation_risk_")]
        elif name in source.resources and source.resources[name].selected:
            chosen.append(name)
        else:
            public = [r for r, resource in source.resources.items() if resource.selected]
            raise HyperTrackerError(
                f"--resources: {name!r} is not a resource of this source; choose from "
                f"liquidation_risk (every cohort), {', '.join(public)}"
            )
    return chosen


def source_tables(source: DltSource) -> list[str]:
    """The tables the source's selected resources load, in the order of TABLE_NAMES."""
    tables = {resource.table_name for resource in source.selected_resources.values()}
    return [table for table in TABLE_NAMES if table in tables]


def print_summary(pipeline: dlt.Pipeline, stats: RunStats, tables: Sequence[str]) -> None:
    """Prints rows landed per table, 0 included, requests spent per endpoint, the data version."""
    print(f"\nLoaded into {pipeline.destination.destination_name} dataset {pipeline.dataset_name}:")
    for table in tables:
        print(f"  {table:<22} {stats.rows[table]:>10,} rows")
    spent = ", ".join(f"{endpoint} {count}" for endpoint, count in sorted(stats.requests.items()))
    print(f"API requests: {sum(stats.requests.values())} ({spent or 'none'})")
    if stats.ledger:
        print(f"Budget: {stats.ledger.spend_text()}")
    if stats.status:
        print(
            f"Data version: {stats.status.get('lastUpdate')}; "
            f"the API updates next at {stats.status.get('nextUpdate')}"
        )
