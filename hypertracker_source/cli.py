"""The `hypertracker` command: load into any destination, run the offline demo, draw a report."""

import argparse
import contextlib
import sys
import traceback
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dlt
from dlt.common.exceptions import MissingDependencyException
from dlt.common.pipeline import LoadInfo
from dlt.extract.source import DltSource

from hypertracker_simulator import Simulator
from hypertracker_source import RunStats, hypertracker, load_until_caught_up, pending_fill_reads
from hypertracker_source.chunks import pending_span
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.settings import FILLS_RESOURCE, TABLE_NAMES

DEMO_API_KEY = "demo-key"
DEMO_SEED = 7
DEMO_FILLS = 20_000
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_REPORT = "hypertracker_demo.html"
LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file `hypertracker load` fills and `hypertracker report` reads by default."""
REPORT_PAGE = "hypertracker_report.html"
PLOTLY_INSTALL = "pip install plotly"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line."""
    parser = argparse.ArgumentParser(prog="hypertracker", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser("load", help="load HyperTracker data with a dlt pipeline")
    load.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or any dlt destination name ({LOCAL_DATABASE})",
    )
    load.add_argument("--pipeline-name", default="hypertracker", help="dlt pipeline name")
    load.add_argument("--dataset", default="hypertracker", help="dataset (schema) to load into")
    load.add_argument("--resources", help="comma-separated resources to load (default all)")
    load.add_argument("--start-date", help="where fill history starts on a first run")
    load.add_argument(
        "--end-date",
        help="with --start-date: back-fill the fills from start to end date (marks stay put)",
    )
    load.add_argument("--coins", help="comma-separated coins whose fills to load")
    load.add_argument("--heatmap-coins", help="comma-separated coins whose heatmap to load")
    load.add_argument("--segments", help="comma-separated segment ids whose risk to load")
    load.add_argument("--demo", action="store_true", help="load from the bundled simulator")
    load.add_argument("--full-refresh", action="store_true", help="drop the tables and state first")

    demo = commands.add_parser(
        "demo", help=f"load everything offline into {DEMO_DATABASE} and write {DEMO_REPORT}"
    )
    demo.add_argument(
        "--fills", type=int, default=DEMO_FILLS, help=f"simulated fills ({DEMO_FILLS})"
    )

    report = commands.add_parser(
        "report", help="write an interactive HTML page (one self-contained file) of a dataset"
    )
    report.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or a dlt destination name whose credentials resolve from dlt config "
        f"({LOCAL_DATABASE})",
    )
    report.add_argument("--dataset", default="hypertracker", help="the dataset to read")
    report.add_argument("--output", default=REPORT_PAGE, help=f"the page to write ({REPORT_PAGE})")

    models = commands.add_parser(
        "models", help="build and test the bundled dbt models in a loaded dataset"
    )
    models.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or a dlt destination name ({LOCAL_DATABASE})",
    )
    models.add_argument("--pipeline-name", default="hypertracker", help="dlt pipeline name")
    models.add_argument("--dataset", default="hypertracker", help="the dataset the models read")
    models.add_argument("--full-refresh", action="store_true", help="rebuild incremental models")
    models.add_argument("--skip-tests", action="store_true", help="build without the dbt tests")
    return parser.parse_args(argv)


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest resolve from dlt config."""
    names = {
        "start_date": "start_date",
        "end_date": "end_date",
        "coins": "coins",
        "heatmap_coins": "heatmap_coins",
        "segments": "segment_ids",
    }
    return {setting: getattr(args, arg) for arg, setting in names.items() if getattr(args, arg)}


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
) -> RunStats:
    """Runs the source through the pipeline, chunk after chunk until caught up, and prints what
    landed and what it cost.

    A load an interrupted run left behind is finished first: dlt's `run` would otherwise load only
    that and skip the source.
    """
    stats = RunStats()

    def make_source() -> DltSource:
        """The source of one chunk; every chunk counts into the same stats and reuses the status."""
        source = hypertracker(**settings, run_stats=stats)
        if resources:
            source = source.with_resources(*(name.strip() for name in resources.split(",")))
        return source

    if pipeline.has_pending_data:
        print("Finishing the load an interrupted run left behind first.")
        pipeline.normalize()
        pipeline.load()
    progress = ChunkProgress(pipeline, stats)
    load_until_caught_up(pipeline, make_source, progress.print_chunk, refresh)
    print_summary(pipeline, stats, progress.rows)
    return stats


class ChunkProgress:
    """Prints a line per chunk: the fills it landed, their time span, its requests, what is left."""

    def __init__(self, pipeline: dlt.Pipeline, stats: RunStats) -> None:
        self._pipeline = pipeline
        self._stats = stats
        self._requests_before = 0
        self.rows: Counter[str] = Counter()

    def print_chunk(self, number: int, load: LoadInfo) -> None:
        """Prints one chunk's line (for a load in more than one chunk) and adds up its rows."""
        trace = self._pipeline.last_trace
        normalize_info = trace.last_normalize_info if trace else None
        row_counts = normalize_info.row_counts if normalize_info else {}
        self.rows.update({table: row_counts.get(table, 0) for table in TABLE_NAMES})
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


