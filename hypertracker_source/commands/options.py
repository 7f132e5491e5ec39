"""The options several commands share: where to load, what, the run lock, the source's settings."""

import argparse
import difflib
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dlt
from dlt.common.destination import Destination
from dlt.common.destination.exceptions import UnknownDestinationModule
from dlt.common.pipeline import get_dlt_pipelines_dir
from dlt.common.runtime.collector import NULL_COLLECTOR

from hypertracker_source.config.defaults import EXIT_PIPELINE_BUSY, RUN_LOCK_WAIT
from hypertracker_source.config.flags import SETTING_FLAGS, add_setting_flags, flags_to_settings
from hypertracker_source.destinations.duckdb import names_clash
from hypertracker_source.exceptions import HyperTrackerConfigError, HyperTrackerError
from hypertracker_source.runs.recovery import repair_cut_storage
from hypertracker_source.runs.stopping import keep_dlt_off_signals
from hypertracker_source.tables import RISK

LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file `hypertracker load` fills and `hypertracker report` reads by default."""
PIPELINE_NAME = "hypertracker"
DATASET = "hypertracker"
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_PIPELINE = "hypertracker_demo"
"""The demo's own pipeline, so that its state and simulated data never meet a real pipeline's."""
DEMO_DATASET = "hypertracker"
AddCommand = Callable[..., argparse.ArgumentParser]
"""Adds a command to the command line, with the options every command takes:
`add_command(name, help=..., description=...)` as argparse's `add_parser`."""
LOAD_EPILOG = f"""resources (--resources, comma-separated; default all):
{
    textwrap.fill(
        "liquidation_fills, liquidation_heatmap, segments, and liquidation_risk (every cohort) or "
        f"one cohort's: {', '.join(RISK.resources)}",
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
"""The epilog of the commands that load: the resources, and the settings read from dlt config."""


def add_load_options(parser: argparse.ArgumentParser) -> None:
    """The options `load`, `follow`, `plan` and `status` share: where to load, and what."""
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
    add_setting_flags(parser)
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


def source_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The source arguments given on the command line; the rest resolve from dlt config."""
    if getattr(args, "end_date", None) and not args.start_date:
        _refuse_end_without_start(args.end_date)
    return flags_to_settings(args)


def _refuse_end_without_start(end_date: str) -> None:
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


def pipeline_from_args(args: argparse.Namespace, progress: bool = False) -> dlt.Pipeline:
    """The pipeline that --pipeline-name, --destination and --dataset name."""
    return command_pipeline(
        args.pipeline_name or PIPELINE_NAME,
        args.destination or LOCAL_DATABASE,
        args.dataset or DATASET,
        progress,
    )


def command_pipeline(
    pipeline_name: str, destination: str, dataset: str, progress: bool = False
) -> dlt.Pipeline:
    """A pipeline that loads for a command, leaving the stop signals to stopping.py; what a killed
    run left half-made in its folder is repaired before dlt reads it."""
    repair_cut_storage(Path(get_dlt_pipelines_dir(), pipeline_name))
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=destination_arg(destination, dataset),
        dataset_name=dataset,
        progress=dlt.progress.log(dump_system_stats=False) if progress else NULL_COLLECTOR,
    )
    keep_dlt_off_signals(pipeline)
    return pipeline


def destination_arg(destination: str, dataset: str) -> Any:
    """The --destination option as dlt takes it: a DuckDB file's destination, or the name.

    A DuckDB file is named by its absolute path: dlt would otherwise look for a relative one
    where the pipeline first ran.
    """
    if destination == "duckdb":
        destination = LOCAL_DATABASE
    if not destination.endswith(".duckdb"):
        _check_destination_name(destination)
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


def _check_destination_name(destination: str) -> None:
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
