"""The `hypertracker` command: load into any destination, or run the offline demo."""

import argparse
import contextlib
import sys
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

import dlt

from hypertracker_source import RunStats, hypertracker
from hypertracker_source.simulator import Simulator

DEMO_API_KEY = "demo-key"
DEMO_DATABASE = "hypertracker_demo.duckdb"
TABLES = ("liquidation_fills", "liquidation_heatmap", "liquidation_risk", "segments")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line."""
    parser = argparse.ArgumentParser(prog="hypertracker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser("load", help="load HyperTracker data with a dlt pipeline")
    load.add_argument("--destination", default="duckdb", help="any dlt destination (duckdb)")
    load.add_argument("--pipeline-name", default="hypertracker", help="dlt pipeline name")
    load.add_argument("--dataset", default="hypertracker", help="dataset (schema) to load into")
    load.add_argument("--resources", help="comma-separated resources to load (default all)")
    load.add_argument("--start-date", help="where fill history starts on a first run")
    load.add_argument("--coins", help="comma-separated coins whose fills to load")
    load.add_argument("--heatmap-coins", help="comma-separated coins whose heatmap to load")
    load.add_argument("--segments", help="comma-separated segment ids whose risk to load")
    load.add_argument("--demo", action="store_true", help="load from the bundled simulator")
    load.add_argument("--full-refresh", action="store_true", help="drop the tables and state first")

    demo = commands.add_parser("demo", help=f"load everything offline into {DEMO_DATABASE}")
    demo.add_argument("--fills", type=int, default=20_000, help="simulated fills (20000)")
    return parser.parse_args(argv)


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest resolve from dlt config."""
    names = {
        "start_date": "start_date",
        "coins": "coins",
        "heatmap_coins": "heatmap_coins",
        "segments": "segment_ids",
    }
    return {setting: getattr(args, arg) for arg, setting in names.items() if getattr(args, arg)}


@contextlib.contextmanager
def demo_api(fills: int = 20_000) -> Iterator[dict[str, str]]:
    """Runs the bundled simulator and yields the source settings that point at it."""
    with Simulator(seed=7, fills=fills, api_key=DEMO_API_KEY) as simulator:
        yield {"api_key": DEMO_API_KEY, "base_url": simulator.url}


def run_load(
    pipeline: dlt.Pipeline,
    settings: dict[str, Any],
    resources: str | None = None,
    refresh: bool = False,
) -> RunStats:
    """Runs the source through the pipeline and prints what landed and what it cost."""
    stats = RunStats()
    source = hypertracker(**settings, run_stats=stats)
    if resources:
        source = source.with_resources(*(name.strip() for name in resources.split(",")))
    pipeline.run(source, refresh="drop_sources" if refresh else None)
    print_summary(pipeline, stats)
    return stats


def print_summary(pipeline: dlt.Pipeline, stats: RunStats) -> None:
    """Prints rows landed per table, requests spent per endpoint and the API's data version."""
    row_counts = pipeline.last_trace.last_normalize_info.row_counts
    print(f"\nLoaded into {pipeline.destination.destination_name} dataset {pipeline.dataset_name}:")
    for table in TABLES:
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
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination=args.destination,
        dataset_name=args.dataset,
        progress="log",
    )
    with demo_api() if args.demo else contextlib.nullcontext({}) as demo_settings:
        settings = {**source_settings(args), **demo_settings}
        run_load(pipeline, settings, args.resources, args.full_refresh)


def command_demo(args: argparse.Namespace) -> None:
    """Runs `hypertracker demo`: the simulator, loaded in full into a local DuckDB file."""
    pipeline = dlt.pipeline(
        pipeline_name="hypertracker_demo",
        destination=dlt.destinations.duckdb(DEMO_DATABASE),
        dataset_name="hypertracker",
        progress="log",
    )
    with demo_api(args.fills) as settings:
        run_load(pipeline, settings, refresh=True)
    print(f"\nQuery it: duckdb {DEMO_DATABASE} 'SELECT * FROM hypertracker.liquidation_fills'")


def root_cause(error: BaseException) -> BaseException:
    """The innermost cause of an error, past dlt's pipeline-step wrappers."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hypertracker` command."""
    args = parse_args(argv)
    command = {"load": command_load, "demo": command_demo}[args.command]
    try:
        command(args)
    except Exception as error:
        cause = root_cause(error)
        print(f"hypertracker: error: {type(cause).__name__}: {cause}", file=sys.stderr)
        traceback.print_exc(file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
