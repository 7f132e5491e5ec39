"""A kill after dlt commits a job but before it records it: dlt runs the job again on the next
load, and the state row it inserts twice breaks PostgreSQL's unique `_dlt_id` (recovery.py)."""

import os
import subprocess
import sys
from pathlib import Path

import dlt
import pytest
from dlt.sources import DltSource
from helpers import API_KEY, POSTGRES_URL, PipelineFactory, assert_fills_equal, source_for

from hypertracker_simulator import Simulator
from hypertracker_source import load_until_caught_up
from hypertracker_source.recovery import finish_left_behind

CHILD = Path(__file__).with_name("state_row_kill_child.py")
CHILD_TIMEOUT = 120.0


def killed_after_state_row(pipeline: dlt.Pipeline, sim: Simulator) -> dlt.Pipeline:
    """Loads the fills, then a new data version in a child process that dies after the state row
    commits; the pipeline as the next run finds it."""
    pipeline.run(fills(sim))
    sim.advance_state(new_fills=20)
    env = {
        **os.environ,
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
        "SOURCES__HYPERTRACKER__BASE_URL": sim.url,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CHILD.parent), *sys.path])),
    }
    args = [pipeline.pipeline_name, pipeline.pipelines_dir, POSTGRES_URL, pipeline.dataset_name]
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
    """The source's fills resource alone, pointed at a simulator."""
    return source_for(sim).with_resources("liquidation_fills")


def state_rows(pipeline: dlt.Pipeline, load_id: str) -> int:
    """How many state rows of this load the destination holds."""
    with pipeline.sql_client() as client:
        table = client.make_qualified_table_name("_dlt_pipeline_state")
        rows = client.execute_sql(f"SELECT count(*) FROM {table} WHERE _dlt_load_id = %s", load_id)
    return int(rows[0][0])


def test_dlt_runs_again_a_state_job_whose_row_committed(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination: object
):
    """dlt's behaviour that recovery.py works around: if it changes, so may the workaround."""
    pipeline = killed_after_state_row(make_pipeline(postgres_destination), simulator)
    (load_id,) = pipeline.list_normalized_load_packages()
    assert state_rows(pipeline, load_id) == 1, "the killed run committed the state row"
    with pytest.raises(Exception, match="_dlt_pipeline_state__dlt_id_key"):
        pipeline.load()


def test_a_rerun_after_a_kill_past_the_state_row_loads_every_fill_once(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination: object
):
    pipeline = killed_after_state_row(make_pipeline(postgres_destination), simulator)
    (load_id,) = pipeline.list_normalized_load_packages()
    assert finish_left_behind(pipeline)
    assert not pipeline.has_pending_data
    assert state_rows(pipeline, load_id) == 1
    load_until_caught_up(
        pipeline, lambda: source_for(simulator).with_resources("liquidation_fills")
    )
    assert_fills_equal(pipeline, simulator.expected_fills())