def print_summary(pipeline: dlt.Pipeline, stats: RunStats, rows: Counter[str]) -> None:
    """Prints rows landed per table, requests spent per endpoint and the API's data version."""
    print(f"\nLoaded into {pipeline.destination.destination_name} dataset {pipeline.dataset_name}:")
    for table in TABLE_NAMES:
        if rows[table]:
            print(f"  {table:<22} {rows[table]:>10,} rows")
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
        destination=destination_arg(args.destination, args.dataset),
        dataset_name=args.dataset,
        progress="log",
    )
    with contextlib.ExitStack() as demo:
        demo_settings = demo.enter_context(demo_api()) if args.demo else {}
        settings = {**source_settings(args), **demo_settings}
        run_load(pipeline, settings, args.resources, args.full_refresh)


def command_demo(args: argparse.Namespace) -> None:
    """Runs `hypertracker demo`: the simulator, loaded in full into a local DuckDB file, drawn."""
    pipeline = dlt.pipeline(
        pipeline_name="hypertracker_demo",
        destination=dlt.destinations.duckdb(DEMO_DATABASE),
        dataset_name="hypertracker",
        progress="log",
    )
    with demo_api(args.fills) as settings:
        run_load(pipeline, settings, refresh=True)
    print(f"\nQuery it: duckdb {DEMO_DATABASE} 'SELECT * FROM hypertracker.liquidation_fills'")
    try:
        from hypertracker_source.report import write_report

        print_written(write_report(pipeline.dataset(), Path(DEMO_REPORT)))
    except MissingDependencyException:
        print(f"No report: it needs plotly, which is missing. Install it with {PLOTLY_INSTALL}")


def command_report(args: argparse.Namespace) -> None:
    """Runs `hypertracker report`: the page of a loaded dataset."""
    from hypertracker_source.report import stored_dataset, write_report

    if args.destination.endswith(".duckdb") and not Path(args.destination).is_file():
        raise HyperTrackerError(
            f"No DuckDB file at {args.destination}: load one with `hypertracker load` or "
            "`hypertracker demo` first, or name it (or another destination) with --destination"
        )
    dataset = stored_dataset(destination_arg(args.destination, args.dataset), args.dataset)
    print_written(write_report(dataset, Path(args.output)))


def command_models(args: argparse.Namespace) -> None:
    """Runs `hypertracker models`: dbt builds and tests the bundled models in the dataset."""
    from hypertracker_source.models import run_models

    if args.destination.endswith(".duckdb") and not Path(args.destination).is_file():
        raise HyperTrackerError(
            f"No DuckDB file at {args.destination}: load one with `hypertracker load` first, "
            "or name it (or another destination) with --destination"
        )
    pipeline = dlt.pipeline(
        pipeline_name=args.pipeline_name,
        destination=destination_arg(args.destination, args.dataset),
        dataset_name=args.dataset,
    )
    results = run_models(pipeline, args.full_refresh, not args.skip_tests)
    built = [result for result in results if result.status == "success"]
    passed = [result for result in results if result.status == "pass"]
    print(
        f"\nModels: {len(built)} built in dataset {args.dataset}"
        + ("" if args.skip_tests else f", {len(passed)} tests passed")
    )


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


def print_written(page: Path) -> None:
    """Prints where the report went."""
    size = page.stat().st_size / 1e6
    print(f"\nReport: {page} ({size:.1f} MB, works offline; open it in a browser)")


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
        "models": command_models,
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
