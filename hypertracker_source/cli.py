"""The `hypertracker` command: load into any destination, run the offline demo, draw a report."""

import argparse
import contextlib
import difflib
import json
import signal
import sys
import textwrap
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from importlib.metadata import version
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.exceptions import MissingDependencyException
from dlt.common.runtime.collector import NULL_COLLECTOR

from hypertracker_simulator import Simulator
from hypertracker_source.check import api_status, configured_client, configured_settings
from hypertracker_source.exceptions import HyperTrackerBudgetError, HyperTrackerError
from hypertracker_source.failures import (
    CommandInterrupted,
    headline,
    interrupted_headline,
    interrupting_signal,
    root_cause,
)
from hypertracker_source.follow import FollowTiming, StoppableClock, follow, stop_on_signals
from hypertracker_source.loading import run_load
from hypertracker_source.request_flow import interrupt_requests
from hypertracker_source.risk import risk_resource_name
from hypertracker_source.settings import (
    EXIT_BEHIND,
    EXIT_BUDGET_SPENT,
    FOLLOW_MAX_BACKOFF,
    FOLLOW_MAX_SLEEP,
    FOLLOW_MIN_SLEEP,
    FOLLOW_POLL_MARGIN,
    SEGMENT_NAMES,
    STATUS_MAX_BEHIND,
)

__all__ = ["main", "root_cause"]

