"""The `hypertracker` command: load into any destination, run the offline demo, draw a report."""

import argparse
import contextlib
import difflib
import json
import math
import shlex
import sys
import textwrap
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
from hypertracker_source.commands.check import (
    api_status,
    checked_status,
    configured_client,
    configured_settings,
)
from hypertracker_source.commands.follow import FollowTiming, WallClock, follow
from hypertracker_source.commands.loading import run_load
from hypertracker_source.config.defaults import (
    EXIT_BEHIND,
    EXIT_BUDGET_SPENT,
    EXIT_PIPELINE_BUSY,
    FOLLOW_MAX_BACKOFF,
    FOLLOW_MAX_SLEEP,
    FOLLOW_MIN_SLEEP,
    FOLLOW_POLL_MARGIN,
    RUN_LOCK_WAIT,
    STATUS_MAX_BEHIND,
)
from hypertracker_source.destinations.duckdb import names_clash
from hypertracker_source.exceptions import (
    HyperTrackerBudgetError,
    HyperTrackerConfigError,
    HyperTrackerError,
    HyperTrackerPipelineBusyError,
)
from hypertracker_source.runs.dlt_log import dlt_warnings_for_the_command_line
from hypertracker_source.runs.failures import headline, root_cause
from hypertracker_source.runs.run_lock import pipeline_lock
from hypertracker_source.runs.stopping import (
    keep_dlt_off_signals,
    print_interrupted,
    signals_stop_the_command,
    stop_signal,
)
from hypertracker_source.tables import PUBLIC_RESOURCES

__all__ = ["main", "root_cause"]

