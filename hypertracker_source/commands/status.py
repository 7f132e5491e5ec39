"""`hypertracker status`: what a pipeline holds and how fresh it is, on one screen."""

import argparse
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt
from dlt.common.time import ensure_pendulum_datetime

from hypertracker_source.commands.check import status_within_budget
from hypertracker_source.commands.loading import left_to_read
from hypertracker_source.commands.options import AddCommand, add_load_options, pipeline_from_args
from hypertracker_source.config.defaults import (
    DATA_VERSION_KEY,
    EXIT_BEHIND,
    FILLS_RESOURCE,
    STATUS_MAX_BEHIND,
)
from hypertracker_source.config.settings import SOURCE_NAME
from hypertracker_source.runs import run_lock
from hypertracker_source.runs.chunks import pending_fill_reads
from hypertracker_source.tables import TABLE_NAMES


def register(add_command: AddCommand) -> None:
    """Adds `status` and its options to the command line."""
    status = add_command(
        "status",
        help="what a pipeline holds and how fresh it is; exits "
        f"{EXIT_BEHIND} when the data is too far behind",
    )
    add_load_options(status)
    status.add_argument(
        "--max-behind-hours",
        type=float,
        default=STATUS_MAX_BEHIND.total_seconds() / 3600,
        help="hours the loaded data version may trail the API's (or, --offline, the clock) "
        f"before the exit code is {EXIT_BEHIND} ({STATUS_MAX_BEHIND.total_seconds() / 3600:g})",
    )
    status.add_argument(
        "--offline", action="store_true", help="ask the API nothing (compare with the clock)"
    )
    status.add_argument("--json", action="store_true", help="print JSON for machines")
    status.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    """Runs `hypertracker status`; its exit code says whether the data is too far behind."""
    pipeline = pipeline_from_args(args)
    api = None if args.offline else status_within_budget(pipeline)
    version = api["lastUpdate"] if api else None
    max_behind = timedelta(hours=args.max_behind_hours)
    status = _pipeline_status(pipeline, version, datetime.now(timezone.utc), max_behind)
    print(json.dumps(status, indent=2) if args.json else _status_text(status))
    return EXIT_BEHIND if status["stale"] else 0


def lock_holder(pipeline: dlt.Pipeline) -> str | None:
    """Who holds the pipeline's run lock (process, host, since when), or None when nobody does."""
    holder = run_lock.lock_holder(pipeline)
    return holder.describe() if holder else None


def dataset_row(pipeline: dlt.Pipeline, sql: str) -> tuple[Any, ...] | None:
    """The one row a query of the pipeline's dataset returns; None when its table is missing."""
    try:
        return tuple(pipeline.dataset().query(sql).fetchall()[0])
    except Exception:
        return None


def _dataset_value(pipeline: dlt.Pipeline, sql: str) -> Any:
    """The one value a query of the pipeline's dataset returns; None when its table is missing."""
    row = dataset_row(pipeline, sql)
    return row[0] if row else None


def table_rows(pipeline: dlt.Pipeline) -> dict[str, int | None]:
    """Rows per table of the source in the pipeline's dataset; None for a table not there yet."""
    return {
        table: _dataset_value(pipeline, f"SELECT COUNT(*) FROM {table}") for table in TABLE_NAMES
    }


def newest_fill(pipeline: dlt.Pipeline) -> str | None:
    """The time of the newest fill landed, or None."""
    newest = _dataset_value(pipeline, f"SELECT MAX(time) FROM {FILLS_RESOURCE}")
    return None if newest is None else ensure_pendulum_datetime(newest).isoformat()


def loaded_version(pipeline: dlt.Pipeline) -> str | None:
    """The newest API data version the pipeline loaded (by its fills or its snapshots)."""
    source = pipeline.state.get("sources", {}).get(SOURCE_NAME, {})
    versions = [source.get(DATA_VERSION_KEY)] + [
        version
        for resource in source.get("resources", {}).values()
        for version in resource.get("loaded_versions", {}).values()
    ]
    known = [ensure_pendulum_datetime(version) for version in versions if version]
    return max(known).isoformat() if known else None


def last_run(pipeline: dlt.Pipeline) -> dict[str, Any] | None:
    """The last run of this pipeline on this machine: when it ended, and how."""
    trace = pipeline.last_trace
    if trace is None:
        return None
    failed = [step for step in trace.steps if step.step_exception]
    error = None
    if failed:
        last_line = str(failed[-1].step_exception).strip().splitlines()[-1]
        error = last_line.rsplit(" caused an exception: ", 1)[-1]
    return {
        "finished_at": trace.finished_at.isoformat() if trace.finished_at else None,
        "outcome": "failed" if failed else "succeeded",
        "error": error,
    }


def _pipeline_status(
    pipeline: dlt.Pipeline, api_version: str | None, now: datetime, max_behind: timedelta
) -> dict[str, Any]:
    """Everything `status` shows, and whether the data is further behind than `max_behind`:
    behind the API's version when it was asked, else behind the clock."""
    version = loaded_version(pipeline)
    reference = ensure_pendulum_datetime(api_version) if api_version else now
    behind = reference - ensure_pendulum_datetime(version) if version else None
    return {
        "pipeline": pipeline.pipeline_name,
        "dataset": pipeline.dataset_name,
        "rows": table_rows(pipeline),
        "newest_fill": newest_fill(pipeline),
        "loaded_version": version,
        "api_version": api_version,
        "behind_seconds": None if behind is None else max(0, int(behind.total_seconds())),
        "max_behind_seconds": int(max_behind.total_seconds()),
        "stale": behind is None or behind > max_behind,
        "pending_reads": pending_fill_reads(pipeline),
        "pending": left_to_read(pipeline),
        "last_run": last_run(pipeline),
        "lock_holder": lock_holder(pipeline),
    }


def _status_text(status: dict[str, Any]) -> str:
    """The status for people: one screen."""
    rows = status["rows"]
    lines = [f"Pipeline {status['pipeline']}, dataset {status['dataset']}:"]
    lines += [
        f"  {table:<22} {'no table' if count is None else f'{count:>10,} rows'}"
        for table, count in rows.items()
    ]
    behind = status["behind_seconds"]
    against = f"the API's {status['api_version']}" if status["api_version"] else "now (offline)"
    freshness = "nothing loaded" if behind is None else f"{behind / 3600:.1f} h behind {against}"
    limit = status["max_behind_seconds"] / 3600
    verdict = "STALE" if status["stale"] else "fresh"
    run = status["last_run"]
    run_text = (
        "none on this machine"
        if run is None
        else f"{run['outcome']} at {run['finished_at']}"
        + (f": {run['error']}" if run["error"] else "")
    )
    lines += [
        f"Newest fill: {status['newest_fill'] or 'none'}",
        f"Data version loaded: {status['loaded_version'] or 'none'}; {freshness} "
        f"({verdict}: at most {limit:g} h allowed)",
        f"Fills reads pending: {status['pending']}",
        f"Last run: {run_text}",
        f"Run lock: {status['lock_holder'] or 'free'}",
    ]
    return "\n".join(lines)
