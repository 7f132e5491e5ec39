"""Runs left unattended: one run per pipeline, a kill during normalize or in dlt's file writes
repaired, and every stop signal ending the command within 10 s, exit 143 or 130, with nothing
loaded lost."""

import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dlt
import pytest
from dlt.common.schema import Schema
from dlt.common.schema.exceptions import InvalidSchemaName
from dlt.common.storages import (
    LoadStorage,
    NormalizeStorage,
    SchemaStorage,
    SchemaStorageConfiguration,
)
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    EXIT_PIPELINE_BUSY,
    LOCAL_DATABASE,
    PIPELINE_NAME,
    PipelineFactory,
    landed,
    landed_fill_key,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import STATUS
from hypertracker_source.api.request_flow import interrupt_requests
from hypertracker_source.commands import main
from hypertracker_source.config.defaults import STOP_GRACE
from hypertracker_source.exceptions import (
    HyperTrackerInterruptedError,
    HyperTrackerPipelineBusyError,
)
from hypertracker_source.runs.failures import interrupting_signal
from hypertracker_source.runs.recovery import repair_cut_storage
from hypertracker_source.runs.run_lock import lock_holder, pipeline_lock

STOP_LIMIT = 10.0
"""What every command promises: it ends within 10 s of SIGTERM or SIGINT."""
COMMAND_TIMEOUT = 240.0
SMALL = ["--heatmap-coins", "BTC", "--segments", "9"]


def extracted_folder(pipeline: dlt.Pipeline) -> Path:
    """Where a pipeline keeps packages extracted and not yet normalized."""
    return Path(pipeline.working_dir, "normalize", NormalizeStorage.EXTRACTED_FOLDER)


def normalize_killed_between_its_renames(pipeline: dlt.Pipeline, sim: Simulator) -> str:
    """Extracts the fills, and leaves what a kill inside normalize's commit leaves: the package
    normalized and committed, and its extracted copy still there. Returns the package's id."""
    pipeline.extract(source_for(sim).with_resources("liquidation_fills"))
    (load_id,) = pipeline.list_extracted_load_packages()
    kept = extracted_folder(pipeline).parent / "kept"
    shutil.copytree(extracted_folder(pipeline) / load_id, kept)
    pipeline.normalize()
    shutil.move(kept, extracted_folder(pipeline) / load_id)
    return load_id


