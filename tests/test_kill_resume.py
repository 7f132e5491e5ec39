"""A back-fill killed with SIGKILL at random points, then rerun: no fill lost, none twice."""

import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pyarrow.parquet as pq
import pytest
from dlt.common.storages import LoadStorage, NormalizeStorage, PackageStorage
from dlt.destinations.exceptions import DatabaseUndefinedRelation
from dlt.pipeline.exceptions import CannotRestorePipelineException
from helpers import (
    API_KEY,
    LAG,
    api_fill_key,
    assert_fills_equal,
    epoch_ms,
    high_water_marks,
    landed,
    landed_fill_key,
)

from hypertracker_simulator import Simulator

CHILD = Path(__file__).with_name("load_fills_child.py")
PIPELINE_NAME = "killed"
DATASET = "hypertracker"
FILLS_TABLE = "liquidation_fills"
PAGE_SIZE = 50
NEW_FILLS_PER_RUN = 200
"""Fills the API gains before each run, so that a run after a finished one has pages to read."""
EXTRACTED = f"normalize/{NormalizeStorage.EXTRACTED_FOLDER}/*"
"""A package whose extract is committed, state included, waiting to be normalized."""
LOADING = f"load/{LoadStorage.NORMALIZED_FOLDER}/*/{PackageStorage.STARTED_JOBS_FOLDER}/*"
"""A package being loaded: its tables exist in the destination, its rows are on their way."""
LOADED_IN_PART = f"load/{LoadStorage.NORMALIZED_FOLDER}/*/{PackageStorage.COMPLETED_JOBS_FOLDER}/*"
"""A package of which some jobs have loaded, but not all."""
KILL_SEED = 4
STAGE_TIMEOUT = 120.0


@dataclass(frozen=True)
class KillPoint:
    """Where to kill a run: after its n-th API request, or once its package reaches a stage."""

    requests: int = 0
    stage: str = ""
    then_seconds: float = 0.0

    def reached(self, sim: Simulator, folder: Path) -> bool:
        """Whether the run got this far."""
        if self.stage:
            return any((folder / "pipelines" / PIPELINE_NAME).glob(self.stage))
        return len(sim.requests) >= self.requests


def kill_points(seed: int) -> list[KillPoint]:
    """Kill points in every phase of a run, at random places within them.

    A run that finds a package pending only loads it, and makes no request; while nothing has
    reached the destination yet, it drops the package with the state that came with it instead,
    and starts over. Runs read the whole history in 3-month windows until one of them lands.
    """
    dice = random.Random(seed)
    return [
        KillPoint(requests=dice.randint(1, 40)),  # in the history's extract
        KillPoint(stage=EXTRACTED),  # its package committed, marks in it
        KillPoint(stage=LOADING),  # the next one (starting over) while it loads
        KillPoint(stage=LOADED_IN_PART),  # the next one resuming that load, part-way
        KillPoint(requests=dice.randint(1, 4)),  # the next one resumes it to the end
        KillPoint(stage=EXTRACTED),  # an incremental run, committed
        KillPoint(stage=LOADING, then_seconds=dice.uniform(0, 0.1)),  # resuming, while loading
    ]


