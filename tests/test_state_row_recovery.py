"""A kill after dlt commits a job but before it records it: dlt runs the job again on the next
load, and the rows it inserts twice break PostgreSQL's unique `_dlt_id` (recovery.py): the state
row in the dataset, a merge table's rows in the staging dataset."""

import os
import subprocess
import sys
from pathlib import Path

import dlt
import pytest
from dlt.sources import DltSource
from helpers import (
    API_KEY,
    POSTGRES_URL,
    PipelineFactory,
    assert_fills_equal,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source import load_until_caught_up
from hypertracker_source.runs.recovery import finish_left_behind

CHILD = Path(__file__).with_name("state_row_kill_child.py")
CHILD_TIMEOUT = 120.0
TABLES = ("_dlt_pipeline_state", "segments")
"""A table loaded straight into the dataset, and a merge table loaded through staging."""


def killed_after_commit(pipeline: dlt.Pipeline, sim: Simulator, table: str) -> dlt.Pipeline:
    """Loads the fills, then a new data version in a child process that dies after a job of
    `table` commits; the pipeline as the next run finds it."""
    pipeline.run(fills(sim))
    sim.advance_state(new_fills=20)
    env = {
        **os.environ,
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
        "SOURCES__HYPERTRACKER__BASE_URL": sim.url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CHILD.parent), *sys.path])),
    }
    args = [
        pipeline.pipeline_name,
        pipeline.pipelines_dir,
        POSTGRES_URL,
        pipeline.dataset_name,
        table,
    ]
    child = subprocess.run(
        [sys.executable, str(CHILD), *args], env=env, timeout=CHILD_TIMEOUT, capture_output=True
    )
    assert child.returncode == -9, child.stderr.decode()[-2000:]
    rerun = dlt.pipeline(
        pipeline.pipeline_name,
        destination=pipeline.destination,
        dataset_name=pipeline.dataset_name,
        pipelines_dir=pipeline.pipelines_dir,
    )
    assert rerun.list_normalized_load_packages(), "the kill left the package to load"
    return rerun


def fills(sim: Simulator) -> DltSource:
    """The source's fills and segments, pointed at a simulator."""
    return source_for(sim).with_resources("liquidation_fills", "segments")


def state_rows(pipeline: dlt.Pipeline, load_id: str) -> int:
    """How many state rows of this load the destination holds."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("_dlt_pipeline_state")
        rows = client.execute_sql(f"SELECT count(*) FROM {table} WHERE _dlt_load_id = %s", load_id)
    return int(rows[0][0])


@pytest.mark.parametrize("table", TABLES)
def test_dlt_runs_again_a_job_that_committed(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination: object, table: str
):
    """dlt's behaviour that recovery.py works around: if it changes, so may the workaround."""
    pipeline = killed_after_commit(make_pipeline(postgres_destination), simulator, table)
    # the kill comes after this table's job committed; the other table's job may have committed
    # too by then, and dlt names whichever of the two it runs again first
    with pytest.raises(Exception, match=f"({'|'.join(TABLES)})__dlt_id_key"):
        pipeline.load()


@pytest.mark.parametrize("table", TABLES)
def test_a_rerun_after_a_kill_past_a_commit_loads_every_fill_once(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination: object, table: str
):
    pipeline = killed_after_commit(make_pipeline(postgres_destination), simulator, table)
    (load_id,) = pipeline.list_normalized_load_packages()
    assert finish_left_behind(pipeline)
    assert not pipeline.has_pending_data
    assert state_rows(pipeline, load_id) == 1
    load_until_caught_up(pipeline, lambda: fills(simulator))
    assert_fills_equal(pipeline, simulator.expected_fills())
    segment_ids = [row["id"] for row in landed(pipeline, "segments")]
    assert len(segment_ids) == len(set(segment_ids)) == 16, "every cohort once"