DEMO_API_KEY = "demo-key"
DEMO_SEED = 7
DEMO_FILLS = 20_000
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_PIPELINE = "hypertracker_demo"
"""The demo's own pipeline, so that its state and simulated data never meet a real pipeline's."""
DEMO_DATASET = "hypertracker"
DEMO_REPORT = "hypertracker_demo.html"
DEMO_QUERY = (
    "SELECT coin, COUNT(*) AS fills FROM hypertracker.liquidation_fills "
    "GROUP BY coin ORDER BY fills DESC LIMIT 5"
)
"""What the demo shows how to ask its file."""
LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file `hypertracker load` fills and `hypertracker report` reads by default."""
REPORT_PAGE = "hypertracker_report.html"
PLOTLY_INSTALL = "pip install plotly"
PIPELINE_NAME = "hypertracker"
DATASET = "hypertracker"
SETTING_VARIABLE = "SOURCES__HYPERTRACKER__{}"
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
    """Reads the command line; a mistake is answered with its command's own usage."""
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
    commands = parser.add_subparsers(dest="command")

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
        description=f"Serve the bundled simulator of the API on 127.0.0.1, load all of its data "
        f"into {DEMO_DATABASE} (the demo's own pipeline, {DEMO_PIPELINE}), and write the report "
        f"{DEMO_REPORT}. No key and no network needed.",
        parents=[common],
    )
    demo.add_argument(
        "--fills",
        type=positive_int,
        default=DEMO_FILLS,
        help=f"simulated fills (default: {DEMO_FILLS})",
    )
    add_lock_option(demo)

    report = commands.add_parser(
        "report",
        help="write an interactive HTML page (one self-contained file) of a dataset",
        description="Write one self-contained HTML page of a loaded dataset: fills, cascades, "
        f"heatmaps and cohort risk. It reads {LOCAL_DATABASE} (what `hypertracker load` fills) "
        f"unless --destination names another file, such as the demo's {DEMO_DATABASE}.",
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
    report.add_argument(
        "--force",
        action="store_true",
        help="let --output replace a file that is not a report of ours, or the database read",
    )

    commands.add_parser(
        "check",
        help="one API request that proves the key and the address, and shows the data version",
        description="Send one request to the API's status with the key and address that "
        f"`hypertracker load` would use ({SETTING_VARIABLE.format('API_KEY')}, "
        f"{SETTING_VARIABLE.format('BASE_URL')}, or .dlt/secrets.toml and .dlt/config.toml), "
        "and print the API's data version. Nothing is loaded.",
        parents=[common],
    )

    models = commands.add_parser(
        "models",
        help="build and test the bundled dbt models in a loaded dataset",
        description="Build and test the bundled dbt models (hourly liquidations and cascades) "
        "in a dataset that `hypertracker load` filled, with dlt's dbt runner. Needs dbt: "
        'pip install -e ".[models]" in the project\'s clone.',
        parents=[common],
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
        description="Write .dlt/config.toml (every setting, commented), .dlt/secrets.toml (for "
        "the API key, readable by you only) and hypertracker_pipeline.py in the current folder, "
        "and add the secrets file to .gitignore.",
        parents=[common],
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="overwrite files that exist, keeping what is set under [sources.hypertracker]",
    )
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        parser.exit(2, "\nhypertracker: error: name a command, such as `hypertracker demo`\n")
    if unknown:
        refuse_unknown(commands.choices[args.command], unknown)
    return args


def refuse_unknown(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """Exits with a command's own usage, naming what it does not take and the nearest option."""
    known = [option for action in parser._actions for option in action.option_strings]
    near = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def positive_int(text: str) -> int:
    """A command-line number that must be a whole number above 0."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


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
    add_lock_option(parser)


def add_lock_option(parser: argparse.ArgumentParser) -> None:
    """The option of the commands that lock their pipeline: how long to wait for another run."""
    parser.add_argument(
        "--lock-wait",
        type=float,
        default=RUN_LOCK_WAIT,
        metavar="SECONDS",
        help="seconds to wait while another run holds this pipeline, then exit with code "
        f"{EXIT_PIPELINE_BUSY} ({RUN_LOCK_WAIT:g})",
    )


def finite_seconds(text: str) -> float:
    """Reads a number of seconds, refusing NaN and infinity (argparse names the flag)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return seconds


def add_follow_options(parser: argparse.ArgumentParser) -> None:
    """The options of `follow`: how long it sleeps, in seconds."""
    parser.add_argument(
        "--poll-margin",
        type=finite_seconds,
        default=FOLLOW_POLL_MARGIN,
        help=f"seconds past the API's announced next update to ask again ({FOLLOW_POLL_MARGIN:g})",
    )
    parser.add_argument(
        "--min-sleep",
        type=finite_seconds,
        default=FOLLOW_MIN_SLEEP,
        help=f"shortest sleep, when the update is late; first backoff ({FOLLOW_MIN_SLEEP:g})",
    )
    parser.add_argument(
        "--max-sleep",
        type=finite_seconds,
        default=FOLLOW_MAX_SLEEP,
        help=f"longest sleep between two status requests ({FOLLOW_MAX_SLEEP:g})",
    )
    parser.add_argument(
        "--max-backoff",
        type=finite_seconds,
        default=FOLLOW_MAX_BACKOFF,
        help=f"longest sleep after failures in a row ({FOLLOW_MAX_BACKOFF:g})",
    )


SETTING_FLAGS = {
    "start_date": "start_date",
    "end_date": "end_date",
    "coins": "coins",
    "heatmap_coins": "heatmap_coins",
    "segments": "segment_ids",
}
"""The options that set a source setting, by argument name: the setting each sets."""


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest resolve from dlt config."""
    if getattr(args, "end_date", None) and not args.start_date:
        refuse_end_without_start(args.end_date)
    return {
        setting: getattr(args, arg)
        for arg, setting in SETTING_FLAGS.items()
        if getattr(args, arg, None)
    }


def refuse_end_without_start(end_date: str) -> None:
    """Refuses --end-date without --start-date: a back-fill names both ends on the command line,
    as the help says, whatever start date dlt config holds (which differs by folder)."""
    raise HyperTrackerError(
        f"--end-date {end_date} goes with --start-date: a back-fill reads from a start date "
        f"to an end date. Add --start-date, e.g. --start-date 2025-08-01 --end-date {end_date}"
    )


def typed_flag(args: argparse.Namespace, error: BaseException) -> str | None:
    """The option and value the user typed for the setting a config error names, if typed."""
    if not isinstance(error, HyperTrackerConfigError):
        return None
    for arg, setting in SETTING_FLAGS.items():
        if setting == error.setting and getattr(args, arg, None):
            return f"--{arg.replace('_', '-')} {getattr(args, arg)}"
    return None


def error_line(args: argparse.Namespace, error: BaseException) -> str:
    """The one line a failed command prints; a bad setting typed as an option is named so."""
    cause = root_cause(error)
    flag = typed_flag(args, cause)
    if flag is None or not isinstance(cause, HyperTrackerConfigError):
        return headline(error)
    return f"hypertracker: error: {type(cause).__name__}: {flag}: {cause.problem}. {cause.fix}"


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
    with pipeline_lock(pipeline, args.lock_wait), contextlib.ExitStack() as demo:
        demo_settings = demo.enter_context(demo_api()) if args.demo else {}
        settings = {**source_settings(args), **demo_settings}
        run_load(pipeline, settings, args.resources, args.full_refresh, lock_wait=args.lock_wait)


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
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination_arg(destination, dataset),
        dataset_name=dataset,
        progress=dlt.progress.log(dump_system_stats=False) if progress else NULL_COLLECTOR,
    )
    keep_dlt_off_signals(pipeline)
    return pipeline


def command_follow(args: argparse.Namespace) -> None:
    """Runs `hypertracker follow` until SIGTERM or Ctrl-C, holding its pipeline's lock."""
    timing = FollowTiming(args.poll_margin, args.min_sleep, args.max_sleep, args.max_backoff)
    pipeline = pipeline_from_args(args)
    with pipeline_lock(pipeline, args.lock_wait):
        follow(pipeline, source_settings(args), run_load, WallClock(), timing, args.resources)


def command_init(args: argparse.Namespace) -> None:
    """Runs `hypertracker init`: the project files, in the current folder."""
    from hypertracker_source.commands.init import write_project

    write_project(Path.cwd(), args.force)


def command_demo(args: argparse.Namespace) -> None:
    """Runs `hypertracker demo`: the simulator, loaded in full into a local DuckDB file, drawn."""
    pipeline = dlt.pipeline(
        pipeline_name=DEMO_PIPELINE,
        destination=destination_arg(DEMO_DATABASE, DEMO_DATASET),
        dataset_name=DEMO_DATASET,
        progress=dlt.progress.log(dump_system_stats=False),
    )
    keep_dlt_off_signals(pipeline)
    with pipeline_lock(pipeline, args.lock_wait), demo_api(args.fills) as settings:
        run_load(pipeline, settings, refresh=True)
    print(f"\nQuery it: {query_command(DEMO_DATABASE, DEMO_QUERY)}")
    try:
        from hypertracker_source.report import write_report

        print_written(write_report(pipeline.dataset(), Path(DEMO_REPORT)))
    except MissingDependencyException:
        print(f"No report: it needs plotly, which is missing. Install it with {PLOTLY_INSTALL}")


def query_command(database: str, query: str) -> str:
    """A shell command that runs a query on a DuckDB file with this Python's duckdb module."""
    script = f'import duckdb; duckdb.connect("{database}", read_only=True).sql("{query}").show()'
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"


def command_report(args: argparse.Namespace) -> None:
    """Runs `hypertracker report`: the page of a loaded dataset."""
    from hypertracker_source.report import check_output, stored_dataset, write_report

    if args.destination.endswith(".duckdb") and not Path(args.destination).is_file():
        demo_hint = (
            f"; the demo's data is in {DEMO_DATABASE}: hypertracker report --destination "
            f"{DEMO_DATABASE}"
            if Path(DEMO_DATABASE).is_file()
            else ""
        )
        raise HyperTrackerError(
            f"No DuckDB file at {args.destination}: load one with `hypertracker load` or "
            "`hypertracker demo` first, or name it (or another destination) with --destination"
            + demo_hint
        )
    database = Path(args.destination) if args.destination.endswith(".duckdb") else None
    check_output(Path(args.output), database, args.force)
    dataset = stored_dataset(destination_arg(args.destination, args.dataset), args.dataset)
    print_written(write_report(dataset, Path(args.output)))


def command_models(args: argparse.Namespace) -> None:
    """Runs `hypertracker models`: dbt builds and tests the bundled models in the dataset."""
    from hypertracker_source.commands.models import run_models

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
    if not Path(destination).resolve().parent.is_dir():
        raise HyperTrackerError(
            f"--destination {destination}: the folder {Path(destination).resolve().parent} does "
            "not exist. Create it first, or name a file in a folder that exists"
        )
    if names_clash(destination, dataset):
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
    print(
        f"Asking HyperTracker at {client.base_url} for its status (1 request, up to "
        f"{client.attempts} attempts)...",
        flush=True,
    )
    status = checked_status(client)
    print(
        f"HyperTracker at {client.base_url} accepted the key (1 request). Data version: "
        f"{status.get('lastUpdate')}; the API updates next at {status.get('nextUpdate')}"
    )


def command_plan(args: argparse.Namespace) -> None:
    """Runs `hypertracker plan`: the cost of the next run and of a day of follow."""
    from hypertracker_source.commands.plan import make_plan, plan_text

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
    from hypertracker_source.commands.status import pipeline_status, status_text

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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hypertracker` command."""
    args = parse_args(argv)
    try:
        with signals_stop_the_command(), dlt_warnings_for_the_command_line():
            code = COMMANDS[args.command](args)
    except (Exception, KeyboardInterrupt) as error:
        signal_number = stop_signal(error)
        if signal_number is not None:
            print_interrupted(signal_number)
        else:
            print(error_line(args, error), file=sys.stderr)
        if getattr(args, "debug", False):
            traceback.print_exc(file=sys.stderr)
        if signal_number is not None:
            return 128 + signal_number
        return failure_exit_code(error)
    return code or 0


def failure_exit_code(error: BaseException) -> int:
    """The exit code of a command that failed: its own for a held lock and a spent budget."""
    cause = root_cause(error)
    if isinstance(cause, HyperTrackerPipelineBusyError):
        return EXIT_PIPELINE_BUSY
    return EXIT_BUDGET_SPENT if isinstance(cause, HyperTrackerBudgetError) else 1


if __name__ == "__main__":
    sys.exit(main())
