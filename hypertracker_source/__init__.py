"""A dlt source for HyperTracker's Hyperliquid liquidation data: fills, heatmaps, cohort risk."""

from hypertracker_source.runs.malloc import use_returning_malloc  # isort: split

# Before any other import: importing pyarrow and dlt starts threads, and glibc gives each an arena
# of its own that a later cap does not take back (runs/malloc.py). A command, like any user of the
# source, imports this package first.
use_returning_malloc()

from collections import Counter
from collections.abc import Callable, Collection, Iterator, Sequence
from datetime import datetime
from functools import partial
from typing import Any

import dlt
from dlt.common.schema.typing import TMergeDispositionDict
from dlt.common.typing import TSecretStrValue
from dlt.sources import DltResource

from hypertracker_source.api.budget import SpendLedger, active_pipeline_ledger
from hypertracker_source.api.client import HyperTrackerClient, RunStats
from hypertracker_source.api.endpoints import HEATMAP_EXPORT, RISK, SEGMENTS
from hypertracker_source.config.defaults import (
    API_BASE_URL,
    DATA_VERSION_KEY,
    DEFAULT_HEATMAP_COINS,
    DEFAULT_LAG,
    DEFAULT_RESPONSE_DEADLINE,
    FILLS_MAX_PAGE_SIZE,
    FILLS_RESOURCE,
    FILLS_ROWS_PER_ITEM,
    HISTORY_START,
    MAX_FILLS_PER_RUN,
    REJECTED_FILLS_TABLE,
)
from hypertracker_source.config.resolve import (
    FillsPlan,
    ListSetting,
    SourceSettings,
    resolve_settings,
)
from hypertracker_source.destinations.duckdb import check_duckdb_dataset
from hypertracker_source.fills.contract import (
    REJECTED_FILL_COLUMNS,
    REJECTED_FILL_KEY,
    RejectedFills,
)
from hypertracker_source.fills.marks import pending_reads, plan_run
from hypertracker_source.fills.reads import FillQuery, batched, read_fills
from hypertracker_source.runs.chunks import load_until_caught_up, pending_fill_reads
from hypertracker_source.runs.memory import use_returning_memory_pool
from hypertracker_source.schema import (
    FILL_FIELDS,
    FILL_PRIMARY_KEY,
    HEATMAP_FIELDS,
    HEATMAP_PRIMARY_KEY,
    RISK_FIELDS,
    RISK_PRIMARY_KEY,
    SEGMENT_COLUMNS,
    SEGMENT_ID,
    SNAPSHOT_AT,
    column_hints,
)
from hypertracker_source.snapshots.heatmap import heatmap_tables
from hypertracker_source.snapshots.risk import risk_resource_name, risk_tables, segment_rows
from hypertracker_source.snapshots.versions import DataVersion, SnapshotTable, snapshot_resource

__all__ = ["RunStats", "hypertracker", "load_until_caught_up", "pending_fill_reads"]


SEGMENTS_RESOURCE = "segments"
HEATMAP_RESOURCE = "liquidation_heatmap"
"""The heatmaps' resource, whose state records the data version each coin last loaded."""


