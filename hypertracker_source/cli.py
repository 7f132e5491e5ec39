"""The `hypertracker` command: load into any destination, run the offline demo, draw a report."""

import argparse
import contextlib
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt

from hypertracker_source import RunStats, hypertracker
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.mysql import index_merge_keys_on_mysql
from hypertracker_source.settings import (
    FOLLOW_MAX_BACKOFF,
    FOLLOW_MAX_SLEEP,
    FOLLOW_MIN_SLEEP,
    FOLLOW_POLL_MARGIN,
    TABLE_NAMES,
)
from hypertracker_source.simulator import Simulator

DEMO_API_KEY = "demo-key"
DEMO_SEED = 7
DEMO_FILLS = 20_000
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_REPORT = "hypertracker_demo.html"
LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file `hypertracker load` fills and `hypertracker report` reads by default."""
REPORT_PAGE = "hypertracker_report.html"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line."""
    parser = argparse.ArgumentParser(prog="hypertracker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser("load", help="load HyperTracker data with a dlt pipeline")
    add_load_options(load)
    load.add_argument(
        "--end-date",
        help="with --start-date: back-fill the fills from start to end date (marks stay put)",
    )
    load.add_argument("--demo", action="store_true", help="load from the bundled simulator")
    load.add_argument("--full-refresh", action="store_true", help="drop the tables and state first")

    demo = commands.add_parser(
        "demo", help=f"load everything offline into {DEMO_DATABASE} and write {DEMO_REPORT}"
    )
    demo.add_argument(
        "--fills", type=int, default=DEMO_FILLS, help=f"simulated fills ({DEMO_FILLS})"
    )

    report = commands.add_parser("report", help="write an HTML page with PNG charts of a dataset")
    report.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or a dlt destination name whose credentials resolve from dlt config "
        f"({LOCAL_DATABASE})",
    )
    report.add_argument("--dataset", default="hypertracker", help="the dataset to read")
    report.add_argument("--output", default=REPORT_PAGE, help=f"the page to write ({REPORT_PAGE})")

    follow = commands.add_parser(
        "follow", help="load once per API data version until stopped (SIGTERM, Ctrl-C)"
    )
    add_load_options(follow)
    add_follow_options(follow)

    init = commands.add_parser(
        "init", help="write .dlt/config.toml, a secrets template and a pipeline script here"
    )
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    return parser.parse_args(argv)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options `load` and `follow` share: where to load, and what."""
    parser.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or any dlt destination name ({LOCAL_DATABASE})",
    )
    parser.add_argument("--pipeline-name", default="hypertracker", help="dlt pipeline name")
    parser.add_argument("--dataset", default="hypertracker", help="dataset (schema) to load into")
    parser.add_argument("--resources", help="comma-separated resources to load (default all)")
    parser.add_argument("--start-date", help="where fill history starts on a first run")
    parser.add_argument("--coins", help="comma-separated coins whose fills to load")
    parser.add_argument("--heatmap-coins", help="comma-separated coins whose heatmap to load")
    parser.add_argument("--segments", help="comma-separated segment ids whose risk to load")


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    """The options of `follow`: how long it sleeps, in seconds."""
    parser.add_argument(
        "--poll-margin",
        type=float,
        default=FOLLOW_POLL_MARGIN,
        help=f"seconds past the API's announced next update to ask again ({FOLLOW_POLL_MARGIN:g})",
    )
    parser.add_argument(
        "--min-sleep",
        type=float,
        default=FOLLOW_MIN_SLEEP,
        help=f"shortest sleep, when the update is late; first backoff ({FOLLOW_MIN_SLEEP:g})",
    )
    parser.add_argument(
        "--max-sleep",
        type=float,
        default=FOLLOW_MAX_SLEEP,
        help=f"longest sleep between two status requests ({FOLLOW_MAX_SLEEP:g})",
    )
    parser.add_argument(
        "--max-backoff",
        type=float,
        default=FOLLOW_MAX_BACKOFF,
        help=f"longest sleep after failures in a row ({FOLLOW_MAX_BACKOFF:g})",
    )


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest resolve from dlt config."""
    names = {
        "start_date": "start_date",
        "end_date": "end_date",
        "coins": "coins",
        "heatmap_coins": "heatmap_coins",
        "segments": "segment_ids",
    }
    return {
        setting: getattr(args, arg) for arg, setting in names.items() if getattr(args, arg, None)
    }


@contextlib.contextmanager
def demo_api(fills: int = DEMO_FILLS) -> Iterator[dict[str, str]]:
    """Runs the bundled simulator and yields the source settings that point at it."""
    with Simulator(seed=DEMO_SEED, fills=fills, api_key=DEMO_API_KEY) as simulator:
        yield {"api_key": DEMO_API_KEY, "base_url": simulator.url}


def run_load(
    pipeline: dlt.Pipeline,
    settings: dict[str, Any],
    resources: str | None = None,
    refresh: bool = False,
    stats: RunStats | None = None,
    summary: bool = True,
) -> RunStats:
    """Runs the source through the pipeline and prints what landed and what it cost.

    A load an interrupted run left behind is finished first: dlt's `run` would otherwise load only
    that and skip the source. Into MySQL or MariaDB, the staging tables' keys get the index the
    next merge needs (see hypertracker_source/mysql.py). `stats` may come with the API's status
    already asked (by follow), which prints its own line instead of the summary.
    """
    stats = RunStats() if stats is None else stats
    source = hypertracker(**settings, run_stats=stats)
    if resources:
        source = source.with_resources(*(name.strip() for name in resources.split(",")))
    if pipeline.has_pending_data:
        print("Finishing the load an interrupted run left behind first.")
        pipeline.normalize()
        pipeline.load()
    pipeline.run(source, refresh="drop_sources" if refresh else None)
    index_merge_keys_on_mysql(pipeline)
    if summary:
        print_summary(pipeline, stats)
    return stats


