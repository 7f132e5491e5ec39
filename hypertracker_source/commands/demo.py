"""`hypertracker demo`: the bundled simulator, loaded in full into a local DuckDB file, drawn."""

import argparse
import contextlib
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

import dlt
from dlt.common.exceptions import MissingDependencyException

from hypertracker_source.commands.loading import run_load
from hypertracker_source.commands.options import (
    DEMO_DATABASE,
    DEMO_DATASET,
    DEMO_PIPELINE,
    AddCommand,
    add_lock_option,
    command_pipeline,
)
from hypertracker_source.commands.report import print_written
from hypertracker_source.runs.run_lock import pipeline_lock

_DEMO_API_KEY = "demo-key"
DEMO_SEED = 7
DEMO_FILLS = 20_000
_DEMO_REPORT = "hypertracker_demo.html"
_DEMO_QUERY = (
    "SELECT coin, COUNT(*) AS fills FROM hypertracker.liquidation_fills "
    "GROUP BY coin ORDER BY fills DESC LIMIT 5"
)
"""What the demo shows how to ask its file."""
_PLOTLY_INSTALL = "pip install plotly"


def register(add_command: AddCommand) -> None:
    """Adds `demo` and its options to the command line."""
    demo = add_command(
        "demo",
        help=f"load everything offline into {DEMO_DATABASE} and write {_DEMO_REPORT}",
        description=f"Serve the bundled simulator of the API on 127.0.0.1, load all of its data "
        f"into {DEMO_DATABASE} (the demo's own pipeline, {DEMO_PIPELINE}), and write the report "
        f"{_DEMO_REPORT}. No key and no network needed.",
    )
    demo.add_argument(
        "--fills",
        type=_positive_int,
        default=DEMO_FILLS,
        help=f"simulated fills (default: {DEMO_FILLS})",
    )
    add_lock_option(demo)
    demo.set_defaults(handler=_run)


def _positive_int(text: str) -> int:
    """A command-line number that must be a whole number above 0."""
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return int(text)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker demo`: the simulator, loaded in full into a local DuckDB file, drawn."""
    pipeline = demo_pipeline()
    with pipeline_lock(pipeline, args.lock_wait), demo_api(args.fills) as settings:
        run_load(pipeline, settings, refresh=True)
    print(f"\nQuery it: {_query_command(DEMO_DATABASE, _DEMO_QUERY)}")
    try:
        from hypertracker_source.report import write_report

        print_written(write_report(pipeline.dataset(), Path(_DEMO_REPORT)))
    except MissingDependencyException:
        print(f"No report: it needs plotly, which is missing. Install it with {_PLOTLY_INSTALL}")


def demo_pipeline() -> dlt.Pipeline:
    """The demo's own pipeline, into its own DuckDB file and dataset."""
    return command_pipeline(DEMO_PIPELINE, DEMO_DATABASE, DEMO_DATASET, progress=True)


@contextlib.contextmanager
def demo_api(fills: int = DEMO_FILLS) -> Iterator[dict[str, str]]:
    """Runs the bundled simulator and yields the source settings that point at it."""
    # Imported here: every other command starts without the simulator's HTTP server
    from hypertracker_simulator import Simulator

    with Simulator(seed=DEMO_SEED, fills=fills, api_key=_DEMO_API_KEY) as simulator:
        yield {"api_key": _DEMO_API_KEY, "base_url": simulator.url}


def _query_command(database: str, query: str) -> str:
    """A shell command that runs a query on a DuckDB file with this Python's duckdb module."""
    script = f'import duckdb; duckdb.connect("{database}", read_only=True).sql("{query}").show()'
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(script)}"
