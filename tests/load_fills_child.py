"""A scheduled load of every liquidation fill, run as a child process for tests to kill."""

import sys

import dlt

from hypertracker_source import hypertracker, load_until_caught_up


def main(pipeline_name: str, pipelines_dir: str, database: str, dataset: str, mode: str) -> None:
    """Loads the fills of the API that SOURCES__HYPERTRACKER__* names into a DuckDB dataset.

    `mode` is `run` (one scheduled run) or `caught-up` (chunks until no read is left).
    """
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.duckdb(database),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    if mode == "caught-up":
        load_until_caught_up(pipeline, lambda: hypertracker().with_resources("liquidation_fills"))
    else:
        pipeline.run(hypertracker().with_resources("liquidation_fills"))


if __name__ == "__main__":
    main(*sys.argv[1:])