def start_load(
    sim: Simulator, folder: Path, mode: str = "run", **settings: int
) -> subprocess.Popen:
    """Starts the fills load in a child process: one scheduled run, or chunks until caught up."""
    env = {
        **os.environ,
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
        "SOURCES__HYPERTRACKER__BASE_URL": sim.url,
        "SOURCES__HYPERTRACKER__PAGE_SIZE": str(PAGE_SIZE),
        **{
            f"SOURCES__HYPERTRACKER__{name.upper()}": str(value) for name, value in settings.items()
        },
    }
    command = [sys.executable, str(CHILD), PIPELINE_NAME, str(folder / "pipelines")]
    return subprocess.Popen(
        [*command, str(folder / "fills.duckdb"), DATASET, mode],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def kill_at(point: KillPoint, child: subprocess.Popen, sim: Simulator, folder: Path) -> None:
    """Kills the child with SIGKILL at a kill point, unless it ends before."""
    deadline = time.monotonic() + STAGE_TIMEOUT
    while not point.reached(sim, folder) and child.poll() is None:
        assert time.monotonic() < deadline, f"the run never reached {point}"
        time.sleep(0.005)
    time.sleep(point.then_seconds)
    child.kill()
    child.communicate()


def attach(folder: Path) -> dlt.Pipeline | None:
    """The killed pipeline as its folder holds it, or None if the child never made it."""
    try:
        return dlt.attach(
            PIPELINE_NAME,
            pipelines_dir=str(folder / "pipelines"),
            destination=dlt.destinations.duckdb(str(folder / "fills.duckdb")),
        )
    except CannotRestorePipelineException:
        return None


def landed_fills(pipeline: dlt.Pipeline) -> list[dict[str, Any]]:
    """The fills in the destination, none if the table is not there yet."""
    if FILLS_TABLE not in pipeline.dataset().tables:
        return []
    try:
        return landed(pipeline, FILLS_TABLE)
    except DatabaseUndefinedRelation:
        return []


def pending_fill_keys(pipeline: dlt.Pipeline) -> set[tuple]:
    """The keys of the fills in load packages that wait in the pipeline folder to be loaded.

    Rows are in the packages' parquet files; their sql jobs (the merge into the table) hold none.
    """
    keys = set()
    packages = [*pipeline.list_extracted_load_packages(), *pipeline.list_normalized_load_packages()]
    for load_id in packages:
        for jobs in pipeline.get_load_package_info(load_id).jobs.values():
            for job in jobs:
                if (
                    job.job_file_info.table_name != FILLS_TABLE
                    or job.job_file_info.file_format == "sql"
                ):
                    continue
                assert job.job_file_info.file_format == "parquet", job.file_path
                rows = pq.read_table(job.file_path).to_pylist()
                keys.update(landed_fill_key(row) for row in rows)
    return keys


def fills_behind_marks(pipeline: dlt.Pipeline, expected: list[dict[str, Any]]) -> set[tuple]:
    """The fills the pipeline's next run will not read again: those before its marks minus lag."""
    behind = set()
    for mark in high_water_marks(pipeline).values():
        cursor = epoch_ms(mark) - LAG // timedelta(milliseconds=1)
        behind |= {api_fill_key(fill) for fill in expected if epoch_ms(fill["time"]) < cursor}
    return behind


def restored_from_destination(folder: Path, scratch: Path) -> dlt.Pipeline:
    """The pipeline as a machine that lost the pipelines folder restores it from the destination."""
    pipeline = dlt.pipeline(
        PIPELINE_NAME,
        destination=dlt.destinations.duckdb(str(folder / "fills.duckdb")),
        dataset_name=DATASET,
        pipelines_dir=str(scratch),
    )
    pipeline.sync_destination()
    return pipeline


def assert_marks_cover_the_data(folder: Path, scratch: Path, expected: list[dict[str, Any]]) -> str:
    """No stored mark is past a fill that neither landed nor waits to land; says what was seen.

    Checked for the state in the pipelines folder, which the next run starts from after loading
    any package left pending, and for the state kept in the destination, which a machine that
    lost the pipelines folder restores.
    """
    pipeline = attach(folder)
    if pipeline is None:
        return "no pipeline yet"
    landed_keys = [landed_fill_key(row) for row in landed_fills(pipeline)]
    assert len(landed_keys) == len(set(landed_keys)), "duplicate fills landed"
    assert set(landed_keys) <= {api_fill_key(fill) for fill in expected}
    pending = pending_fill_keys(pipeline)
    assert fills_behind_marks(pipeline, expected) <= set(landed_keys) | pending
    restored = restored_from_destination(folder, scratch)
    assert fills_behind_marks(restored, expected) <= set(landed_keys)
    return (
        f"{len(landed_keys)} fills landed, {len(pending)} pending; marks stored "
        f"{sorted(high_water_marks(pipeline).values())}, in the destination "
        f"{sorted(high_water_marks(restored).values())}"
    )


@pytest.mark.slow
def test_killed_backfill_resumes_without_loss_or_duplicates(tmp_path: Path):
    with Simulator(seed=13, fills=2000, api_key=API_KEY) as sim:
        sim.faults.latency = 0.01
        outcomes = []
        for kill, point in enumerate(kill_points(KILL_SEED)):
            sim.advance_state(new_fills=NEW_FILLS_PER_RUN)
            sim.reset_requests()
            child = start_load(sim, tmp_path)
            kill_at(point, child, sim, tmp_path)
            scratch = tmp_path / f"restored_{kill}"
            seen = assert_marks_cover_the_data(tmp_path, scratch, sim.expected_fills())
            killed = "killed" if child.returncode == -signal.SIGKILL else "ended first"
            outcomes.append(f"{point}: {killed} after {len(sim.requests)} requests; {seen}")

        for _ in range(2):
            rerun = start_load(sim, tmp_path)
            _, errors = rerun.communicate()
            assert rerun.returncode == 0, errors
        pipeline = attach(tmp_path)
        assert pipeline is not None
        assert not pipeline.has_pending_data
        assert high_water_marks(pipeline)
        assert_fills_equal(pipeline, sim.expected_fills())
        print("\n".join(outcomes))


CHUNKED_HISTORY_FILLS = 3000
"""The chunked history: three chunks, enough for a kill in each and one between them."""
CHUNK_FILLS = 1000
"""The chunked history's run size: 10 pages of CHUNKED_PAGE_SIZE fills."""
CHUNKED_PAGE_SIZE = 100
CHUNKED_KILL_POINTS = (
    KillPoint(requests=7),  # in the first chunk's extract
    KillPoint(requests=25),  # a later chunk's extract
    KillPoint(stage=EXTRACTED),  # a chunk committed, not yet loaded
    KillPoint(stage=LOADING),  # a chunk loading
    KillPoint(requests=12),  # the resumed run, again in an extract
)


def caught_up_requests(sim: Simulator, folder: Path) -> int:
    """Loads the whole history in chunks, uninterrupted, and returns its fills requests."""
    sim.reset_requests()
    child = start_load(
        sim, folder, "caught-up", page_size=CHUNKED_PAGE_SIZE, max_fills_per_run=CHUNK_FILLS
    )
    _, errors = child.communicate()
    assert child.returncode == 0, errors
    return sim.request_counts()["fills"]


@pytest.mark.slow
def test_killed_chunked_history_spends_at_most_one_chunk_again(tmp_path: Path):
    """Each kill costs at most the requests of the chunk it interrupted: 10 pages of the run's
    budget, and one page in flight for each of the history's 6 windows read side by side."""
    with Simulator(seed=13, fills=CHUNKED_HISTORY_FILLS, api_key=API_KEY) as sim:
        sim.faults.latency = 0.005
        uninterrupted = caught_up_requests(sim, tmp_path / "uninterrupted")
        folder = tmp_path / "killed"
        spent = 0
        for point in CHUNKED_KILL_POINTS:
            sim.reset_requests()
            child = start_load(
                sim, folder, "caught-up", page_size=CHUNKED_PAGE_SIZE, max_fills_per_run=CHUNK_FILLS
            )
            kill_at(point, child, sim, folder)
            spent += sim.request_counts()["fills"]
        spent += caught_up_requests(sim, folder)
        pipeline = attach(folder)
        assert pipeline is not None
        assert_fills_equal(pipeline, sim.expected_fills())
        chunk = CHUNK_FILLS // CHUNKED_PAGE_SIZE + 6
        print(f"uninterrupted {uninterrupted} fills requests; killed 5 times {spent}")
        assert uninterrupted <= CHUNKED_HISTORY_FILLS / CHUNKED_PAGE_SIZE + 6
        assert spent - uninterrupted <= len(CHUNKED_KILL_POINTS) * chunk
