"""Chaos: `hypertracker load` and `follow` killed (SIGKILL) or stopped (SIGTERM) at random moments,
and two or three runs of one pipeline started together; each trial then rerun cleanly and checked.

For each trial: stuck (the clean rerun failed), lost fills (the simulator's full set against what
landed), doubled fills (rows sharing a primary key), stop time (signal to exit, SIGTERM only) and
peak memory (the largest process of the trial: its own pages' high-water mark, VmHWM).

Scenarios are a table (`SCENARIOS`): a hostile-server scenario is one more row naming the
simulator's faults (`Faults` fields): a dripping answer, a gzip bomb, a huge field, refused or
looping cursors, broken fills, a file link that redirects elsewhere. Fills the data contract sets
apart (in `liquidation_fills_rejected`) are counted as such, not as lost.

    python -m benchmarks.chaos                  # the full run, written to docs/reliability.md
    python -m benchmarks.chaos --short          # a few trials, as CI runs them
"""

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dlt

from benchmarks.measure import CHILD_ENVIRONMENT, PROJECT_ROOT, machine, markdown_table
from hypertracker_simulator import Faults, Simulator
from hypertracker_source.commands.options import LOCAL_DATABASE, PIPELINE_NAME
from hypertracker_source.config.defaults import REJECTED_FILLS_TABLE
from hypertracker_source.fills.contract import REJECTED_FILL_KEY
from hypertracker_source.schema import FILL_PRIMARY_KEY

API_KEY = "chaos-key"
DATASET = "hypertracker"
POSTGRES_CREDENTIALS = "postgresql://postgres:chaos@127.0.0.1:5432/test"
FILLS = 3000
SOURCE_SETTINGS = {
    "SOURCES__HYPERTRACKER__PAGE_SIZE": "100",
    "SOURCES__HYPERTRACKER__MAX_FILLS_PER_RUN": "1000",
    "SOURCES__HYPERTRACKER__HEATMAP_COINS": "BTC",
    "SOURCES__HYPERTRACKER__SEGMENT_IDS": "9",
}
"""Small pages and chunks, so that one run goes through many requests and several packages."""
FOLLOW_OPTIONS = ("--min-sleep", "0.2", "--max-sleep", "0.5", "--max-backoff", "1")
DRIP_DEADLINE = 4.0
"""The dripping server's runs give each answer 4 s (sources.hypertracker.response_deadline), so
that a run fails on its own within the trial too, not only when signalled."""
NEW_FILLS_EVERY = 1.5
"""Seconds between two new data versions while `follow` runs, each with new fills."""
RUN_TIMEOUT = 300.0
STOP_LIMIT = 10.0
REPORT = PROJECT_ROOT / "docs" / "reliability.md"


@dataclass(frozen=True)
class Scenario:
    """One row of the chaos table: what runs, on which destination, against which server."""

    name: str
    command: str = "load"
    destination: str = "duckdb"
    together: int = 1
    """Runs of one pipeline started at once (1: one run, signalled at a random moment)."""
    kills_per_trial: int = 3
    """Signals sent one after another in a trial (each to a new run) before its clean rerun."""
    faults: dict[str, Any] = field(default_factory=dict)
    """The simulator's faults, by `Faults` field: the hostile server of this scenario."""
    lasting: bool = False
    """Whether the clean rerun meets the same faults (refused cursors, broken fills: what a run
    must get past on its own) rather than a sound server (what only has to leave nothing broken)."""
    raised_each_run: tuple[str, ...] = ()
    """`Faults` fields raised by one before every run: a new API release each time."""
    settings: dict[str, str] = field(default_factory=dict)
    """Environment settings of the scenario's runs, the clean rerun's included."""


