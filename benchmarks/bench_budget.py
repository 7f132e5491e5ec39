"""Requests per data version at default settings, and what `follow` makes of each plan's budget.

    .venv/bin/python -m benchmarks.bench_budget

Part 1 loads a simulator's history, then `--versions` new data versions (each with new and late
fills) one run each, at default settings, and counts the API requests of every run by endpoint
(the simulator's request log; the heatmap file's download is on the file host and costs none).
Part 2 runs `follow`'s budget policy (hypertracker_source/commands/follow_budget.py, the code
follow runs) over one simulated UTC day of a 30-day month, for versions every 15 and every 30
minutes, under
each plan's budget, charging each request to a real ledger at the costs measured in part 1: one
status poll per wake-up, and per load its fills page and, when chosen, its snapshot requests.
Prints a markdown report and writes it to benchmarks/results/budget.md.
"""

import argparse
import tempfile
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any

import dlt

from benchmarks.measure import machine, markdown_table, write_result
from hypertracker_simulator import Simulator
from hypertracker_source.api.budget import SpendLedger
from hypertracker_source.api.client import RunStats
from hypertracker_source.api.endpoints import FILLS, STATUS
from hypertracker_source.commands.follow import FollowTiming
from hypertracker_source.commands.follow_budget import BudgetSpread
from hypertracker_source.commands.loading import run_load
from hypertracker_source.config.defaults import PLANS
from hypertracker_source.config.resolve import RequestBudget

API_KEY = "bench-key"
DAY_START = datetime(2026, 11, 1, tzinfo=timezone.utc)
"""A simulated day: the first of a 30-day month, so a monthly plan's daily share is a 30th."""


def requests_per_version(versions: int, fills: int) -> list[Counter[str]]:
    """The API requests of a history load and of each later version's run, at defaults."""
    spent: list[Counter[str]] = []
    with (
        Simulator(seed=7, fills=fills, api_key=API_KEY) as sim,
        tempfile.TemporaryDirectory() as folder,
    ):
        pipeline = dlt.pipeline(
            pipeline_name="bench_budget",
            pipelines_dir=folder,
            destination=dlt.destinations.duckdb(f"{folder}/bench.duckdb"),
            dataset_name="hypertracker",
        )
        settings = {"api_key": API_KEY, "base_url": sim.url}
        for version in range(versions + 1):
            if version:
                sim.advance_state(new_fills=40, late_fills=3)
            sim.reset_requests()
            run_load(pipeline, settings, summary=False)
            counts = sim.request_counts()
            counts.pop("download", None)
            spent.append(counts)
    return spent


class DayClock:
    """The simulated time of a day of follow."""

    def __init__(self) -> None:
        self.now = DAY_START

    def __call__(self) -> datetime:
        return self.now


def follow_day(budget: RequestBudget, every: timedelta, version_cost: Counter[str]) -> dict:
    """One simulated day of follow's policy under the budget: versions made, loaded, with
    snapshots, and requests spent."""
    clock = DayClock()
    ledger = SpendLedger(budget, None, clock=clock)
    spread = BudgetSpread(ledger)
    timing = FollowTiming()
    fills_pages = version_cost[FILLS.name]
    snapshots = sum(version_cost.values()) - fills_pages - version_cost[STATUS.name]
    loaded_version = None
    loads = with_snapshots = spent = 0
    end = DAY_START + timedelta(days=1)
    while clock.now < end:
        if spread.exhausted(clock.now):
            clock.now += timedelta(seconds=spread.until_renewal(clock.now))
            continue
        ledger.charge()
        spent += 1
        version = (clock.now - DAY_START) // every
        if version != loaded_version:
            choice = spread.choose(clock.now)
            if choice.load:
                requests = Counter({FILLS.name: fills_pages})
                if choice.snapshots:
                    requests["snapshots"] = snapshots
                    with_snapshots += 1
                for _ in range(sum(requests.values())):
                    ledger.charge()
                spent += sum(requests.values())
                loads += 1
                loaded_version = version
                spread.learn(RunStats(requests=requests), 1, choice.snapshots)
        next_update = DAY_START + every * (((clock.now - DAY_START) // every) + 1)
        wait = max(
            timing.until_update(next_update.isoformat(), clock.now), spread.spacing(clock.now)
        )
        clock.now += timedelta(seconds=wait)
    made = int(timedelta(days=1) / every)
    return {"made": made, "loaded": loads, "with_snapshots": with_snapshots, "spent": spent}


def main() -> None:
    """Measures, prints and writes the report."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--versions", type=int, default=5, help="new versions to load (5)")
    parser.add_argument("--fills", type=int, default=20_000, help="simulated history (20000)")
    args = parser.parse_args()
    runs = requests_per_version(args.versions, args.fills)
    history, later = runs[0], runs[1:]
    version_cost = sum(later, Counter())
    per_version = Counter({name: count / len(later) for name, count in version_cost.items()})
    typical = Counter({name: round(count) for name, count in per_version.items()})
    part1 = markdown_table(
        ["run", "requests", *sorted(history)],
        [
            ["history load", sum(history.values()), *(history[n] for n in sorted(history))],
            [
                f"a new version (mean of {len(later)})",
                sum(per_version.values()),
                *(per_version[n] for n in sorted(history)),
            ],
        ],
    )
    rows: list[list[Any]] = []
    raw: dict[str, Any] = {"history": history, "per_version": per_version, "follow": {}}
    budgets = {
        name: RequestBudget(limits.daily_requests, limits.monthly_requests, name)
        for name, limits in PLANS.items()
    }
    for name, budget in budgets.items():
        allowance = min(x for x in (budget.daily, (budget.monthly or 0) // 30 or None) if x)
        for minutes in (15, 30):
            day = follow_day(budget, timedelta(minutes=minutes), typical)
            raw["follow"][f"{name}/{minutes}"] = day
            rows.append(
                [
                    name,
                    f"{allowance:,}",
                    f"{minutes} min",
                    day["made"],
                    day["loaded"],
                    day["with_snapshots"],
                    day["spent"],
                    f"{day['spent'] / max(1, day['made']):.1f}",
                ]
            )
    part2 = markdown_table(
        [
            "plan",
            "a day",
            "versions every",
            "made",
            "loaded",
            "with heatmaps+risk",
            "requests spent",
            "per version made",
        ],
        rows,
    )
    report = (
        "# The request budget: requests per data version, and follow under each plan\n\n"
        f"Machine: {machine()}\n\n"
        "## Requests per data version at default settings (3 heatmap coins, 16 cohorts)\n\n"
        f"{part1}\n\n"
        "## follow's policy over one UTC day under each plan's budget\n\n"
        "Without a budget follow loads every version with everything: "
        f"{sum(typical.values())} requests a version plus its polls.\n\n"
        f"{part2}\n"
    )
    print(report)
    print(write_result("budget", report, raw))


if __name__ == "__main__":
    main()