def print_summary(pipeline: dlt.Pipeline, stats: RunStats) -> None:
    """Prints rows landed per table, requests spent per endpoint and the API's data version."""
    row_counts = pipeline.last_trace.last_normalize_info.row_counts
    print(f"\nLoaded into {pipeline.destination.destination_name} dataset {pipeline.dataset_name}:")
    for table in TABLE_NAMES:
        if table in row_counts:
            print(f"  {table:<22} {row_counts[table]:>10,} rows")
    spent = ", ".join(f"{endpoint} {count}" for endpoint, count in sorted(stats.requests.items()))
    print(f"API requests: {sum(stats.requests.values())} ({spent or 'none'})")
    if stats.status:
        print(
            f"Data version: {stats.status.get('lastUpdate')}; "
            f"the API updates next at {stats.status.get('nextUpdate')}"
        )


def command_load(args: argparse.Namespace) -> None:
    """Runs `hypertracker load`."""
    pipeline = pipeline_from_args(args, progress="log")
    with demo_api() if args.demo else contextlib.nullcontext({}) as demo_settings:
        settings = {**source_settings(args), **demo_settings}
        run_load(pipeline, settings, args.resources, args.full_refresh)


def pipeline_from_args(args: argparse.Namespace, **options: Any) -> dlt.Pipeline:
    """The pipeline that --pipeline-name, --destination and --dataset name."""
    return dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination=destination_arg(args.destination, args.dataset),
        dataset_name=args.dataset,
        **options,
    )


def command_follow(args: argparse.Namespace) -> None:
    """Runs `hypertracker follow` until SIGTERM or Ctrl-C."""
    # imported here: follow uses this module's run_load and root_cause
    from hypertracker_source.follow import FollowTiming, StoppableClock, follow, stop_on_signals

    clock = StoppableClock()
    stop_on_signals(clock)
    timing = FollowTiming(args.poll_margin, args.min_sleep, args.max_sleep, args.max_backoff)
    pipeline = pipeline_from_args(args)
    loads = follow(pipeline, source_settings(args), run_load, clock, timing, args.resources)
    print(f"hypertracker follow: stopped after {loads} loads")


def command_init(args: argparse.Namespace) -> None:
    """Runs `hypertracker init`: the project files, in the current folder."""
    from hypertracker_source.scaffold import write_project

    write_project(Path.cwd(), args.force)


def command_demo(args: argparse.Namespace) -> None:
    """Runs `hypertracker demo`: the simulator, loaded in full into a local DuckDB file, drawn."""
    # imported here, before the load, so that a missing matplotlib fails the demo at once
    from hypertracker_source.report import write_report

    pipeline = dlt.pipeline(
        pipeline_name="hypertracker_demo",
        destination=dlt.destinations.duckdb(DEMO_DATABASE),
        dataset_name="hypertracker",
        progress="log",
    )
    with demo_api(args.fills) as settings:
        run_load(pipeline, settings, refresh=True)
    print(f"\nQuery it: duckdb {DEMO_DATABASE} 'SELECT * FROM hypertracker.liquidation_fills'")
    print_written(write_report(pipeline.dataset(), Path(DEMO_REPORT)))


def command_report(args: argparse.Namespace) -> None:
    """Runs `hypertracker report`: the page and charts of a loaded dataset."""
    # imported here: only the report needs matplotlib, an optional extra
    from hypertracker_source.report import stored_dataset, write_report

    if args.destination.endswith(".duckdb") and not Path(args.destination).is_file():
        raise HyperTrackerError(
            f"No DuckDB file at {args.destination}: load one with `hypertracker load` or "
            "`hypertracker demo` first, or name it (or another destination) with --destination"
        )
    dataset = stored_dataset(destination_arg(args.destination, args.dataset), args.dataset)
    print_written(write_report(dataset, Path(args.output)))


def destination_arg(destination: str, dataset: str) -> Any:
    """The --destination option as dlt takes it: a DuckDB file's destination, or the name."""
    if destination == "duckdb":
        destination = LOCAL_DATABASE
    if not destination.endswith(".duckdb"):
        return destination
    if Path(destination).stem == dataset:
        raise HyperTrackerError(
            f"--destination {destination} and --dataset {dataset} share a name, and DuckDB "
            "then cannot tell the dataset from the file: rename one of them"
        )
    return dlt.destinations.duckdb(destination)


def print_written(paths: list[Path]) -> None:
    """Prints where the report went."""
    page, *charts = paths
    print(f"\nReport: {page} (open it in a browser), with {len(charts)} PNG charts beside it")


def root_cause(error: BaseException) -> BaseException:
    """The innermost cause of an error, past dlt's pipeline-step wrappers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hypertracker` command."""
    args = parse_args(argv)
    command = {
        "load": command_load,
        "demo": command_demo,
        "report": command_report,
        "follow": command_follow,
        "init": command_init,
    }[args.command]
    try:
        command(args)
    except Exception as error:
        cause = root_cause(error)
        reason = " ".join(str(cause).split())
        print(f"hypertracker: error: {type(cause).__name__}: {reason}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