SCENARIOS = {
    scenario.name: scenario
    for scenario in (
        Scenario("load, duckdb"),
        Scenario("follow, duckdb", command="follow"),
        Scenario("load, postgres", destination="postgres"),
        Scenario("follow, postgres", command="follow", destination="postgres"),
        Scenario("load, duckdb, slow answers", faults={"slow_rate": 0.2, "slow_seconds": 30.0}),
        Scenario("two loads together", together=2, kills_per_trial=0),
        Scenario("three loads together", together=3, kills_per_trial=0),
        Scenario(
            "hostile: answers dripped a byte at a time",
            faults={"drip_seconds": 0.05},
            settings={"SOURCES__HYPERTRACKER__RESPONSE_DEADLINE": str(DRIP_DEADLINE)},
        ),
        Scenario("hostile: a 3 GiB gzip bomb heatmap file", faults={"gzip_bomb_mb": 3072}),
        Scenario("hostile: a 300 MB field in every fills page", faults={"huge_field_mb": 300.0}),
        Scenario(
            "hostile: every stored cursor refused",
            raised_each_run=("cursor_generation",),
            lasting=True,
        ),
        Scenario("hostile: a cursor that never moves", faults={"loop_cursors": True}),
        Scenario("hostile: 1 fill in 50 broken", faults={"bad_fill_rate": 0.02}, lasting=True),
        Scenario(
            "hostile: the file link redirects elsewhere",
            faults={"file_redirect": "http://127.0.0.2:9/hypertracker-exports/BTC/x.json"},
        ),
    )
}
"""Every scenario by name: plain, runs together, and a hostile server's (see `Scenario.faults`)."""


@dataclass
class Trial:
    """What one trial saw."""

    scenario: str
    dataset: str = field(default_factory=lambda: f"chaos_{uuid.uuid4().hex[:8]}")
    """Where the trial loads: its own dataset, so that trials on one database never meet."""
    signals: list[str] = field(default_factory=list)
    phases: list[str] = field(default_factory=list)
    stop_seconds: list[float] = field(default_factory=list)
    exit_codes: list[int] = field(default_factory=list)
    peak_mb: float = 0.0
    stuck: bool = False
    lost: int = 0
    set_apart: int = 0
    """Broken fills the data contract set apart in REJECTED_FILLS_TABLE: accounted for, not lost."""
    doubled: int = 0
    rerun_error: str = ""


class Run:
    """One `hypertracker` command in a process of its own, in a trial's folder."""

    def __init__(self, folder: Path, sim: Simulator, trial: Trial, *args: str) -> None:
        env = {
            **os.environ,
            **CHILD_ENVIRONMENT,
            **SOURCE_SETTINGS,
            **SCENARIOS[trial.scenario].settings,
            "PYTHONPATH": str(PROJECT_ROOT),
            "DLT_DATA_DIR": str(folder / "dlt"),
            "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
            "SOURCES__HYPERTRACKER__BASE_URL": sim.url,
            "RUNTIME__REQUEST_BACKOFF_FACTOR": "0.05",
            "DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_CREDENTIALS,
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hypertracker_source.commands",
                *args,
                *destination_args(trial),
            ],
            cwd=folder,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stderr = ""
        self._drain = threading.Thread(target=self._read_stderr, daemon=True)
        self._drain.start()

    def _read_stderr(self) -> None:
        """Keeps the child's stderr from filling its pipe."""
        assert self.process.stderr is not None
        self.stderr = self.process.stderr.read()

    def running(self) -> bool:
        """Whether the process has not ended yet; leaves it to `wait` to collect."""
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, self.process.pid, flags) is None

    def wait(self, timeout: float = RUN_TIMEOUT) -> tuple[int, float]:
        """Waits for the process; its exit code and peak memory in MB (the kernel's high-water
        mark of its own pages, read every 10 ms while it runs)."""
        deadline = time.monotonic() + timeout
        peak_kb = 0
        while True:
            peak_kb = max(peak_kb, high_water_kb(self.process.pid))
            pid, status = os.waitpid(self.process.pid, os.WNOHANG)
            if pid:
                self.process.returncode = os.waitstatus_to_exitcode(status)
                self._drain.join(timeout=5)
                return self.process.returncode, peak_kb / 1024
            if time.monotonic() > deadline:
                self.process.kill()
                timeout = float("inf")
            time.sleep(0.01)


def high_water_kb(pid: int) -> int:
    """A running process's peak resident memory so far, in kB (0 once it has ended).

    Not wait4's `ru_maxrss`: a child started by vfork, as `subprocess` does, counts the pages of
    its parent at exec, and this harness's simulator holds hundreds of MB of hostile answers.
    """
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def destination_args(trial: Trial) -> list[str]:
    """The command's destination options for a trial: a DuckDB file in its folder, or its own
    PostgreSQL dataset."""
    if SCENARIOS[trial.scenario].destination == "postgres":
        return ["--destination", "postgres", "--dataset", trial.dataset]
    return []


