"""`hypertracker load`: one run of the pipeline, reading only what is new."""

import argparse
import contextlib

from hypertracker_source.commands.demo import demo_api, demo_pipeline
from hypertracker_source.commands.loading import run_load
from hypertracker_source.commands.options import (
    DEMO_DATABASE,
    DEMO_DATASET,
    DEMO_PIPELINE,
    LOAD_EPILOG,
    AddCommand,
    add_load_options,
    pipeline_from_args,
    source_settings,
)
from hypertracker_source.config.flags import add_setting_flags
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.runs.run_lock import pipeline_lock


def register(add_command: AddCommand) -> None:
    """Adds `load` and its options to the command line."""
    load = add_command(
        "load",
        help="load HyperTracker data with a dlt pipeline",
        description="Load HyperTracker data with a dlt pipeline; each run reads only what is new.",
        epilog=LOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(load)
    add_setting_flags(load, load_only=True)
    load.add_argument(
        "--demo",
        action="store_true",
        help=f"load from the bundled simulator, into the demo's own pipeline ({DEMO_PIPELINE}) "
        f"and file ({DEMO_DATABASE})",
    )
    load.add_argument("--full-refresh", action="store_true", help="drop the tables and state first")
    load.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker load`; with --demo, into the demo's own pipeline and file."""
    if args.demo:
        _refuse_with_demo(args)
    pipeline = demo_pipeline() if args.demo else pipeline_from_args(args, progress=True)
    with pipeline_lock(pipeline, args.lock_wait), contextlib.ExitStack() as demo:
        demo_settings = demo.enter_context(demo_api()) if args.demo else {}
        settings = {**source_settings(args), **demo_settings}
        run_load(pipeline, settings, args.resources, args.full_refresh, lock_wait=args.lock_wait)


def _refuse_with_demo(args: argparse.Namespace) -> None:
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
