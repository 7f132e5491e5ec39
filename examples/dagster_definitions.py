"""Dagster assets for HyperTracker with dagster-dlt: fills in daily partitions, and snapshots.

Load with `dagster dev -f examples/dagster_definitions.py`; install the source with
`pip install -e ".[examples]"` in its clone.
Settings resolve from dlt config: SOURCES__HYPERTRACKER__API_KEY (or .dlt/secrets.toml) and
DESTINATION__POSTGRES__CREDENTIALS (postgresql://user:password@host:5432/database).

- `dlt_hypertracker_fills_liquidation_fills`, partitioned by day: each partition back-fills the
  fills of its day, from midnight up to (not including) the next, so no two partitions share a
  fill. A back-fill with an end date leaves the incremental marks alone. Each partition runs in
  a dlt pipeline of its own, with its own working folder and staging schema, so a back-fill of
  many days runs as independent partitions side by side. A daily schedule loads yesterday. A
  day is bounded, so a partition reads it whole, in one load package (`max_fills_per_run`
  chunks only the incremental history, whose marks are state).
- The heatmaps, cohort risk and cohorts: current snapshots only (the API keeps no history), one
  unpartitioned asset group loaded every 30 minutes; a run in an already loaded API data version
  costs one request.

The fills are stored under their own dlt schema name, `hypertracker_fills`: pipelines that load
different tables into one dataset under one schema name would overwrite each other's schema.
"""

from collections.abc import Iterator
from typing import Any

import dlt
from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    DailyPartitionsDefinition,
    Definitions,
    RetryPolicy,
    ScheduleDefinition,
    build_schedule_from_partitioned_job,
    define_asset_job,
)
from dagster_dlt import DagsterDltResource, dlt_assets

from hypertracker_source import hypertracker
from hypertracker_source.config.defaults import HISTORY_START

DATASET = "hypertracker"
FILLS_SCHEMA = "hypertracker_fills"
DAILY = DailyPartitionsDefinition(start_date=HISTORY_START[:10])


def fills_source(**settings: Any) -> Any:
    """The source's fills alone, under a schema name of their own."""
    return hypertracker(**settings).with_resources("liquidation_fills").clone(FILLS_SCHEMA)


def partition_pipeline(day: str) -> dlt.Pipeline:
    """A pipeline for one day's partition: its own working folder and staging schema."""
    suffix = day.replace("-", "")
    return dlt.pipeline(
        pipeline_name=f"hypertracker_fills_{suffix}",
        destination=dlt.destinations.postgres(staging_dataset_name_layout=f"%s_staging_{suffix}"),
        dataset_name=DATASET,
    )


def drop_staging_schema(pipeline: dlt.Pipeline) -> None:
    """Drops a partition's staging schema once its load is merged, so none pile up."""
    with pipeline.sql_client() as client, client.with_staging_dataset():
        if client.has_dataset():
            client.drop_dataset()


@dlt_assets(
    dlt_source=fills_source(),
    dlt_pipeline=dlt.pipeline("hypertracker_fills", destination="postgres", dataset_name=DATASET),
    name="hypertracker_fills",
    group_name="hypertracker",
    partitions_def=DAILY,
    backfill_policy=BackfillPolicy.multi_run(1),
)
def hypertracker_fills(context: AssetExecutionContext, dlt: DagsterDltResource) -> Iterator[Any]:
    """One day of liquidation fills, back-filled from midnight to midnight."""
    window = context.partition_time_window
    pipeline = partition_pipeline(context.partition_key)
    source = fills_source(start_date=window.start, end_date=window.end)
    yield from dlt.run(context=context, dlt_source=source, dlt_pipeline=pipeline)
    drop_staging_schema(pipeline)


def snapshots_source() -> Any:
    """The source's heatmaps, cohort risk and cohorts: everything but the fills."""
    source = hypertracker()
    return source.with_resources(
        *(name for name in source.selected_resources if name != "liquidation_fills")
    )


@dlt_assets(
    dlt_source=snapshots_source(),
    dlt_pipeline=dlt.pipeline(
        "hypertracker_snapshots", destination="postgres", dataset_name=DATASET
    ),
    name="hypertracker_snapshots",
    group_name="hypertracker",
)
def hypertracker_snapshots(
    context: AssetExecutionContext, dlt: DagsterDltResource
) -> Iterator[Any]:
    """The heatmaps and cohort risk of the API's current data version, and the cohorts."""
    yield from dlt.run(context=context)


# Partitions that start together on an empty dataset race to create its tables; the one that
# loses fails at once and, retried, finds them there.
fills_job = define_asset_job(
    "hypertracker_fills_job",
    selection=[hypertracker_fills],
    partitions_def=DAILY,
    op_retry_policy=RetryPolicy(max_retries=2, delay=5),
)
snapshots_job = define_asset_job("hypertracker_snapshots_job", selection=[hypertracker_snapshots])

defs = Definitions(
    assets=[hypertracker_fills, hypertracker_snapshots],
    jobs=[fills_job, snapshots_job],
    schedules=[
        build_schedule_from_partitioned_job(fills_job, hour_of_day=2),
        ScheduleDefinition(job=snapshots_job, cron_schedule="*/30 * * * *"),
    ],
    resources={"dlt": DagsterDltResource()},
)
