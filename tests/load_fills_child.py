"""A scheduled load of every liquidation fill, run as a child process for tests to kill."""

import sys

import dlt

from hypertracker_source import hypertracker


def main(pipeline_name: str, pipelines_dir: str, database: str, dataset: str) -> None:
    """Loads the fills of the API that SOURCES__HYPERTRACKER__* names into a DuckDB dataset."""
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(database),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(hypertracker().with_resources("liquidation_fills"))


if __name__ == "__main__":
    main(*sys.argv[1:])