DEMO_API_KEY = "demo-key"
DEMO_SEED = 7
DEMO_FILLS = 20_000
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_PIPELINE = "hypertracker_demo"
"""The demo's own pipeline, so that its state and simulated data never meet a real pipeline's."""
DEMO_DATASET = "hypertracker"
DEMO_REPORT = "hypertracker_demo.html"
LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file `hypertracker load` fills and `hypertracker report` reads by default."""
REPORT_PAGE = "hypertracker_report.html"
PLOTLY_INSTALL = "pip install plotly"
PIPELINE_NAME = "hypertracker"
DATASET = "hypertracker"
SETTING_VARIABLE = "SOURCES__HYPERTRACKER__{}"
PUBLIC_RESOURCES = (
    "liquidation_fills",
    "liquidation_heatmap",
    *(risk_resource_name(segment_id) for segment_id in sorted(SEGMENT_NAMES)),
    "segments",
)
"""The resources `--resources` takes; `liquidation_risk` stands for every cohort's."""
LOAD_EPILOG = f"""resources (--resources, comma-separated; default all):
{
    textwrap.fill(
        "liquidation_fills, liquidation_heatmap, segments, and liquidation_risk (every cohort) or "
        f"one cohort's: {', '.join(PUBLIC_RESOURCES[2:-1])}",
        width=90,
        initial_indent="  ",
        subsequent_indent="  ",
    )
}

settings also read from the environment or .dlt/config.toml / .dlt/secrets.toml:
  SOURCES__HYPERTRACKER__API_KEY      the API token (required, a secret)
  SOURCES__HYPERTRACKER__BASE_URL     the API's address (https://ht-api.coinmarketman.com)
  SOURCES__HYPERTRACKER__<SETTING>    any other setting of the source, e.g. PAGE_SIZE, LAG,
                                      REQUESTS_PER_MINUTE, SIDE, ADDRESS (see the README)
  RUNTIME__REQUEST_TIMEOUT (60 s), RUNTIME__REQUEST_MAX_ATTEMPTS (5): dlt's HTTP retries
  DESTINATION__<NAME>__CREDENTIALS    a destination's credentials, e.g. DESTINATION__POSTGRES__...

Pipeline state (the high-water marks) is kept in the destination and in dlt's pipelines
folder (~/.dlt/pipelines/<pipeline name>, or DLT_DATA_DIR): give two projects different
--pipeline-name values."""


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the traceback of an error, too",
    )
    parser = argparse.ArgumentParser(prog="hypertracker", description=__doc__, parents=[common])
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version('hypertracker-source')} (dlt {dlt.__version__})",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    load = commands.add_parser(
        "load",
        help="load HyperTracker data with a dlt pipeline",
        description="Load HyperTracker data with a dlt pipeline; each run reads only what is new.",
        parents=[common],
        epilog=LOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(load)
    load.add_argument(
        "--end-date",
        help="with --start-date: back-fill the fills from start to end date (marks stay put; "
        f"{SETTING_VARIABLE.format('END_DATE')})",
    )
    load.add_argument(
        "--demo",
        action="store_true",
        help=f"load from the bundled simulator, into the demo's own pipeline ({DEMO_PIPELINE}) "
        f"and file ({DEMO_DATABASE})",
    )
    load.add_argument("--full-refresh", action="store_true", help="drop the tables and state first")

    demo = commands.add_parser(
        "demo",
        help=f"load everything offline into {DEMO_DATABASE} and write {DEMO_REPORT}",
        parents=[common],
    )
    demo.add_argument(
        "--fills", type=int, default=DEMO_FILLS, help=f"simulated fills (default: {DEMO_FILLS})"
    )

    report = commands.add_parser(
        "report",
        help="write an interactive HTML page (one self-contained file) of a dataset",
        parents=[common],
    )
    report.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or a dlt destination name whose credentials resolve from dlt config "
        f"(default: {LOCAL_DATABASE})",
    )
    report.add_argument("--dataset", default=DATASET, help=f"the dataset to read ({DATASET})")
    report.add_argument(
        "--output", default=REPORT_PAGE, help=f"the page to write (default: {REPORT_PAGE})"
    )

    commands.add_parser(
        "check",
        help="one API request that proves the key and the address, and shows the data version",
        parents=[common],
    )

    models = commands.add_parser(
        "models", help="build and test the bundled dbt models in a loaded dataset", parents=[common]
    )
    models.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or a dlt destination name (default: {LOCAL_DATABASE})",
    )
    models.add_argument(
        "--pipeline-name", default=PIPELINE_NAME, help=f"dlt pipeline name ({PIPELINE_NAME})"
    )
    models.add_argument(
        "--dataset", default=DATASET, help=f"the dataset the models read ({DATASET})"
    )
    models.add_argument("--full-refresh", action="store_true", help="rebuild incremental models")
    models.add_argument("--skip-tests", action="store_true", help="build without the dbt tests")

    follow = commands.add_parser(
        "follow",
        help="load once per API data version until stopped (SIGTERM, Ctrl-C)",
        parents=[common],
        epilog=LOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(follow)
    add_follow_options(follow)

    plan = commands.add_parser(
        "plan",
        help="what the next run and a day of follow cost in requests, against the budget and "
        "each API plan (1 status request)",
        parents=[common],
    )
    add_load_options(plan)
    plan.add_argument("--json", action="store_true", help="print JSON for machines")

    status = commands.add_parser(
        "status",
        help="what a pipeline holds and how fresh it is; exits "
        f"{EXIT_BEHIND} when the data is too far behind",
        parents=[common],
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

    init = commands.add_parser(
        "init",
        help="write .dlt/config.toml, a secrets template and a pipeline script here",
        parents=[common],
    )
    init.add_argument("--force", action="store_true", help="overwrite files that exist")
    return parser.parse_args(argv)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options `load` and `follow` share: where to load, and what."""
    parser.add_argument(
        "--destination",
        help=f"a DuckDB file (in this folder unless a path), or any dlt destination name such "
        f"as postgres, whose credentials resolve from dlt config (default: {LOCAL_DATABASE})",
    )
    parser.add_argument(
        "--pipeline-name",
        help=f"dlt pipeline name, which keys its state (default: {PIPELINE_NAME})",
    )
    parser.add_argument("--dataset", help=f"dataset (schema) to load into (default: {DATASET})")
    parser.add_argument("--resources", help="comma-separated resources to load (default: all)")
    parser.add_argument(
        "--start-date",
        help="where fill history starts (default: 2025-07-27, the API's first day; "
        f"{SETTING_VARIABLE.format('START_DATE')})",
    )
    parser.add_argument(
        "--coins",
        help="comma-separated coins whose fills to load, case-sensitive (default: all markets; "
        f"{SETTING_VARIABLE.format('COINS')})",
    )
    parser.add_argument(
        "--heatmap-coins",
        help="comma-separated coins whose heatmap to load (default: BTC,ETH,HYPE; "
        f"{SETTING_VARIABLE.format('HEATMAP_COINS')})",
    )
    parser.add_argument(
        "--segments",
        help="comma-separated segment ids whose risk to load (default: all 16; "
        f"{SETTING_VARIABLE.format('SEGMENT_IDS')})",
    )


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


def command_load(args: argparse.Namespace) -> None:
    """Runs `hypertracker load`; with --demo, into the demo's own pipeline and file."""
    if args.demo:
        refuse_with_demo(args)
    pipeline = pipeline_from_args(args, demo=args.demo, progress=True)
    with contextlib.ExitStack() as demo:
        demo_settings = demo.enter_context(demo_api()) if args.demo else {}
        settings = {**source_settings(args), **demo_settings}
        run_load(pipeline, settings, args.resources, args.full_refresh)


def refuse_with_demo(args: argparse.Namespace) -> None:
    """Refuses options that would point the demo's simulated data at a real pipeline."""
    given = [
        option
        for option, value in (
            ("--pipeline-name", args.pipeline_name),
            ("--destination", args.destination),
            ("--dataset", args.dataset),
        )
        if value
    ]
    if given:
        raise HyperTrackerError(
            f"--demo loads simulated data into its own pipeline ({DEMO_PIPELINE}), file "
            f"({DEMO_DATABASE}) and dataset ({DEMO_DATASET}), so that they never reach a real "
            f"pipeline: drop {' and '.join(given)}, or drop --demo"
        )


def pipeline_from_args(
    args: argparse.Namespace, demo: bool = False, progress: bool = False
) -> dlt.Pipeline:
    """The pipeline that --pipeline-name, --destination and --dataset name, or the demo's own."""
    pipeline_name = DEMO_PIPELINE if demo else args.pipeline_name or PIPELINE_NAME
    dataset = args.dataset or (DEMO_DATASET if demo else DATASET)
    destination = args.destination or (DEMO_DATABASE if demo else LOCAL_DATABASE)
    return dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination_arg(destination, dataset),
        dataset_name=dataset,
        progress=dlt.progress.log(dump_system_stats=False) if progress else NULL_COLLECTOR,
    )


def command_follow(args: argparse.Namespace) -> None:
    """Runs `hypertracker follow` until SIGTERM or Ctrl-C."""
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
    pipeline = dlt.pipeline(
        pipeline_name=DEMO_PIPELINE,
        destination=destination_arg(DEMO_DATABASE, DEMO_DATASET),
        dataset_name=DEMO_DATASET,
        progress=dlt.progress.log(dump_system_stats=False),
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
    """The --destination option as dlt takes it: a DuckDB file's destination, or the name.

    A DuckDB file is named by its absolute path: dlt would otherwise look for a relative one
    where the pipeline first ran.
    """
    if destination == "duckdb":
        destination = LOCAL_DATABASE
    if not destination.endswith(".duckdb"):
        check_destination_name(destination)
        return destination
    if Path(destination).stem == dataset:
        raise HyperTrackerError(
            f"--destination {destination} and --dataset {dataset} share a name, and DuckDB "
            "then cannot tell the dataset from the file: rename one of them"
        )
    return dlt.destinations.duckdb(str(Path(destination).resolve()))


def check_destination_name(destination: str) -> None:
    """Refuses a destination name dlt does not know, suggesting the nearest it does."""
    try:
        Destination.from_reference(destination)
    except UnknownDestinationModule:
        known = sorted(dlt.destinations.__all__)
        near = difflib.get_close_matches(destination, known, n=1)
        hint = f"did you mean {near[0]}? " if near else ""
        raise HyperTrackerError(
            f"--destination {destination}: not a DuckDB file (name.duckdb) nor a dlt "
            f"destination; {hint}dlt knows {', '.join(known)}"
        ) from None


def print_written(page: Path) -> None:
    """Prints where the report went."""
    size = page.stat().st_size / 1e6
    print(f"\nReport: {page} ({size:.1f} MB, works offline; open it in a browser)")


def command_check(args: argparse.Namespace) -> None:
    """Runs `hypertracker check`: one request to the API's status, with the configured key."""
    client = configured_client()
    status = api_status(client)
    print(
        f"HyperTracker at {client.base_url} accepted the key (1 request). Data version: "
        f"{status.get('lastUpdate')}; the API updates next at {status.get('nextUpdate')}"
    )


def command_plan(args: argparse.Namespace) -> None:
    """Runs `hypertracker plan`: the cost of the next run and of a day of follow."""
    from hypertracker_source.plan import make_plan, plan_text

    pipeline = pipeline_from_args(args)
    settings = configured_settings(**source_settings(args))
    status = status_within_budget(pipeline) or {
        "lastUpdate": datetime.now(timezone.utc).isoformat()
    }
    plan = make_plan(pipeline, settings, status)
    print(json.dumps(plan, indent=2) if args.json else plan_text(plan))


def status_within_budget(pipeline: dlt.Pipeline) -> dict[str, str] | None:
    """The API's status (one request, counted in the pipeline's spend), or None when the
    request budget is spent, which it says."""
    try:
        return api_status(configured_client(pipeline=pipeline))
    except HyperTrackerBudgetError as spent:
        print(f"Not asking the API: {spent}", file=sys.stderr)
        return None


def command_status(args: argparse.Namespace) -> int:
    """Runs `hypertracker status`; its exit code says whether the data is too far behind."""
    from hypertracker_source.status import pipeline_status, status_text

    pipeline = pipeline_from_args(args)
    api = None if args.offline else status_within_budget(pipeline)
    version = api["lastUpdate"] if api else None
    max_behind = timedelta(hours=args.max_behind_hours)
    status = pipeline_status(pipeline, version, datetime.now(timezone.utc), max_behind)
    print(json.dumps(status, indent=2) if args.json else status_text(status))
    return EXIT_BEHIND if status["stale"] else 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int | None]] = {
    "load": command_load,
    "demo": command_demo,
    "report": command_report,
    "check": command_check,
    "models": command_models,
    "follow": command_follow,
    "init": command_init,
    "plan": command_plan,
    "status": command_status,
}


@contextlib.contextmanager
def interrupts_stop_requests() -> Iterator[None]:
    """Makes SIGINT and SIGTERM stop every request at once and end the command with an error."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signal_number: int, frame: Any) -> None:
        interrupt_requests(signal.Signals(signal_number).name)
        raise CommandInterrupted(signal_number)

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    for number in handlers:
        signal.signal(number, interrupt)
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hypertracker` command."""
    args = parse_args(argv)
    try:
        with interrupts_stop_requests():
            code = COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as error:
        signal_number = interrupting_signal(error)
        if signal_number is not None:
            print(interrupted_headline(signal_number), file=sys.stderr)
        else:
            print(headline(error), file=sys.stderr)
        if getattr(args, "debug", False):
            traceback.print_exc(file=sys.stderr)
        if signal_number is not None:
            return 128 + signal_number
        return EXIT_BUDGET_SPENT if isinstance(root_cause(error), HyperTrackerBudgetError) else 1
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
