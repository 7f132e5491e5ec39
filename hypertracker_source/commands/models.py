"""`hypertracker models`: the bundled dbt package, built and tested by dlt's dbt runner."""

import argparse
import contextlib
import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import dlt
from dlt.common.runners import Venv
from dlt.helpers.dbt import DBTPackageRunner
from dlt.helpers.dbt.exceptions import DBTNodeResult

from hypertracker_source.commands.options import (
    DATASET,
    LOCAL_DATABASE,
    PIPELINE_NAME,
    AddCommand,
    destination_arg,
)
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.tables import TABLE_NAMES

DBT_PACKAGE = Path(__file__).parent.parent / "dbt_package"
"""The dbt project: dbt_project.yml, models, tests, and a DuckDB profile that works offline."""

DBT_ADAPTERS = {"duckdb": "dbt.adapters.duckdb", "postgres": "dbt.adapters.postgres"}
"""The dbt adapter module of each destination the package is tested on."""


def register(add_command: AddCommand) -> None:
    """Adds `models` and its options to the command line."""
    models = add_command(
        "models",
        help="build and test the bundled dbt models in a loaded dataset",
        description="Build and test the bundled dbt models (hourly liquidations and cascades) "
        "in a dataset that `hypertracker load` filled, with dlt's dbt runner. Needs dbt: "
        'pip install -e ".[models]" in the project\'s clone.',
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
    models.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker models`: dbt builds and tests the bundled models in the dataset."""
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


def run_models(
    pipeline: dlt.Pipeline, full_refresh: bool = False, test: bool = True
) -> list[DBTNodeResult]:
    """Builds the models in the pipeline's dataset, then runs their tests; returns every result."""
    check_ready(pipeline)
    runner = dbt_runner(pipeline)
    with dbt_output(Path(pipeline.working_dir) / "dbt"):
        results = list(runner.run(["--fail-fast", *(["--full-refresh"] if full_refresh else [])]))
        if test:
            results += runner.test()
    return results


def check_ready(pipeline: dlt.Pipeline) -> None:
    """Fails with the fix when dbt's adapter is missing or a raw table was not loaded."""
    destination = pipeline.destination.destination_name
    adapter = DBT_ADAPTERS.get(destination, f"dbt.adapters.{destination}")
    if not adapter_installed(adapter):
        raise HyperTrackerError(
            f"hypertracker models needs dbt and {adapter}, which are not installed: install "
            f'them with pip install -e ".[models]" in the project\'s clone'
        )
    loaded = set(pipeline.dataset().tables)
    missing = [table for table in TABLE_NAMES if table not in loaded]
    if missing:
        raise HyperTrackerError(
            f"Dataset {pipeline.dataset_name!r} has no {', '.join(missing)} table: the models "
            "read all four raw tables, so load them first with `hypertracker load` (or name "
            "the dataset that holds them with --dataset)"
        )


def adapter_installed(adapter: str) -> bool:
    """Whether a dbt adapter's module is installed, found without importing dbt (1.4 s of CPU)."""
    try:
        return importlib.util.find_spec(adapter) is not None
    except ModuleNotFoundError:  # dbt itself is missing, or blocked
        return False


def dbt_runner(pipeline: dlt.Pipeline) -> DBTPackageRunner:
    """dlt's runner of the bundled package on the pipeline's destination, in this environment."""
    # Hand-written: dlt's Venv.restore_current() runs `python` from PATH unless VIRTUAL_ENV is
    # set, which is not the interpreter running this code when a venv is used without activation.
    venv = (
        Venv.restore(sys.prefix, current=True)
        if sys.prefix != sys.base_prefix
        else Venv.restore_current()
    )
    profiles = {}
    if pipeline.destination.destination_name == "duckdb":
        # dlt's own DuckDB profile loads extensions that DuckDB downloads: use the offline one
        profiles["DBT_PACKAGE_RUNNER__PACKAGE_PROFILES_DIR"] = str(DBT_PACKAGE)
    with mock.patch.dict(os.environ, profiles):
        return dlt.dbt.package(pipeline, str(DBT_PACKAGE), venv=venv)


@contextlib.contextmanager
def dbt_output(folder: Path) -> Iterator[None]:
    """Sends dbt's compiled files and logs to a folder, not into the installed package, and no
    usage events to dbt Labs."""
    variables = {
        "DBT_TARGET_PATH": str(folder / "target"),
        "DBT_LOG_PATH": str(folder / "logs"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    with mock.patch.dict(os.environ, variables):
        yield