def dataset_of(folder: Path, trial: Trial) -> dlt.Dataset:
    """The dataset a trial's runs load into."""
    if SCENARIOS[trial.scenario].destination == "postgres":
        return dlt.dataset(dlt.destinations.postgres(POSTGRES_CREDENTIALS), trial.dataset)
    return dlt.dataset(dlt.destinations.duckdb(str(folder / LOCAL_DATABASE)), DATASET)


STAGES = {
    "extracted": "normalize/extracted/*",
    "normalizing": "load/new/*",
    "loading": "load/normalized/*/started_jobs/*",
}
"""Where a run is, by what its working folder holds: a package committed by extract, being
normalized, being loaded."""
TARGETS = ("at random", *STAGES)
"""When a run is signalled: at a random moment, or as it reaches a stage (then within 50 ms)."""


def working_paths(folder: Path) -> dict[str, set[Path]]:
    """What the trial pipeline's working folder holds now, stage by stage."""
    working = folder / "dlt" / "pipelines" / PIPELINE_NAME
    return {stage: set(working.glob(pattern)) for stage, pattern in STAGES.items()}


def reach(target: str, run: Run, folder: Path, span: float, dice: random.Random) -> str:
    """Waits until the moment to signal the run; says what it reached (a stage, or the time)."""
    if target == "at random":
        time.sleep(dice.uniform(0.2, span))
        return "at random"
    before = working_paths(folder)[target]
    deadline = time.monotonic() + 2 * span
    while time.monotonic() < deadline and run.running():
        if working_paths(folder)[target] - before:
            time.sleep(dice.uniform(0.0, 0.05))
            return target
        time.sleep(0.005)
    return "never reached " + target


def args_of(scenario: Scenario) -> list[str]:
    """The command line of a scenario's run."""
    return ["follow", *FOLLOW_OPTIONS] if scenario.command == "follow" else ["load"]


def signalled_run(
    folder: Path, sim: Simulator, scenario: Scenario, span: float, dice: random.Random, trial: Trial
) -> None:
    """Starts a run and sends it SIGKILL or SIGTERM at a random moment of its first `span` s, or
    as it reaches a random stage."""
    raise_each_run(sim, scenario)
    run = Run(folder, sim, trial, *args_of(scenario))
    reached = reach(dice.choice(TARGETS), run, folder, span, dice)
    signal_number = dice.choice((signal.SIGKILL, signal.SIGTERM))
    trial.phases.append(reached if run.running() else "ended")
    trial.signals.append(signal.Signals(signal_number).name)
    sent = time.monotonic()
    if run.running():
        run.process.send_signal(signal_number)
    code, peak = run.wait()
    if signal_number == signal.SIGTERM and trial.phases[-1] != "ended":
        trial.stop_seconds.append(time.monotonic() - sent)
    trial.exit_codes.append(code)
    trial.peak_mb = max(trial.peak_mb, peak)


def runs_together(folder: Path, sim: Simulator, scenario: Scenario, trial: Trial) -> None:
    """Starts several runs of one pipeline at once and waits for them all."""
    runs = [Run(folder, sim, trial, "load") for _ in range(scenario.together)]
    for run in runs:
        code, peak = run.wait()
        trial.exit_codes.append(code)
        trial.peak_mb = max(trial.peak_mb, peak)


def new_versions_while(busy: Callable[[], None], sim: Simulator) -> None:
    """Runs `busy` while the simulator publishes new data versions, with new fills."""
    done = threading.Event()

    def publish() -> None:
        while not done.wait(NEW_FILLS_EVERY):
            sim.advance_state(new_fills=20)

    publisher = threading.Thread(target=publish, daemon=True)
    publisher.start()
    try:
        busy()
    finally:
        done.set()
        publisher.join()


def raise_each_run(sim: Simulator, scenario: Scenario) -> None:
    """Raises the scenario's faults that change before every run."""
    for fault in scenario.raised_each_run:
        setattr(sim.faults, fault, getattr(sim.faults, fault) + 1)


