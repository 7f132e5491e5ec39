"""DuckDB: the check that its file and the pipeline's dataset are not named alike."""

from pathlib import Path

import dlt

from hypertracker_source.exceptions import HyperTrackerError


def names_clash(database: str, dataset_name: str) -> bool:
    """Whether a DuckDB file is named like a dataset, which DuckDB then cannot tell from it."""
    return Path(database).stem == dataset_name


def check_duckdb_dataset(pipeline: dlt.Pipeline) -> None:
    """Refuses a pipeline that loads a DuckDB file named like its dataset.

    The load would fail after the extract has spent its requests: this runs before the first one.
    """
    database = getattr(pipeline.destination_client().config.credentials, "database", None)
    if isinstance(database, str) and names_clash(database, pipeline.dataset_name):
        raise HyperTrackerError(
            f"The pipeline's dataset {pipeline.dataset_name} and its DuckDB file "
            f"{Path(database).name} share a name, and DuckDB then cannot tell the dataset from "
            "the file: rename one of them in dlt.pipeline()"
        )