def test_dlt_normalize_fails_for_ever_on_the_copy_a_kill_leaves(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    """Pins the dlt behaviour recovery.py works around: normalize re-spools an extracted package
    already committed, and cannot rename it onto the committed one."""
    pipeline = make_pipeline(name="twin")
    normalize_killed_between_its_renames(pipeline, simulator)

    with pytest.raises(PipelineStepFailed) as failed:
        pipeline.normalize()

    assert isinstance(failed.value.__cause__, OSError)
    assert failed.value.__cause__.errno == 39  # Directory not empty


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder to run the command in, holding dlt's pipelines and files too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    return tmp_path


def fill_keys(database: Path) -> list[tuple]:
    """The keys of every fill in a DuckDB file's dataset, duplicates kept."""
    dataset = dlt.dataset(dlt.destinations.duckdb(str(database)), "hypertracker")
    return [landed_fill_key(row) for row in landed(dataset, "liquidation_fills")]


def test_a_load_after_a_kill_during_normalize_lands_every_fill_once(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    sim = simulator_settings
    killed = dlt.pipeline(
        PIPELINE_NAME,
        destination=dlt.destinations.duckdb(str(workdir / LOCAL_DATABASE)),
        dataset_name="hypertracker",
    )
    normalize_killed_between_its_renames(killed, sim)
    sim.advance_state(new_fills=25)

    assert main(["load", "--resources", "liquidation_fills"]) == 0, capsys.readouterr().err

    assert "Finishing the load an interrupted run left behind first." in capsys.readouterr().out
    keys = fill_keys(workdir / LOCAL_DATABASE)
    assert len(keys) == len(set(keys)) == len(sim.expected_fills())


UNRENAMED_SCHEMA = "1403d28391d94a9d"
"""The temporary name dlt's `FileStorage.save_atomic` gives a schema before renaming it (a random
16-hex-digit id): the name a chaos trial's kill left in the schemas folder."""


def cut_in_dlts_file_writes(working_dir: Path) -> None:
    """Leaves what the chaos harness found after two kills: a schema written under its temporary
    name and not renamed, and a load storage whose inner folders were not all made."""
    (schema,) = (working_dir / "schemas").glob("*.schema.json")
    shutil.copy(schema, working_dir / "schemas" / UNRENAMED_SCHEMA)
    shutil.rmtree(working_dir / "load" / LoadStorage.NORMALIZED_FOLDER)


def test_dlt_fails_for_ever_on_the_files_a_kill_cut_in_its_writes(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    """Pins the dlt behaviour recovery.py repairs: if it changes, so may the repair."""
    pipeline = make_pipeline(name="cut")
    pipeline.run(source_for(simulator).with_resources("liquidation_fills"))
    working_dir = Path(pipeline.working_dir)
    cut_in_dlts_file_writes(working_dir)

    with pytest.raises(FileNotFoundError):
        pipeline.has_pending_data  # noqa: B018
    schemas = SchemaStorage(SchemaStorageConfiguration(str(working_dir / "schemas")))
    assert UNRENAMED_SCHEMA in schemas.list_schemas()
    with pytest.raises(InvalidSchemaName):
        Schema(UNRENAMED_SCHEMA)  # what dlt makes of a listed name that has no schema file


def test_a_load_after_kills_cut_dlts_file_writes_repairs_them_and_lands_every_fill_once(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    sim = simulator_settings
    assert main(["load", "--resources", "liquidation_fills"]) == 0, capsys.readouterr().err
    working_dir = workdir / "dlt" / "pipelines" / PIPELINE_NAME
    cut_in_dlts_file_writes(working_dir)
    sim.advance_state(new_fills=25)

    assert main(["load", "--resources", "liquidation_fills"]) == 0, capsys.readouterr().err

    assert [path.name for path in (working_dir / "schemas").iterdir()] == [
        f"{PIPELINE_NAME}.schema.json"
    ]
    assert (working_dir / "load" / LoadStorage.NORMALIZED_FOLDER).is_dir()
    keys = fill_keys(workdir / LOCAL_DATABASE)
    assert len(keys) == len(set(keys)) == len(sim.expected_fills())


def test_the_repair_leaves_a_folder_alone_while_another_run_holds_its_lock(tmp_path: Path):
    """A run that holds the lock is alive: the file under a temporary name is its own save."""
    working_dir = tmp_path / PIPELINE_NAME
    (working_dir / "schemas").mkdir(parents=True)
    (working_dir / "load").mkdir()
    unrenamed = working_dir / "schemas" / UNRENAMED_SCHEMA
    unrenamed.write_text("{}")
    other_run = os.open(f"{working_dir}.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(other_run, fcntl.LOCK_EX)
        assert repair_cut_storage(working_dir) == []
        assert unrenamed.exists()
    finally:
        os.close(other_run)

    repaired = repair_cut_storage(working_dir)

    assert not unrenamed.exists()
    folders = [LoadStorage.NEW_PACKAGES_FOLDER, LoadStorage.NORMALIZED_FOLDER]
    folders.append(LoadStorage.LOADED_FOLDER)
    assert sorted(path.name for path in repaired) == sorted([*folders, UNRENAMED_SCHEMA])


def command(folder: Path, sim: Simulator, *args: str) -> subprocess.Popen[str]:
    """Starts `hypertracker <args>` in a folder of its own dlt data, against the simulator."""
    env = {
        **os.environ,
        "DLT_DATA_DIR": str(folder / "dlt"),
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
        "SOURCES__HYPERTRACKER__BASE_URL": sim.url,
        "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.05",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "hypertracker_source.commands", *args],
        cwd=folder,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def cli_pipeline(folder: Path) -> dlt.Pipeline:
    """The pipeline `hypertracker load` runs in a folder, attached from outside."""
    return dlt.pipeline(
        PIPELINE_NAME,
        pipelines_dir=str(folder / "dlt" / "pipelines"),
        destination=dlt.destinations.duckdb(str(folder / LOCAL_DATABASE)),
        dataset_name="hypertracker",
    )


def wait_until(condition, what: str, timeout: float = COMMAND_TIMEOUT) -> None:
    """Polls the condition until it holds; fails after the timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.02)


def stop_and_time(
    process: subprocess.Popen[str], signal_number: int
) -> tuple[int, float, str, str]:
    """Sends the signal; the exit code, the seconds it took to end, its stdout and stderr."""
    started = time.monotonic()
    process.send_signal(signal_number)
    try:
        stdout, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, time.monotonic() - started, stdout, stderr


@pytest.mark.slow
def test_two_loads_started_together_one_loads_the_other_exits_with_the_locks_line(
    tmp_path: Path, simulator: Simulator
):
    simulator.faults.latency = 2.0  # the first run is still reading while the second starts
    first = command(tmp_path, simulator, "load", *SMALL)
    wait_until(lambda: lock_holder(cli_pipeline(tmp_path)) is not None, "the first run locked")
    second = command(tmp_path, simulator, "load", *SMALL)
    _, second_err = second.communicate(timeout=COMMAND_TIMEOUT)
    simulator.faults.latency = 0.0
    _, first_err = first.communicate(timeout=COMMAND_TIMEOUT)

    assert first.returncode == 0, first_err
    assert second.returncode == EXIT_PIPELINE_BUSY
    assert second_err.startswith(
        f"hypertracker: error: HyperTrackerPipelineBusyError: pipeline {PIPELINE_NAME} is in use "
        f"by process {first.pid} on "
    ), second_err
    assert second_err.rstrip().endswith("or wait longer with --lock-wait SECONDS"), second_err
    assert "(__main__.py load)" in second_err
    assert len(second_err.splitlines()) == 1
    keys = fill_keys(tmp_path / LOCAL_DATABASE)
    assert len(keys) == len(set(keys)) == len(simulator.expected_fills())
    assert lock_holder(cli_pipeline(tmp_path)) is None


@pytest.mark.slow
def test_follow_stopped_during_dlts_load_step_exits_143_and_the_rerun_completes(
    tmp_path: Path, simulator: Simulator
):
    follower = command(tmp_path, simulator, "follow", *SMALL)
    normalized = Path(tmp_path, "dlt", "pipelines", PIPELINE_NAME, "load", "normalized")
    wait_until(lambda: any(normalized.glob("*")) or follower.poll() is not None, "a load step")
    code, seconds, stdout, stderr = stop_and_time(follower, signal.SIGTERM)

    assert code == 128 + signal.SIGTERM, stderr
    assert seconds < STOP_LIMIT
    assert "retrying" not in stdout
    assert stderr.splitlines()[-1].startswith("hypertracker: interrupted (SIGTERM)")
    rerun = command(tmp_path, simulator, "load", *SMALL)
    _, rerun_err = rerun.communicate(timeout=COMMAND_TIMEOUT)
    assert rerun.returncode == 0, rerun_err
    keys = fill_keys(tmp_path / LOCAL_DATABASE)
    assert len(keys) == len(set(keys)) == len(simulator.expected_fills())


@pytest.mark.slow
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_during_a_slow_answer_ends_the_load_within_10_s(
    signal_number: int, tmp_path: Path, simulator: Simulator
):
    load = command(tmp_path, simulator, "load", *SMALL)
    wait_until(lambda: len(simulator.requests) >= 3, "the load's first answers")
    simulator.faults.slow_seconds = 600.0
    simulator.faults.slow_rate = 1.0
    time.sleep(1.0)
    code, seconds, _, stderr = stop_and_time(load, signal_number)

    assert code == 128 + signal_number, stderr
    assert seconds < STOP_LIMIT
    assert seconds < STOP_GRACE + 1.0
    name = signal.Signals(signal_number).name
    assert stderr.splitlines()[-1].startswith(f"hypertracker: interrupted ({name})")
    simulator.faults.slow_rate = 0.0
    rerun = command(tmp_path, simulator, "load", *SMALL)
    _, rerun_err = rerun.communicate(timeout=COMMAND_TIMEOUT)
    assert rerun.returncode == 0, rerun_err
    keys = fill_keys(tmp_path / LOCAL_DATABASE)
    assert len(keys) == len(set(keys)) == len(simulator.expected_fills())


def test_a_request_refused_after_a_sigterm_ends_the_command_as_a_sigterm(simulator: Simulator):
    # A worker thread's request refused after the stop may be all a failed step's error holds
    # (its cause first, the main thread's interrupt out of reach): it was taken for Ctrl-C, 130.
    client = HyperTrackerClient(simulator.url, API_KEY)
    interrupt_requests(signal.SIGTERM)
    with pytest.raises(HyperTrackerInterruptedError) as refused:
        client.get_json(STATUS)

    assert interrupting_signal(refused.value) == signal.SIGTERM
    assert str(refused.value) == "The run was interrupted (SIGTERM)"
    assert simulator.requests == []


HOLD_THE_LOCK = """
import sys, time, dlt
from hypertracker_source.runs.run_lock import pipeline_lock
with pipeline_lock(dlt.pipeline(sys.argv[1], pipelines_dir=sys.argv[2])):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_live_holder_is_named_and_a_killed_ones_lock_is_free(tmp_path: Path):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_THE_LOCK, "locked", str(tmp_path)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        pipeline = dlt.pipeline("locked", pipelines_dir=str(tmp_path))
        held = lock_holder(pipeline)
        assert held is not None and (held.pid, held.host) == (holder.pid, socket.gethostname())
        busy = pytest.raises(HyperTrackerPipelineBusyError, match=f"by process {holder.pid} on")
        with busy, pipeline_lock(pipeline):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)

    assert lock_holder(pipeline) is None
    with pipeline_lock(pipeline):
        mine = lock_holder(pipeline)
        assert mine is not None and mine.pid == os.getpid()
    assert lock_holder(pipeline) is None


SLEEPER = """
import os, signal, sys, threading, time
from hypertracker_source.runs.stopping import (
    signals_stop_the_command, sleep_unless_stopped, stop_exit_code, stop_requested,
)
woke = []
def sleeper():
    started = time.monotonic()
    woke.append((sleep_unless_stopped(60), time.monotonic() - started))
try:
    with signals_stop_the_command():
        thread = threading.Thread(target=sleeper)
        thread.start()
        print(stop_requested(), flush=True)
        os.kill(os.getpid(), signal.SIG{name})
        time.sleep(60)
except KeyboardInterrupt as error:
    thread.join(10)
    print(stop_requested(), *woke[0], flush=True)
    sys.exit(stop_exit_code(error))
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_wakes_a_sleep_in_another_thread_and_decides_the_exit_code(
    signal_number: int,
):
    """The main thread's sleep is cut by the signal, another thread's sleep (follow's clock's) ends
    within a second of it, and the command exits 128 + the signal with its interrupted line."""
    script = SLEEPER.replace("{name}", signal.Signals(signal_number).name[3:])
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )

    before, after = done.stdout.splitlines()
    stopped, woke, slept = after.split()
    assert (before, stopped, woke) == ("False", "True", "True"), done.stdout
    assert float(slept) < 1.5
    assert done.returncode == 128 + signal_number, done.stderr
    assert f"hypertracker: interrupted ({signal.Signals(signal_number).name})" in done.stderr
