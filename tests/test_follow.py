"""`hypertracker follow`: one load per API data version, only status requests in between, and a
clean stop on a signal; in a thread with a simulated clock, and as a command in a process."""

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest
from helpers import (
    API_KEY,
    PipelineFactory,
    assert_fills_equal,
    high_water_marks,
    landed,
    landed_fill_key,
)

from hypertracker_simulator import Simulator, start_simulator_process
from hypertracker_source.commands.follow import FollowTiming, follow
from hypertracker_source.commands.loading import run_load
from hypertracker_source.exceptions import HyperTrackerAuthError, HyperTrackerError

TIMING = FollowTiming(poll_margin=30, min_sleep=60, max_sleep=1800, max_backoff=900)
ANNOUNCED_SLEEP = 20 * 60 + 30
"""The simulator announces its next update 20 minutes after the last; follow adds its margin."""
SMALL = {"heatmap_coins": ["BTC"], "segment_ids": [9]}
NEW_VERSION_REQUESTS = {
    "status": 1,
    "fills": 1,
    "export": 1,
    "download": 1,
    "risk": 1,
    "segments": 1,
}
"""A new version's requests: the status poll that finds it, reused by the load, and the load's
(the heatmap file's download goes to the file host, not the API, and costs no token)."""
LINE_TIMEOUT = 120.0


class SimulatedClock:
    """Time that passes only while follow sleeps; each sleep runs the test's next step.

    A step returns True when it made a new data version: the simulator stamps it with the real
    time, so the simulated time starts over from the real one there.
    """

    def __init__(self, steps: list[Callable[[float], bool]]) -> None:
        self.sleeps: list[float] = []
        self.stopped = False
        self._offset = 0.0
        self._steps = iter(steps)

    def now(self) -> datetime:
        """The real time plus what follow slept since the last new version."""
        return datetime.now(timezone.utc) + timedelta(seconds=self._offset)

    def wait(self, seconds: float) -> bool:
        """Records the sleep and runs the next step instead; stops after the last step."""
        self.sleeps.append(seconds)
        self._offset += seconds
        step = next(self._steps, None)
        if step is None:
            self.stopped = True
        elif step(seconds):
            self._offset = 0.0
        return self.stopped


def spend(sim: Simulator) -> Counter[str]:
    """The requests the simulator answered since the last call."""
    counts = sim.request_counts()
    sim.reset_requests()
    return counts