def set_faults(sim: Simulator, faults: dict[str, Any]) -> None:
    """Gives the simulator these faults, by `Faults` field."""
    for fault, value in faults.items():
        setattr(sim.faults, fault, value)


def check(folder: Path, sim: Simulator, scenario: Scenario, trial: Trial) -> None:
    """Reruns the load cleanly, against a sound server unless the scenario's faults last;
    records stuck, lost, doubled and set-apart fills."""
    sound = Faults()
    set_faults(sim, {"slow_rate": 0.0})
    if not scenario.lasting:
        set_faults(sim, {fault: getattr(sound, fault) for fault in scenario.faults})
    raise_each_run(sim, scenario)
    rerun = Run(folder, sim, trial, "load")
    code, peak = rerun.wait()
    trial.peak_mb = max(trial.peak_mb, peak)
    if code != 0:
        trial.stuck = True
        trial.rerun_error = rerun.stderr.strip().splitlines()[-1] if rerun.stderr.strip() else ""
        return
    dataset = dataset_of(folder, trial)
    keys = dataset.liquidation_fills.select(*FILL_PRIMARY_KEY).fetchall()
    landed = set(keys)
    trial.doubled = len(keys) - len(landed)
    kinds = sim.bad_fill_kinds()
    broken = sum(kind is not None for kind in kinds)
    trial.set_apart = set_apart_fills(dataset) if broken else 0
    trial.lost = max(0, len(kinds) - broken - len(landed)) + max(0, broken - trial.set_apart)


def set_apart_fills(dataset: dlt.Dataset) -> int:
    """How many distinct fills the data contract set apart in the dataset."""
    if REJECTED_FILLS_TABLE not in dataset.tables:
        return 0
    hashes = dataset[REJECTED_FILLS_TABLE].select(REJECTED_FILL_KEY).fetchall()
    return len(set(hashes))


def drop_postgres_dataset(folder: Path, trial: Trial) -> None:
    """Drops the trial's PostgreSQL dataset and its staging dataset once checked."""
    if SCENARIOS[trial.scenario].destination != "postgres":
        return
    pipeline = dlt.pipeline(
        trial.dataset,
        destination=dlt.destinations.postgres(POSTGRES_CREDENTIALS),
        dataset_name=trial.dataset,
        pipelines_dir=str(folder / "drop"),
    )
    with pipeline.sql_client() as client:
        for dataset in (trial.dataset, f"{trial.dataset}_staging"):
            client.execute_sql(f"DROP SCHEMA IF EXISTS {dataset} CASCADE")


def run_trial(scenario: Scenario, seed: int, span: float) -> Trial:
    """One trial of a scenario in a fresh folder against a fresh simulator; signals fall within
    the first `span` seconds of a run."""
    dice = random.Random(seed)
    trial = Trial(scenario.name)
    with (
        tempfile.TemporaryDirectory(prefix="chaos-") as name,
        Simulator(seed=seed, fills=FILLS, api_key=API_KEY) as sim,
    ):
        folder = Path(name)
        set_faults(sim, scenario.faults)

        def signalled() -> None:
            for _ in range(scenario.kills_per_trial):
                signalled_run(folder, sim, scenario, span, dice, trial)

        if scenario.together > 1:
            runs_together(folder, sim, scenario, trial)
        elif scenario.command == "follow":
            new_versions_while(signalled, sim)
        else:
            signalled()
        check(folder, sim, scenario, trial)
        drop_postgres_dataset(folder, trial)
    return trial


def summary_rows(trials: Sequence[Trial]) -> list[list[Any]]:
    """The chaos table: one row per scenario."""
    rows = []
    for name in dict.fromkeys(trial.scenario for trial in trials):
        mine = [trial for trial in trials if trial.scenario == name]
        stops = [seconds for trial in mine for seconds in trial.stop_seconds]
        phases = sorted({phase for trial in mine for phase in trial.phases})
        rows.append(
            [
                name,
                len(mine),
                sum(len(trial.signals) for trial in mine),
                sum(trial.signals.count("SIGKILL") for trial in mine),
                sum(trial.stuck for trial in mine),
                sum(trial.lost for trial in mine),
                sum(trial.set_apart for trial in mine),
                sum(trial.doubled for trial in mine),
                f"{max(stops):.1f}" if stops else "-",
                f"{max(trial.peak_mb for trial in mine):.0f}",
                ", ".join(phases) or "-",
                " ".join(sorted({shell_code(code) for trial in mine for code in trial.exit_codes})),
            ]
        )
    return rows


