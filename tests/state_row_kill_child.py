"""A load into PostgreSQL killed (SIGKILL) right after dlt commits one table's insert job, before
dlt records that job as done: the moment a kill leaves a committed job to be run again."""

import os
import signal
import sys

import dlt
from dlt.common.destination.client import RunnableLoadJob

from hypertracker_source import hypertracker


def die_after_committing(table: str) -> None:
    """Makes dlt's load jobs kill the process once a job of `table` has committed, before dlt
    records it (RunnableLoadJob._release saves that record)."""
    release = RunnableLoadJob._release

    def die_or_release(job: RunnableLoadJob, next_state: str) -> None:
        """Dies as a SIGKILL would find a job of `table` that committed; else releases it."""
        if job.load_table_name == table and next_state == "completed":
            os.kill(os.getpid(), signal.SIGKILL)
        release(job, next_state)  # type: ignore[arg-type]

    RunnableLoadJob._release = die_or_release  # type: ignore[method-assign,assignment]


def main(
    pipeline_name: str, pipelines_dir: str, credentials: str, dataset: str, table: str
) -> None:
    """Loads the fills and segments of the API that SOURCES__HYPERTRACKER__* names, dying after
    a job of `table` commits."""
    die_after_committing(table)
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.postgres(credentials),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(hypertracker().with_resources("liquidation_fills", "segments"))


if __name__ == "__main__":
    main(*sys.argv[1:])