@dlt.source(name="hypertracker")
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

    Every argument also resolves from `[sources.hypertracker]` in .dlt/config.toml and
    .dlt/secrets.toml, or from SOURCES__HYPERTRACKER__<NAME> environment variables.

    Args:
        api_key: The HyperTracker API token (a secret).
        base_url: The API's address.
        start_date: Where fill history starts (ISO 8601 or datetime); moved earlier later on,
            the history it adds is loaded once.
        end_date: Makes the run a back-fill of fills from start_date up to (not including)
            end_date, which leaves the incremental high-water marks as they are; unset for
            incremental loads.
        coins: Fills of these coins only, each with its own high-water mark; all markets if unset.
        address: Fills of this wallet only.
        side: Fills of this side only: A (ask, sell) or B (bid, buy).
        heatmap_coins: The coins whose liquidation heatmap to load.
        segment_ids: The cohorts whose liquidation risk to load; all 16 if unset.
        page_size: Fills per request, 1 to 1000.
        lag: Seconds below the newest fill it had read that each run reads again, for fills
            the API indexes late.
        max_fills_per_run: At most this many fills a run reads (about one request per 1,000);
            a long history loads over several runs, each its own load package with its marks,
            and `load_until_caught_up` runs them back to back. 0: no limit.
        requests_per_minute: Pace every request to this rate: a number, or a plan name
            (pulse, surge, flow, stream); unpaced if unset.
        refresh_snapshots: Fetch heatmaps and risk even when the API's data version is loaded.
        merge_strategy: How every table merges on its key: delete-insert (SQL databases) or
            upsert (delta or iceberg tables on the filesystem destination).
        response_deadline: Seconds one answer may take, connection to last byte; retried
            like a read timeout when it takes longer.
        max_body_mb: Megabytes an answer's body may hold, by kind (fills, risk, segments,
            status, export, heatmap_file, heatmap_inflated); unset kinds keep their defaults.
        plan: The API plan (free, pulse, surge, flow, stream): sets the two budgets and
            requests_per_minute, each unless set on its own.
        daily_request_budget: At most this many API requests (usage tokens) per UTC day, retries
            included, counted across runs in the pipeline's state; a run that reaches it stops
            with HyperTrackerBudgetError, keeping what it loaded.
        monthly_request_budget: The same per UTC month.
        run_stats: Receives what the run spent and saw: every API request by endpoint (fills,
            export, risk, segments, status), retries included, and the API's state status.
    """
    settings = resolve_settings(
        api_key=api_key,
        base_url=base_url,
        start_date=start_date,
        end_date=end_date,
        coins=coins,
        address=address,
        side=side,
        heatmap_coins=heatmap_coins,
        segment_ids=segment_ids,
        page_size=page_size,
        lag=lag,
        max_fills_per_run=max_fills_per_run,
        requests_per_minute=requests_per_minute,
        refresh_snapshots=refresh_snapshots,
        merge_strategy=merge_strategy,
        response_deadline=response_deadline,
        max_body_mb=max_body_mb,
        plan=plan,
        daily_request_budget=daily_request_budget,
        monthly_request_budget=monthly_request_budget,
    )
    use_returning_memory_pool()
    ledger = active_pipeline_ledger(settings.budget)
    client = HyperTrackerClient(
        settings.base_url,
        settings.api_key,
        settings.requests_per_minute,
        run_stats,
        before_first_request=check_duckdb_dataset,
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
        REJECTED_FILLS_TABLE,
        primary_key=REJECTED_FILL_KEY,
        columns=REJECTED_FILL_COLUMNS,
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
            HEATMAP_EXPORT.name: sum(
                due(HEATMAP_RESOURCE, coin) for coin in settings.heatmap_coins
            ),
            RISK.name: sum(due(risk_resource_name(id_), str(id_)) for id_ in settings.segment_ids),
        }
    )


def snapshot_resource_names(settings: SourceSettings) -> list[str]:
    """The names of the snapshot resources: the heatmaps', and each cohort's risk."""
    return [HEATMAP_RESOURCE, *(risk_resource_name(id_) for id_ in settings.segment_ids)]


def requests_ahead(settings: SourceSettings, stats: RunStats, data_version: DataVersion) -> int:
    """The requests of a run other than fills pages that it has still to make: the snapshots due
    at the API's data version, and the segments, of the resources this run extracts."""
    resources = dlt.current.source_state().get("resources", {})
    selected = dlt.current.source().selected_resources
    snapshots = [name for name in selected if name in snapshot_resource_names(settings)]
    version = data_version.last_update.isoformat() if snapshots else ""
    due = snapshot_requests_due(settings, resources, version, snapshots)
    segments_due = SEGMENTS_RESOURCE in selected and not stats.requests[SEGMENTS.name]
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

    The state it plans in is the fills transformer's, the one owner of every filter's marks: the
    reads it yields are that state's own records, which the transformer updates page by page.
    Records the API data version it read at, when known, for `hypertracker status`. The pages
    fit what the request budget leaves after the run's other requests ahead; with none left and
    reads pending, the run stops here, before any request.
    """
    ledger.keep_in_state(None)
    state = dlt.current.resource_state(FILLS_RESOURCE)
    left = ledger.left()
    pages = None if left is None else left - reserved()
    if pages is not None and pages <= 0 and pending_reads(state):
        raise ledger.spent_error()
    yield from plan_run(plan, state, lambda: data_version.last_update, pages)
    if data_version.known:
        dlt.current.source_state()[DATA_VERSION_KEY] = data_version.known["lastUpdate"]


@dlt.transformer(
    name=FILLS_RESOURCE,
    primary_key=FILL_PRIMARY_KEY,
    columns=column_hints(FILL_FIELDS),
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
            yield dlt.mark.with_table_name(stamped, REJECTED_FILLS_TABLE)
        else:
            yield item


def heatmap_table(client: HyperTrackerClient) -> SnapshotTable:
    """`liquidation_heatmap`: each coin's heatmap, one row per price bin, per API data version."""
    return SnapshotTable(
        name=HEATMAP_RESOURCE,
        keys_name="heatmap_coins",
        table_name="liquidation_heatmap",
        primary_key=HEATMAP_PRIMARY_KEY,
        columns=column_hints((*HEATMAP_FIELDS, SNAPSHOT_AT)),
        fetch=partial(heatmap_tables, client),
    )


def risk_table(client: HyperTrackerClient, segment_id: int) -> SnapshotTable:
    """`liquidation_risk_<cohort>`: a cohort's risk by coin, per API data version, into
    `liquidation_risk`."""
    return SnapshotTable(
        name=risk_resource_name(segment_id),
        keys_name=f"segment_{segment_id}",
        table_name="liquidation_risk",
        primary_key=RISK_PRIMARY_KEY,
        columns=column_hints((*RISK_FIELDS, SEGMENT_ID, SNAPSHOT_AT)),
        fetch=partial(risk_tables, client),
    )


@dlt.resource(name=SEGMENTS_RESOURCE, primary_key="id", columns=SEGMENT_COLUMNS)
def segments(client: HyperTrackerClient) -> Iterator[list[dict[str, Any]]]:
    """The wallet cohorts, so that segment ids in risk and heatmap rows join to names."""
    yield segment_rows(client)