def shell_code(code: int) -> str:
    """An exit code as a shell reports it: 128 + n for a process that signal n ended."""
    return str(128 - code) if code < 0 else str(code)


HEADER = (
    "scenario",
    "trials",
    "signals",
    "of which SIGKILL",
    "stuck",
    "lost fills",
    "fills set apart",
    "doubled fills",
    "longest stop (s)",
    "peak memory (MB)",
    "when signalled",
    "exit codes",
)


FOLLOW_SPAN_FACTOR = 2.0
"""`follow` is signalled within twice a clean load's time: in its first load, a sleep or a later
load."""


def clean_run_seconds(scenario: Scenario, seed: int) -> float:
    """How long a clean load of a scenario's pipeline takes here, start-up included."""
    trial = Trial(scenario.name)
    with (
        tempfile.TemporaryDirectory(prefix="chaos-") as name,
        Simulator(seed=seed, fills=FILLS, api_key=API_KEY) as sim,
    ):
        started = time.monotonic()
        code, _ = Run(Path(name), sim, trial, "load").wait()
        seconds = time.monotonic() - started
        drop_postgres_dataset(Path(name), trial)
    assert code == 0, f"a clean load of {scenario.name} failed"
    return seconds


def signal_span(scenario: Scenario, seed: int) -> float:
    """Within how many seconds of its start a scenario's run is signalled (0: never signalled)."""
    if not scenario.kills_per_trial or scenario.together > 1:
        return 0.0
    factor = FOLLOW_SPAN_FACTOR if scenario.command == "follow" else 1.0
    return factor * clean_run_seconds(scenario, seed)


def run(trials_by_scenario: dict[str, int], seed: int) -> list[Trial]:
    """Runs the trials, printing one line per trial as it ends."""
    trials = []
    for name, count in trials_by_scenario.items():
        span = signal_span(SCENARIOS[name], seed)
        for number in range(count):
            trial = run_trial(SCENARIOS[name], seed + number, span)
            trials.append(trial)
            print(
                f"{name} #{number + 1}: signals {trial.signals} in {trial.phases}, exits "
                f"{trial.exit_codes}, stops {[round(s, 1) for s in trial.stop_seconds]}, "
                f"stuck {trial.stuck} {trial.rerun_error}, lost {trial.lost}, set apart "
                f"{trial.set_apart}, doubled "
                f"{trial.doubled}, peak {trial.peak_mb:.0f} MB",
                flush=True,
            )
    return trials


FULL = {
    "load, duckdb": 7,
    "follow, duckdb": 6,
    "load, duckdb, slow answers": 4,
    "load, postgres": 3,
    "follow, postgres": 1,
    "two loads together": 2,
    "three loads together": 2,
    **{name: 2 for name in SCENARIOS if name.startswith("hostile: ")},
}
"""The full run: 93 signals on DuckDB (42 of them against a hostile server), 12 on PostgreSQL,
and four trials of runs together."""
SHORT = {"hostile: 1 fill in 50 broken": 1}
"""What CI runs: three signals to loads that meet broken fills, then their rerun (signals to plain
loads are tests/test_fail_well.py's and tests/test_kill_resume.py's; two runs started together
tests/test_run_safety.py's, with the busy run's whole line checked)."""


def main() -> None:
    """Runs the chaos table and writes it (the full run) into docs/reliability.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="the few trials CI runs")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.monotonic()
    trials = run(SHORT if args.short else FULL, args.seed)
    table = markdown_table(HEADER, summary_rows(trials))
    print(table)
    if not args.short:
        minutes = (time.monotonic() - started) / 60
        write_report(table, minutes)


def write_report(table: str, minutes: float) -> None:
    """Replaces the chaos table in docs/reliability.md."""
    text = REPORT.read_text()
    start, end = text.index("<!-- chaos -->"), text.index("<!-- /chaos -->")
    measured = f"\nMeasured in {minutes:.0f} minutes on {machine()}.\n\n{table}\n"
    REPORT.write_text(text[: start + len("<!-- chaos -->")] + measured + text[end:])


if __name__ == "__main__":
    main()
