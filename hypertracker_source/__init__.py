"""A dlt source for HyperTracker's Hyperliquid liquidation data: fills, heatmaps, cohort risk."""

from hypertracker_source.runs.malloc import (  # isort: split
    use_returning_duckdb_allocator,
    use_returning_malloc,
)

# Before any other import: importing pyarrow and dlt starts threads, and glibc gives each an arena
# of its own that a later cap does not take back; DuckDB's jemalloc reads its settings once
# (runs/malloc.py). A command, like any user of the source, imports this package first.
use_returning_malloc()
use_returning_duckdb_allocator()

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import dlt
from dlt.common.schema.typing import TMergeDispositionDict
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource

from hypertracker_source.api import endpoints
from hypertracker_source.api.budget import SpendLedger, active_pipeline_ledger
from hypertracker_source.api.client import HyperTrackerClient, RunStats
from hypertracker_source.config.checks import ListSetting
from hypertracker_source.config.defaults import (
    API_BASE_URL,
    DATA_VERSION_KEY,
    DEFAULT_HEATMAP_COINS,
    DEFAULT_LAG,
    DEFAULT_RESPONSE_DEADLINE,
    FILLS_MAX_PAGE_SIZE,
    FILLS_ROWS_PER_ITEM,
    HISTORY_START,
    MAX_FILLS_PER_RUN,
)
from hypertracker_source.config.resolve import FillsPlan, SourceSettings, resolve_settings
from hypertracker_source.config.settings import SETTINGS, SOURCE_NAME
from hypertracker_source.destinations.profiles import prepare_running_pipeline
from hypertracker_source.fills.budget import RunBudget
from hypertracker_source.fills.contract import RejectedFills
from hypertracker_source.fills.pages import batched
from hypertracker_source.fills.reads import FillQuery, fill_queries, read_fills
from hypertracker_source.fills.state import pending_reads, running_fills_state
from hypertracker_source.runs.chunks import load_until_caught_up, pending_fill_reads
from hypertracker_source.runs.memory import use_returning_memory_pool
from hypertracker_source.snapshots.heatmap import heatmap_tables
from hypertracker_source.snapshots.risk import risk_resource_name, risk_tables, segment_rows
from hypertracker_source.snapshots.versions import DataVersion, SnapshotTable, snapshot_resource
from hypertracker_source.tables import (
    FILLS,
    HEATMAP,
    REJECTED_FILLS,
    RISK,
    SEGMENTS,
    SNAPSHOT_RESOURCES,
)

__all__ = ["RunStats", "hypertracker", "load_until_caught_up", "pending_fill_reads"]


@dlt.source(name=SOURCE_NAME)
def hypertracker(
    api_key: TSecretStrValue | None = None,
    base_url: str = API_BASE_URL,
    start_date: str | datetime | None = HISTORY_START,
    end_date: str | datetime | None = None,
    coins: ListSetting = None,
    address: str | None = None,
    side: str | None = None,
    heatmap_coins: ListSetting = DEFAULT_HEATMAP_COINS,
    segment_ids: ListSetting = None,
    page_size: int = FILLS_MAX_PAGE_SIZE,
    lag: float = DEFAULT_LAG.total_seconds(),
    max_fills_per_run: int = MAX_FILLS_PER_RUN,
    requests_per_minute: str | int | None = None,
    refresh_snapshots: bool = False,
    merge_strategy: str = "delete-insert",
    response_deadline: float = DEFAULT_RESPONSE_DEADLINE,
    max_body_mb: dict[str, float] | None = None,
    plan: str | None = None,
    daily_request_budget: int | str | None = None,
    monthly_request_budget: int | str | None = None,
    run_stats: RunStats | None = None,
) -> Sequence[DltResource]:
    """HyperTracker's liquidation fills, heatmaps and cohort risk, and the cohorts themselves.

    Every argument but run_stats is a setting, declared once in hypertracker_source/config/
    settings.py (what each does: the README's Settings table); each also resolves from
    `[sources.hypertracker]` in .dlt/config.toml and .dlt/secrets.toml, or from
    SOURCES__HYPERTRACKER__<NAME> environment variables.
    Before its first request, the source readies the destination of the pipeline running it (see
    `destinations.profiles.prepare`: a DuckDB file named like the dataset is refused, MySQL's
    staging tables get the index their merge needs).

    Args:
        run_stats: Receives what the run spent and saw: every API request by endpoint (fills,
            export, risk, segments, status), retries included, and the API's state status.
    """
    given = locals()
    settings = resolve_settings(**{setting.name: given[setting.name] for setting in SETTINGS})
    use_returning_memory_pool()
    ledger = active_pipeline_ledger(settings.budget)
    client = HyperTrackerClient(
        settings.base_url,
        settings.api_key,
        settings.requests_per_minute,
        run_stats,
        before_first_request=prepare_running_pipeline,
        response_deadline=settings.response_deadline,
        max_body_bytes=settings.max_body_bytes,
        ledger=ledger,
    )
    data_version = DataVersion(client, known=client.stats.status)
    queries = fill_windows(
        settings.fills,
        data_version,
        ledger,
        partial(requests_ahead, settings, client.stats, data_version),
    )
    fills = queries | liquidation_fills(client, data_version)
    heatmap = snapshot_resource(
        heatmap_table(client),
        settings.heatmap_coins,
        data_version,
        settings.refresh_snapshots,
    )
    risk = [
        snapshot_resource(
            risk_table(client, segment_id),
            [segment_id],
            data_version,
            settings.refresh_snapshots,
        )
        for segment_id in settings.segment_ids
    ]
    tables = (fills, heatmap, *risk, segments(client))
    merge: TMergeDispositionDict = {
        "disposition": "merge",
        "strategy": settings.merge_strategy,
    }
    for resource in tables:
        resource.apply_hints(write_disposition=merge)
        resource.add_map(ledger.keep_in_state)
    declare_table_variant(
        fills,
        REJECTED_FILLS.name,
        primary_key=REJECTED_FILLS.primary_key,
        columns=REJECTED_FILLS.columns,
        write_disposition=merge,
    )
    return (queries, *tables)


