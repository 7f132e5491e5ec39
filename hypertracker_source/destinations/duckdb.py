"""Checks of the running pipeline that the source makes before its first request, costing none."""

from pathlib import Path

from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext

from hypertracker_source.exceptions import HyperTrackerError


def check_duckdb_dataset() -> None:
    """Refuses a running pipeline that loads a DuckDB file named like its dataset.

    DuckDB then cannot tell the dataset from the file, and the load fails after the extract has
    spent its requests: this runs before the first one.
    """
    context = Container()[PipelineContext]
    if not context.is_active():
        return
    pipeline = context.pipeline()
    destination = pipeline.destination
    if destination is None or destination.destination_type != "dlt.destinations.duckdb":
        return
    database = getattr(pipeline.destination_client().config.credentials, "database", None)
    if isinstance(database, str) and Path(database).stem == pipeline.dataset_name:
        raise HyperTrackerError(
            f"The pipeline's dataset {pipeline.dataset_name} and its DuckDB file "
            f"{Path(database).name} share a name, and DuckDB then cannot tell the dataset from "
            "the file: rename one of them in dlt.pipeline()"
        )
