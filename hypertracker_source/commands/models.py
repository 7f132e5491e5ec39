"""The bundled dbt package (staging and marts over the raw tables), run by dlt's dbt runner."""

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import dlt
from dlt.common.runners import Venv
from dlt.helpers.dbt import DBTPackageRunner
from dlt.helpers.dbt.exceptions import DBTNodeResult

from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.tables import TABLE_NAMES

DBT_PACKAGE = Path(__file__).parent.parent / "dbt_package"
"""The dbt project: dbt_project.yml, models, tests, and a DuckDB profile that works offline."""

DBT_ADAPTERS = {"duckdb": "dbt.adapters.duckdb", "postgres": "dbt.adapters.postgres"}
"""The dbt adapter module of each destination the package is tested on."""


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
    try:
        importlib.import_module(adapter)
    except ModuleNotFoundError:
        raise HyperTrackerError(
            f"hypertracker models needs dbt and {adapter}, which are not installed: install "
            f'them with pip install -e ".[models]" in the project\'s clone'
        ) from None
    loaded = set(pipeline.dataset().tables)
    missing = [table for table in TABLE_NAMES if table not in loaded]
    if missing:
        raise HyperTrackerError(
            f"Dataset {pipeline.dataset_name!r} has no {', '.join(missing)} table: the models "
            "read all four raw tables, so load them first with `hypertracker load` (or name "
            "the dataset that holds them with --dataset)"
        )


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
