"""A load: the source through a pipeline chunk after chunk until caught up, and what it prints."""

from collections.abc import Mapping, Sequence
from typing import Any

import dlt
from dlt.common.destination.exceptions import DestinationUndefinedEntity
from dlt.common.exceptions import DltException
from dlt.common.pipeline import LoadInfo
from dlt.sources import DltSource

from hypertracker_source import RunStats, hypertracker, load_until_caught_up, pending_fill_reads
from hypertracker_source.destinations.profiles import after_load
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.runs.chunks import pending_span
from hypertracker_source.tables import FILLS, REJECTED_FILLS, TABLES


def run_load(
    pipeline: dlt.Pipeline,
    settings: dict[str, Any],
    resources: str | None = None,
    refresh: bool = False,
    stats: RunStats | None = None,
    summary: bool = True,
    lock_wait: float = 0.0,
) -> RunStats:
    """Runs the source through the pipeline, chunk after chunk until caught up, and prints what
    landed and what it cost.

    A load an interrupted run left behind is finished first (see recovery.py), under the pipeline's
    lock, which a second run waits `lock_wait` seconds for. After each chunk, the destination takes
    its steps (see destinations/profiles.py: into MySQL or MariaDB, the staging tables' keys get
    the index the next merge needs). `stats`
    may come with the API's status already asked (by follow), which prints its own line instead
    of the summary.
    """
    stats = RunStats() if stats is None else stats

    def make_source() -> DltSource:
        """The source of one chunk; every chunk counts into the same stats and reuses the status."""
        source = hypertracker(**settings, run_stats=stats)
        if resources:
            source = source.with_resources(*chosen_resources(source, resources))
        return source

    progress = ChunkProgress(pipeline, stats)
    tables = source_tables(make_source())

    def after_chunk(number: int, load: LoadInfo) -> None:
        """Takes the destination's steps after a load, and shows the chunk."""
        after_load(pipeline)
        progress.print_chunk(number, load)

    fills_before = 0 if refresh or not summary else stored_rows(pipeline, FILLS.name)
    load_until_caught_up(
        pipeline, make_source, after_chunk, refresh, lock_wait, on_left_behind=announce_left_behind
    )
    if summary:
        fills_after = stored_rows(pipeline, FILLS.name)
        new = {FILLS.name: fills_after - fills_before} if fills_after >= fills_before >= 0 else {}
        print_summary(pipeline, stats, tables, new)
    return stats


def announce_left_behind() -> None:
    """Says that a run left a load behind, which is finished first."""
    print("Finishing the load an interrupted run left behind first.")


def stored_rows(pipeline: dlt.Pipeline, table: str) -> int:
    """How many rows a table of the pipeline's dataset holds: 0 before it exists, -1 when the
    destination cannot count them."""
    dataset = pipeline.dataset()
    try:
        if table not in dataset.tables:
            return 0
        return int(dataset.row_counts(table_names=[table]).fetchall()[0][1])
    except DestinationUndefinedEntity:
        return 0
    except DltException:
        return -1


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
        self._stats.rows.update({table.name: row_counts.get(table.name, 0) for table in TABLES})
        requests = sum(self._stats.requests.values())
        spent, self._requests_before = requests - self._requests_before, requests
        left = pending_fill_reads(self._pipeline)
        if number == 1 and not left:
            return
        fills = row_counts.get(FILLS.name, 0)
        print(f"chunk {number}: {fills:,} fills, {spent} requests; {left_to_read(self._pipeline)}")


def new_rows(rows: int, table: str, new: Mapping[str, int] | None) -> str:
    """How many of the rows a table got are new, when some were stored already; or nothing."""
    if not new or table not in new or new[table] >= rows:
        return ""
    return f" ({new[table]:,} new, {rows - new[table]:,} already stored and read again)"


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
    """The public tables the source's selected resources load, in the registry's order."""
    tables = {resource.table_name for resource in source.selected_resources.values()}
    return [table.name for table in TABLES if table.public and table.name in tables]


def print_summary(
    pipeline: dlt.Pipeline,
    stats: RunStats,
    tables: Sequence[str],
    new: Mapping[str, int] | None = None,
) -> None:
    """Prints rows landed per table, 0 included (with how many are new, where `new` says),
    requests spent per endpoint, the data version."""
    print(f"\nLoaded into {pipeline.destination.destination_name} dataset {pipeline.dataset_name}:")
    for table in tables:
        print(
            f"  {table:<22} {stats.rows[table]:>10,} rows{new_rows(stats.rows[table], table, new)}"
        )
    if stats.rows[REJECTED_FILLS.name]:
        print(
            f"  {REJECTED_FILLS.name} {stats.rows[REJECTED_FILLS.name]:,} rows: fills that break "
            "the data contract, set apart and not loaded (see docs/data-contract.md)"
        )
    spent = ", ".join(f"{endpoint} {count}" for endpoint, count in sorted(stats.requests.items()))
    print(f"API requests: {sum(stats.requests.values())} ({spent or 'none'})")
    if stats.ledger:
        print(f"Budget: {stats.ledger.spend_text()}")
    if stats.status:
        print(
            f"Data version: {stats.status.get('lastUpdate')}; "
            f"the API updates next at {stats.status.get('nextUpdate')}"
        )
