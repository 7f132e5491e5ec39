"""A load into PostgreSQL killed (SIGKILL) right after dlt commits its state row's insert, before
dlt records that job as done: the moment a kill leaves a committed job to be run again."""

import os
import signal
import sys

import dlt
from dlt.destinations.insert_job_client import InsertValuesLoadJob

from hypertracker_source import hypertracker

STATE_TABLE = "_dlt_pipeline_state"


def die_after_state_row() -> None:
    """Makes dlt's insert job kill the process once the state row's transaction has committed."""
    insert = InsertValuesLoadJob.run

    def insert_then_die(job: InsertValuesLoadJob) -> None:
        """Runs the insert; on the state table, then dies as a SIGKILL would find it."""
        insert(job)
        if job.load_table_name == STATE_TABLE:
            os.kill(os.getpid(), signal.SIGKILL)

    InsertValuesLoadJob.run = insert_then_die  # type: ignore[method-assign]


def main(pipeline_name: str, pipelines_dir: str, credentials: str, dataset: str) -> None:
    """Loads the fills of the API that SOURCES__HYPERTRACKER__* names, dying after the state row."""
    die_after_state_row()
    pipeline = dlt.pipeline(
        pipeline_name=pipeline_name,
        destination=dlt.destinations.postgres(credentials),
        dataset_name=dataset,
        pipelines_dir=pipelines_dir,
    )
    pipeline.run(hypertracker().with_resources("liquidation_fills"))


if __name__ == "__main__":
    main(*sys.argv[1:])