def test_one_load_per_version_and_only_status_requests_between(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    spent: list[Counter[str]] = []

    def late(seconds: float) -> bool:
        spent.append(spend(simulator))
        return False

    def new_version(seconds: float) -> bool:
        spent.append(spend(simulator))
        simulator.advance_state(new_fills=20, late_fills=3)
        return True

    clock = SimulatedClock([late, new_version, new_version, new_version])
    settings = {"api_key": API_KEY, "base_url": simulator.url, **SMALL}
    loads = follow(pipeline, settings, run_load, clock, TIMING)
    spent.append(spend(simulator))

    assert loads == 4
    first_load, late_poll, *versions = spent
    assert first_load["status"] == 1
    assert late_poll == {"status": 1}
    assert versions == [NEW_VERSION_REQUESTS] * 3
    # after a load: until the announced update; after a poll that found none: the floor
    announced, floor, *after_loads = clock.sleeps
    assert floor == TIMING.min_sleep
    # the sleep is counted from the version's announcement, so a load's own time (seconds on a
    # busy machine) comes off it; still far above the floor
    for seconds in (announced, *after_loads):
        assert ANNOUNCED_SLEEP - 60 < seconds <= ANNOUNCED_SLEEP
    assert_fills_equal(pipeline, simulator.expected_fills())
    assert len(landed(pipeline, "liquidation_heatmap")) == 4 * len(
        simulator.expected_heatmap("BTC")
    )


def test_a_failed_load_moves_no_mark_and_is_retried_after_a_backoff(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    marks: list[dict[str, str]] = []
    loads_started: list[int] = []

    def load_that_fails_once(*args: Any, **kwargs: Any) -> Any:
        loads_started.append(len(loads_started))
        if len(loads_started) == 2:
            simulator.faults.error_rate = 1.0
        return run_load(*args, **kwargs)

    def new_version(seconds: float) -> bool:
        marks.append(high_water_marks(pipeline))
        simulator.advance_state(new_fills=20, late_fills=3)
        return True

    def mend(seconds: float) -> bool:
        assert seconds == TIMING.backoff(1)
        assert high_water_marks(pipeline) == marks[-1]
        simulator.faults.error_rate = 0.0
        return False

    clock = SimulatedClock([new_version, mend])
    settings = {"api_key": API_KEY, "base_url": simulator.url, **SMALL}
    loads = follow(pipeline, settings, load_that_fails_once, clock, TIMING)

    assert loads == 2
    assert len(loads_started) == 3
    assert high_water_marks(pipeline) != marks[-1]
    assert_fills_equal(pipeline, simulator.expected_fills())


def test_a_rejected_key_stops_follow(simulator: Simulator, make_pipeline: PipelineFactory):
    clock = SimulatedClock([])
    settings = {"api_key": "not-the-key", "base_url": simulator.url, **SMALL}
    with pytest.raises(HyperTrackerAuthError):
        follow(make_pipeline(), settings, run_load, clock, TIMING)
    assert clock.sleeps == []
    assert simulator.request_counts() == {"status": 1}


class FollowProcess:
    """`hypertracker follow` in a process of its own, its output read line by line."""

    def __init__(self, base_url: str, folder: Path, *options: str) -> None:
        command = [str(Path(sys.executable).with_name("hypertracker")), "follow", *options]
        env = {
            **os.environ,
            "SOURCES__HYPERTRACKER__BASE_URL": base_url,
            "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
            "DLT_DATA_DIR": str(folder / "dlt"),
        }
        self.process = subprocess.Popen(
            command,
            cwd=folder,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        """Hands every output line to the queue."""
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def wait_for(self, text: str) -> str:
        """The next output line that holds the text; fails after LINE_TIMEOUT."""
        deadline = time.monotonic() + LINE_TIMEOUT
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.output.append(line)
            if text in line:
                return line
        self.process.kill()
        raise AssertionError(f"no line with {text!r} in:\n{''.join(self.output)}")

    def stop(self, signal_number: int) -> int:
        """Sends the signal and returns the exit code; fails if it does not end in 30 s."""
        self.process.send_signal(signal_number)
        try:
            return self.process.wait(timeout=30)
        finally:
            self.process.kill()

    def rest(self) -> str:
        """The output not read yet."""
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)


def unique_fills(database: Path) -> tuple[int, int]:
    """How many fills landed in a DuckDB file's dataset, and how many distinct keys."""
    dataset = dlt.dataset(dlt.destinations.duckdb(str(database)), "hypertracker")
    keys = [landed_fill_key(row) for row in landed(dataset, "liquidation_fills")]
    return len(keys), len(set(keys))


def test_follow_command_spends_only_status_requests_between_versions(tmp_path: Path):
    database = tmp_path / "followed.duckdb"
    options = ["--destination", str(database), "--heatmap-coins", "BTC", "--segments", "9"]
    sleeps = ["--min-sleep", "0.2", "--max-sleep", "0.4", "--max-backoff", "1"]
    with start_simulator_process(seed=7, fills=3000, api_key=API_KEY) as sim:
        follower = FollowProcess(sim.url, tmp_path, *options, *sleeps)
        follower.wait_for("loaded data version")
        sim.reset_requests()
        time.sleep(2)
        between = sim.request_counts()
        sim.advance_state(new_fills=10)
        follower.wait_for("loaded data version")
        after = sim.request_counts()
        assert follower.stop(signal.SIGTERM) == 128 + signal.SIGTERM, follower.rest()

    assert set(between) == {"status"}
    assert 2 <= between["status"] <= 12
    load = after - between
    assert load.pop("status") >= 1
    assert load == {key: n for key, n in NEW_VERSION_REQUESTS.items() if key != "status"}
    assert "hypertracker: interrupted (SIGTERM)" in follower.rest()
    assert unique_fills(database) == (3010, 3010)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("signal_number", "while_doing"),
    [(signal.SIGTERM, "loading"), (signal.SIGINT, "loaded data version")],
)
def test_follow_command_stops_cleanly_on_a_signal(
    signal_number: int, while_doing: str, tmp_path: Path
):
    database = tmp_path / "followed.duckdb"
    options = ["--destination", str(database), "--heatmap-coins", "BTC", "--segments", "9"]
    with start_simulator_process(seed=7, fills=3000, api_key=API_KEY, latency=1.0) as sim:
        follower = FollowProcess(sim.url, tmp_path, *options)
        follower.wait_for(while_doing)
        started = time.monotonic()
        code = follower.stop(signal_number)
        stopped_in = time.monotonic() - started
        output = follower.rest()
        rerun = FollowProcess(sim.url, tmp_path, *options)
        rerun.wait_for("loaded data version")
        rerun.stop(signal.SIGTERM)

    assert code == 128 + signal_number, output
    assert f"hypertracker: interrupted ({signal.Signals(signal_number).name})" in output
    assert "retrying" not in output
    assert stopped_in < 10
    assert unique_fills(database) == (3000, 3000)


@pytest.mark.parametrize(
    "bounds",
    [
        {"min_sleep": 0},
        {"min_sleep": 120, "max_sleep": 60},
        {"poll_margin": -1},
        {"max_backoff": 10},
    ],
)
def test_follow_refuses_sleep_bounds_that_would_spin(bounds: dict[str, float]):
    with pytest.raises(HyperTrackerError, match="--"):
        FollowTiming(**bounds)


def test_follow_says_when_it_checks_next(
    simulator: Simulator, make_pipeline: PipelineFactory, capsys: pytest.CaptureFixture
):
    def late(seconds: float) -> bool:
        return False

    clock = SimulatedClock([late])
    settings = {"api_key": API_KEY, "base_url": simulator.url, **SMALL}
    follow(make_pipeline(), settings, run_load, clock, TIMING)

    lines = capsys.readouterr().out.splitlines()
    waits = [line for line in lines if "next check at" in line]
    assert len(waits) == len(clock.sleeps) == 2
    for line, seconds in zip(waits, clock.sleeps, strict=True):
        said, announced = line.split(" up to date; next check at ")
        wait = datetime.fromisoformat(announced) - datetime.fromisoformat(said)
        assert abs(wait.total_seconds() - seconds) < 2
