"""The request budget: runs and `follow` never spend more than it, a spent budget stops a run
with its own code and loses nothing, `plan` foresees a run's cost, and `status` tells freshness."""

import json
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pendulum
import pytest
import time_machine
from helpers import (
    API_KEY,
    PipelineFactory,
    assert_fills_equal,
    landed,
    landed_fill_key,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source.api.budget import SPEND_JOURNAL, Spend, SpendLedger, stored_spend
from hypertracker_source.commands import main
from hypertracker_source.commands.check import configured_settings
from hypertracker_source.commands.follow import FollowTiming, follow
from hypertracker_source.commands.follow_budget import BudgetSpread
from hypertracker_source.commands.loading import run_load
from hypertracker_source.commands.plan import make_plan
from hypertracker_source.config.defaults import EXIT_BEHIND, EXIT_BUDGET_SPENT
from hypertracker_source.config.resolve import RequestBudget
from hypertracker_source.exceptions import HyperTrackerBudgetError

TIMING = FollowTiming(poll_margin=30, min_sleep=60, max_sleep=1800, max_backoff=900)
VERSION_EVERY = timedelta(minutes=20)
"""How often the simulated API makes a data version (it announces the next 20 minutes on)."""


def api_requests(sim: Simulator) -> int:
    """The requests the API answered (the heatmap file's downloads go to the file host, free)."""
    counts = sim.request_counts()
    return sum(counts.values()) - counts["download"]


def day_start(days_ahead: int, hour: int = 0) -> datetime:
    """A UTC day ahead of today at this hour, 30 seconds past."""
    today = pendulum.now("UTC").start_of("day")
    return today.add(days=days_ahead, hours=hour, seconds=30)


class TravellingClock:
    """Time that passes for the whole process (time_machine) only while follow sleeps; each
    sleep makes the data versions the API would have made meanwhile, and the last stops follow."""

    def __init__(
        self, traveller: Any, sim: Simulator, versions: int, until: datetime, fills: int = 15
    ) -> None:
        self.sleeps: list[float] = []
        self.stopped = False
        self._traveller = traveller
        self._sim = sim
        self._versions_left = versions
        self._next_version = self.now() + VERSION_EVERY
        self._until = until
        self._fills = fills

    def now(self) -> datetime:
        """The travelled time."""
        return datetime.now(timezone.utc)

    def wait(self, seconds: float) -> bool:
        """Moves time on by `seconds`, making the versions due on the way; stops at the end."""
        self.sleeps.append(seconds)
        target = min(self.now() + timedelta(seconds=seconds), self._until)
        while self._versions_left and self._next_version <= target:
            self._traveller.move_to(self._next_version)
            self._sim.advance_state(new_fills=self._fills, late_fills=2)
            self._versions_left -= 1
            self._next_version += VERSION_EVERY
        self._traveller.move_to(target)
        self.stopped = target >= self._until
        return self.stopped


def follow_within(
    sim: Simulator, pipeline: dlt.Pipeline, budget: int, start: datetime, versions: int
) -> TravellingClock:
    """Runs follow under a daily budget from `start`, as the API makes `versions` versions, until
    the day ends."""
    settings = {"api_key": API_KEY, "base_url": sim.url, "daily_request_budget": budget}
    with time_machine.travel(start, tick=True) as traveller:
        until = pendulum.instance(start).end_of("day").subtract(seconds=30)
        clock = TravellingClock(traveller, sim, versions, until)
        follow(pipeline, settings, run_load, clock, TIMING)
    return clock


@pytest.mark.slow
@pytest.mark.parametrize(
    ("budget", "hour", "versions"),
    [(100, 0, 60), (30, 20, 10)],
    ids=["a day of versions on the free plan's 100", "the evening's 10 versions on 30"],
)
def test_follow_under_a_daily_budget_spends_most_of_it_never_more_and_loads_every_fill(
    budget: int, hour: int, versions: int, simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    clock = follow_within(simulator, pipeline, budget, day_start(1, hour), versions)

    spent = api_requests(simulator)
    assert 0.6 * budget <= spent <= budget, simulator.request_counts()
    assert simulator.version == versions + 1
    assert_fills_equal(pipeline, simulator.expected_fills())
    assert stored_spend(pipeline.state)["day_requests"] <= budget
    assert max(clock.sleeps) > TIMING.max_sleep  # spaced out by the budget, not the API's pace


@pytest.fixture
def big_simulator() -> Any:
    """A simulator with enough history for several fills chunks."""
    with Simulator(seed=7, fills=20_000, api_key=API_KEY) as sim:
        yield sim


def load_command(pipeline_dir: Path, database: Path) -> list[str]:
    """The `hypertracker load` command line into a test's own pipeline and file."""
    return ["load", "--destination", str(database), "--pipeline-name", pipeline_dir.name]


def test_a_run_that_hits_the_budget_stops_with_its_code_loses_nothing_and_the_next_day_continues(
    big_simulator: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("SOURCES__HYPERTRACKER__BASE_URL", big_simulator.url)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__DAILY_REQUEST_BUDGET", "30")
    monkeypatch.setenv("SOURCES__HYPERTRACKER__MAX_FILLS_PER_RUN", "5000")
    database = tmp_path / "budget.duckdb"
    command = load_command(tmp_path / "budgeted", database)

    with time_machine.travel(day_start(1, hour=12), tick=True):
        assert main(command) == EXIT_BUDGET_SPENT
        first_day = api_requests(big_simulator)
        error = capsys.readouterr().err.strip().splitlines()[-1]
    pipeline = dlt.pipeline(
        pipeline_name="budgeted",
        pipelines_dir=str(tmp_path / "dlt" / "pipelines"),
        destination=dlt.destinations.duckdb(str(database)),
        dataset_name="hypertracker",
    )
    keys = [landed_fill_key(row) for row in landed(pipeline, "liquidation_fills")]

    assert first_day == 30
    assert error.startswith(
        "hypertracker: error: HyperTrackerBudgetError: The request budget is spent: requests "
        "today 30 of 30, this month 30 (sources.hypertracker.daily_request_budget); 0 left until "
        "it renews at "
    )
    assert 5000 <= len(keys) == len(set(keys)) < 20_000
    assert stored_spend(pipeline.state)["day_requests"] == 30
    journal = json.loads((Path(pipeline.working_dir) / SPEND_JOURNAL).read_text())
    assert journal["day_requests"] == 30

    big_simulator.reset_requests()
    with time_machine.travel(day_start(2, hour=0), tick=True):
        assert main(command) == 0
        assert (
            f"Budget: requests today {api_requests(big_simulator)} of 30" in capsys.readouterr().out
        )
    assert api_requests(big_simulator) <= 30
    assert_fills_equal(pipeline, big_simulator.expected_fills())


def plan_total(pipeline: dlt.Pipeline, sim: Simulator) -> int:
    """What `plan` says the next run costs, in API requests."""
    settings = configured_settings(api_key=API_KEY, base_url=sim.url)
    status = {"lastUpdate": sim.last_update.isoformat()}
    return int(make_plan(pipeline, settings, status)["next_run"]["total"])


def test_plans_estimate_of_the_next_run_is_within_10_percent_of_what_it_costs(
    big_simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    settings = {"api_key": API_KEY, "base_url": big_simulator.url}
    with pytest.raises(Exception, match="request budget is spent"):
        run_load(pipeline, {**settings, "daily_request_budget": 28, "max_fills_per_run": 4000})
    costs: list[tuple[int, int]] = []
    for new_fills in (0, 1500, 40):
        if new_fills:
            big_simulator.advance_state(new_fills=new_fills, late_fills=3)
        estimate = plan_total(pipeline, big_simulator)
        big_simulator.reset_requests()
        run_load(pipeline, settings)
        costs.append((estimate, api_requests(big_simulator)))

    for estimate, spent in costs:
        assert abs(estimate - spent) <= 0.1 * spent, costs
    assert_fills_equal(pipeline, big_simulator.expected_fills())


def run_status(capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, dict[str, Any]]:
    """`hypertracker status --json` with these options: its exit code and what it printed."""
    code = main(["status", "--json", *options])
    return code, json.loads(capsys.readouterr().out)


def test_status_shows_what_a_pipeline_holds_and_exits_3_when_behind(
    simulator_settings: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    database = tmp_path / "status.duckdb"
    options = ["--destination", str(database), "--pipeline-name", "watched"]
    assert main(["load", *options, "--heatmap-coins", "BTC", "--segments", "9"]) == 0
    capsys.readouterr()
    simulator_settings.reset_requests()

    code, fresh = run_status(capsys, *options)
    assert code == 0
    assert simulator_settings.request_counts() == Counter({"status": 1})
    assert fresh["rows"] == {
        "liquidation_fills": 3000,
        "liquidation_heatmap": len(simulator_settings.expected_heatmap("BTC")),
        "liquidation_risk": len(simulator_settings.expected_risk(9)),
        "segments": 16,
    }
    newest = max(fill["time"] for fill in simulator_settings.expected_fills())
    assert pendulum.parse(fresh["newest_fill"]) == pendulum.parse(newest)
    assert pendulum.parse(fresh["loaded_version"]) == simulator_settings.last_update
    assert pendulum.parse(fresh["api_version"]) == simulator_settings.last_update
    assert fresh["pending_reads"] == 0
    assert fresh["last_run"]["outcome"] == "succeeded"
    assert fresh["lock_holder"] is None
    assert fresh["stale"] is False

    with time_machine.travel(pendulum.now("UTC").add(hours=3), tick=True):
        simulator_settings.advance_state(new_fills=10)
        code, behind = run_status(capsys, *options)
        offline_code, offline = run_status(capsys, *options, "--offline", "--max-behind-hours", "4")
    assert code == EXIT_BEHIND
    assert behind["stale"] is True
    assert behind["behind_seconds"] >= 3 * 3600 - 60
    assert offline_code == 0
    assert offline["api_version"] is None
    assert simulator_settings.request_counts()["status"] == 2


class FixedClock:
    """A clock that stays where it is put."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_ledger_counts_the_larger_of_journal_and_state_and_starts_each_day_and_month_at_0(
    tmp_path: Path,
):
    clock = FixedClock(datetime(2026, 11, 30, 23, 59, tzinfo=timezone.utc))
    journal = tmp_path / SPEND_JOURNAL
    stored = {"day": "2026-11-30", "day_requests": 7, "month": "2026-11", "month_requests": 70}
    ledger = SpendLedger(RequestBudget(daily=10), journal, stored, clock=clock)
    for _ in range(3):
        ledger.charge()
    with pytest.raises(HyperTrackerBudgetError, match=r"10 of 10.*renews at 2026-12-01 00:00 UTC"):
        ledger.charge()
    assert json.loads(journal.read_text())["month_requests"] == 73
    other_process = SpendLedger(RequestBudget(daily=10), journal, None, clock=clock)
    assert other_process.spend().day_requests == 10

    clock.now += timedelta(minutes=2)
    ledger.charge()
    assert ledger.spend() == Spend("2026-12-01", 1, "2026-12", 1)


def test_follow_loads_fills_first_and_snapshots_only_when_the_days_fills_are_paid_for():
    clock = FixedClock(datetime(2026, 11, 1, 0, 0, 30, tzinfo=timezone.utc))
    free = BudgetSpread(SpendLedger(RequestBudget(daily=100), None, clock=clock))
    pulse = BudgetSpread(SpendLedger(RequestBudget(monthly=50_000), None, clock=clock))

    assert free.choose(clock.now)[:2] == (True, False)
    assert pulse.choose(clock.now)[:2] == (True, True)
    assert free.spacing(clock.now) == pytest.approx((86400 - 30) * 3 / 100)
    assert BudgetSpread(None).choose(clock.now)[:2] == (True, True)
    assert BudgetSpread(None).spacing(clock.now) == 0


def test_every_attempt_counts_against_the_budget_retries_included(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    simulator.faults.error_rate = 0.3
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator, daily_request_budget=1000))
    simulator.faults.error_rate = 0.0

    spent = api_requests(simulator)
    assert spent > 22 + 5  # the history and snapshots, and retries of the failed answers
    assert stored_spend(pipeline.state)["day_requests"] == spent
    assert_fills_equal(pipeline, simulator.expected_fills())