def snapshot_requests_due(
    settings: SourceSettings,
    resources: dict[str, Any],
    version: str,
    selected: Collection[str] | None = None,
) -> Counter[str]:
    """The heatmap and risk requests a run makes at this data version, per endpoint: each key
    whose resource state has not loaded it (every key with refresh_snapshots), of the resources
    selected (all when not said)."""

    def due(resource: str, key: str) -> bool:
        if selected is not None and resource not in selected:
            return False
        loaded = resources.get(resource, {}).get("loaded_versions", {}).get(key)
        return settings.refresh_snapshots or loaded != version

    return Counter(
        {
            endpoints.HEATMAP_EXPORT.name: sum(
                due(HEATMAP.name, coin) for coin in settings.heatmap_coins
            ),
            endpoints.RISK.name: sum(
                due(risk_resource_name(id_), str(id_)) for id_ in settings.segment_ids
            ),
        }
    )


def requests_ahead(settings: SourceSettings, stats: RunStats, data_version: DataVersion) -> int:
    """The requests of a run other than fills pages that it has still to make: the snapshots due
    at the API's data version, and the segments, of the resources this run extracts."""
    resources = dlt.current.source_state().get("resources", {})
    selected = dlt.current.source().selected_resources
    snapshots = [name for name in selected if name in SNAPSHOT_RESOURCES]
    version = data_version.last_update.isoformat() if snapshots else ""
    due = snapshot_requests_due(settings, resources, version, snapshots)
    segments_due = SEGMENTS.name in selected and not stats.requests[endpoints.SEGMENTS.name]
    return sum(due.values()) + segments_due


def declare_table_variant(resource: DltResource, table_name: str, **hints: Any) -> None:
    """Declares another table a resource writes to, with these hints and no others."""
    # Hand-written: dlt starts a table variant from a copy of the resource's hints, its columns
    # included; declaring it first with no columns clears them.
    resource.apply_hints(table_name=table_name, columns={}, create_table_variant=True)
    resource.apply_hints(table_name=table_name, create_table_variant=True, **hints)


@dlt.resource(name="fill_windows", selected=False)
def fill_windows(
    plan: FillsPlan,
    data_version: DataVersion,
    ledger: SpendLedger,
    reserved: Callable[[], int],
) -> Iterator[FillQuery]:
    """The fills reads of this run, windows and walks of each filter, for the fills transformer.

    It plans them into the fills state, each filter's into its marks, which the transformer's
    reads report their pages to. Records the API data version it read at, when known, for
    `hypertracker status`. The pages fit what the request budget leaves after the run's other
    requests ahead; with none left and reads pending, the run stops here, before any request.
    """
    ledger.keep_in_state(None)
    state = running_fills_state()
    left = ledger.left()
    budget = RunBudget(plan, None if left is None else left - reserved())
    if budget.requests_spent and pending_reads(state):
        raise ledger.spent_error()
    yield from fill_queries(plan, state, lambda: data_version.last_update, budget)
    if data_version.known:
        dlt.current.source_state()[DATA_VERSION_KEY] = data_version.known["lastUpdate"]


@dlt.transformer(
    name=FILLS.name,
    primary_key=FILLS.primary_key,
    columns=FILLS.columns,
    parallelized=True,
)
def liquidation_fills(
    query: FillQuery, client: HyperTrackerClient, data_version: DataVersion
) -> Iterator[Any]:
    """The liquidation fills of one read: dlt reads a run's reads and filters side by side.

    Fills that break the data contract go to their own table, stamped with the data version.
    """
    for item in batched(read_fills(client, query), FILLS_ROWS_PER_ITEM):
        if isinstance(item, RejectedFills):
            stamped = item.stamped(data_version.last_update)
            yield dlt.mark.with_table_name(stamped, REJECTED_FILLS.name)
        else:
            yield item


def heatmap_table(client: HyperTrackerClient) -> SnapshotTable:
    """`liquidation_heatmap`: each coin's heatmap, one row per price bin, per API data version."""
    return SnapshotTable(
        name=HEATMAP.name,
        keys_name="heatmap_coins",
        table_name=HEATMAP.name,
        primary_key=HEATMAP.primary_key,
        columns=HEATMAP.columns,
        fetch=partial(heatmap_tables, client),
    )


def risk_table(client: HyperTrackerClient, segment_id: int) -> SnapshotTable:
    """`liquidation_risk_<cohort>`: a cohort's risk by coin, per API data version, into
    `liquidation_risk`."""
    return SnapshotTable(
        name=risk_resource_name(segment_id),
        keys_name=f"segment_{segment_id}",
        table_name=RISK.name,
        primary_key=RISK.primary_key,
        columns=RISK.columns,
        fetch=partial(risk_tables, client),
    )


@dlt.resource(name=SEGMENTS.name, primary_key=SEGMENTS.primary_key, columns=SEGMENTS.columns)
def segments(client: HyperTrackerClient) -> Iterator[list[dict[str, Any]]]:
    """The wallet cohorts, so that segment ids in risk and heatmap rows join to names."""
    yield segment_rows(client)
