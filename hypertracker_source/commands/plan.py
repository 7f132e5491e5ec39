"""`hypertracker plan`: what the next run and a day of `follow` cost, per endpoint, against the
request budget and each of the API's plans, from the pipeline's state and one status request."""

import argparse
import json
import math
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import dlt
import pendulum
from dlt.common.time import ensure_pendulum_datetime
from pendulum import DateTime

from hypertracker_source import snapshot_requests_due
from hypertracker_source.api.budget import Spend, pipeline_ledger, requests_left, spend_text
from hypertracker_source.api.endpoints import FILLS, SEGMENTS, STATUS
from hypertracker_source.commands.check import configured_settings, status_within_budget
from hypertracker_source.commands.follow_budget import FILLS_VERSION_COST, plan_version_costs
from hypertracker_source.commands.options import (
    AddCommand,
    add_load_options,
    pipeline_from_args,
    source_settings,
)
from hypertracker_source.commands.status import dataset_row, loaded_version
from hypertracker_source.config.defaults import FASTEST_REFRESH, FILLS_RESOURCE, PLANS
from hypertracker_source.config.resolve import RequestBudget, SourceSettings
from hypertracker_source.config.settings import SOURCE_NAME
from hypertracker_source.fills.plan import is_newer_version
from hypertracker_source.fills.state import FILTERS_KEY, pipeline_fills_state
from hypertracker_source.fills.windows import split_windows

_SLOWEST_REFRESH = timedelta(minutes=30)
"""The longest time between two API data versions."""
_DAY = timedelta(days=1)


def register(add_command: AddCommand) -> None:
    """Adds `plan` and its options to the command line."""
    plan = add_command(
        "plan",
        help="what the next run and a day of follow cost in requests, against the budget and "
        "each API plan (1 status request)",
    )
    add_load_options(plan)
    plan.add_argument("--json", action="store_true", help="print JSON for machines")
    plan.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker plan`: the cost of the next run and of a day of follow."""
    pipeline = pipeline_from_args(args)
    settings = configured_settings(**source_settings(args))
    status = status_within_budget(pipeline) or {
        "lastUpdate": datetime.now(timezone.utc).isoformat()
    }
    plan = make_plan(pipeline, settings, status)
    print(json.dumps(plan, indent=2) if args.json else _plan_text(plan))


class _Landed(NamedTuple):
    """The fills landed in a span of time: how many, and the span they cover."""

    fills: int
    covered: timedelta


def landed_fills(pipeline: dlt.Pipeline, start: datetime, end: datetime) -> _Landed:
    """The fills the pipeline's dataset holds in [start, end), and the time they span."""
    sql = (
        f"SELECT COUNT(*), MIN(time), MAX(time) FROM {FILLS_RESOURCE} "
        f"WHERE time >= '{start.isoformat()}' AND time < '{end.isoformat()}'"
    )
    row = dataset_row(pipeline, sql)
    if not row or not row[0]:
        return _Landed(0, timedelta())
    first, last = (ensure_pendulum_datetime(moment) for moment in row[1:])
    return _Landed(int(row[0]), last - first)


class _FillRate:
    """Fills per second of history, from what the state has read: each filter's finished history
    (its fills over its span) and, in each window still pending, the fills landed over the span
    between the oldest and the newest of them (a window is read from one end)."""

    def __init__(self, pipeline: dlt.Pipeline, state: dict[str, Any]) -> None:
        self.fills = 0
        covered = timedelta()
        self._pipeline = pipeline
        for marks in state.get(FILTERS_KEY, {}).values():
            if "loaded_from" not in marks:
                continue
            start = ensure_pendulum_datetime(marks["loaded_from"])
            until = ensure_pendulum_datetime(marks.get("newest") or marks["history_until"])
            finished = landed_fills(pipeline, start, until)
            self.fills += finished.fills
            covered += max(timedelta(), until - start)
            for read in marks.get("backlog", []):
                if read.get("start"):
                    window_start, window_end = _window_span(read)
                    covered -= window_end - window_start
                    covered += landed_fills(pipeline, window_start, window_end).covered
        self.seconds = max(0.0, covered.total_seconds())

    @property
    def per_second(self) -> float | None:
        """The rate, or None when nothing was read yet."""
        return self.fills / self.seconds if self.seconds > 0 and self.fills > 0 else None

    def left_in_window(self, start: datetime, end: datetime) -> float:
        """The fills a pending window still holds: its span not yet covered, at this rate."""
        if self.per_second is None:
            return 0.0
        landed = landed_fills(self._pipeline, start, end)
        return self.per_second * ((end - start) - landed.covered).total_seconds()

    def how(self) -> str:
        """How the rate was estimated, in words."""
        if self.per_second is None:
            return "no fills read yet: at least one page a read, until a run shows the rate"
        days = self.seconds / 86400
        return (
            f"{self.fills:,} fills read over {days:,.1f} days of history: "
            f"{self.per_second * 86400:,.0f} fills a day"
        )


def _window_span(read: dict[str, Any]) -> tuple[DateTime, DateTime]:
    """The [start, end) a pending window read covers."""
    return ensure_pendulum_datetime(read["start"]), ensure_pendulum_datetime(read["end"])


def pages(fills: float, page_size: int) -> int:
    """Requests a read of this many fills takes: one a page, at least one."""
    return max(1, math.ceil(fills / page_size))


def fills_requests(
    pipeline: dlt.Pipeline, settings: SourceSettings, last_update: DateTime, rate: _FillRate
) -> tuple[int, int]:
    """The next run's fills requests and the pending history's (windows) among them."""
    state = pipeline_fills_state(pipeline)
    filters = state.get(FILTERS_KEY, {})
    per_second = rate.per_second
    page_size = settings.fills.page_size
    total = history = 0
    for fill_filter in settings.fills.filters:
        marks = filters.get(fill_filter.state_key)
        if marks is None or "loaded_from" not in marks:
            windows = split_windows(settings.fills.start_date, last_update)
            spans = [(window.start, window.end) for window in windows]
            cost = sum(
                pages(per_second * (e - s).total_seconds() if per_second else 0, page_size)
                for s, e in spans
            )
            total, history = total + cost, history + cost
            continue
        backlog = marks.get("backlog", [])
        for read in backlog:
            if read.get("start"):
                cost = pages(rate.left_in_window(*_window_span(read)), page_size)
                total, history = total + cost, history + cost
            else:
                total += _walk_pages(marks, settings, last_update, per_second)
        if not backlog and is_newer_version(marks, last_update):
            total += _walk_pages(marks, settings, last_update, per_second)
    return total, history


def _walk_pages(
    marks: dict[str, Any], settings: SourceSettings, last_update: datetime, per_second: float | None
) -> int:
    """The pages of a walk from the newest fill down to the newest one read, less `lag`."""
    newest = ensure_pendulum_datetime(marks.get("newest") or marks["history_until"])
    span = (last_update - newest + settings.fills.lag).total_seconds()
    return pages(per_second * max(0.0, span) if per_second else 0, settings.fills.page_size)


def next_run(
    pipeline: dlt.Pipeline, settings: SourceSettings, last_update: DateTime
) -> dict[str, Any]:
    """The next `load`'s requests, per endpoint, and the pending history's fills requests."""
    rate = _FillRate(pipeline, pipeline_fills_state(pipeline))
    fills, history = fills_requests(pipeline, settings, last_update, rate)
    version = last_update.isoformat()
    requests = Counter({STATUS.name: 1, FILLS.name: fills, SEGMENTS.name: 1})
    resources = pipeline.state.get("sources", {}).get(SOURCE_NAME, {}).get("resources", {})
    requests.update(snapshot_requests_due(settings, resources, version))
    return {
        "requests": dict(requests),
        "total": sum(requests.values()),
        "history": history,
        "fill_rate": rate.how(),
    }


def follow_day(settings: SourceSettings) -> dict[str, Any]:
    """A day of `follow`: requests per version, and per day at the fastest and slowest refresh."""
    snapshots = len(settings.heatmap_coins) + len(settings.segment_ids) + 1
    per_version = FILLS_VERSION_COST + snapshots
    versions = [int(_DAY / FASTEST_REFRESH), int(_DAY / _SLOWEST_REFRESH)]
    return {
        "per_version": per_version,
        "fills_only_per_version": FILLS_VERSION_COST,
        "versions_per_day": versions,
        "per_day": [per_version * count for count in versions],
    }


def _against_plans(
    budget: RequestBudget, day: dict[str, Any], history: int
) -> list[dict[str, Any]]:
    """What each plan (and the configured budget) gives `follow`, and the days history takes."""
    rows = []
    budgets = [("configured", budget)] if budget.daily or budget.monthly else []
    budgets += [
        (name, RequestBudget(limits.daily_requests, limits.monthly_requests, name))
        for name, limits in PLANS.items()
    ]
    counts = day["versions_per_day"]
    for name, each in budgets:
        per_day = min(x for x in (each.daily, (each.monthly or 0) // 30 or None) if x)
        spread = plan_version_costs(each, day["per_version"], FILLS_VERSION_COST, counts)
        rows.append(
            {
                "budget": name,
                "requests_per_day": per_day,
                "follow": [
                    {"versions": count, "loaded": loaded, "with_snapshots": snapshots}
                    for count, (snapshots, loaded) in zip(
                        day["versions_per_day"], spread, strict=True
                    )
                ],
                "history_days": math.ceil(history / per_day) if history else 0,
            }
        )
    return rows


def make_plan(
    pipeline: dlt.Pipeline, settings: SourceSettings, status: dict[str, str] | None
) -> dict[str, Any]:
    """The whole plan, as `--json` prints it; without the API's status (the budget is spent),
    at the data version loaded last."""
    ledger = pipeline_ledger(pipeline, settings.budget)
    spend: Spend = ledger.spend()
    version = status["lastUpdate"] if status else loaded_version(pipeline)
    last_update = ensure_pendulum_datetime(version) if version else pendulum.now("UTC")
    run = next_run(pipeline, settings, last_update)
    day = follow_day(settings)
    return {
        "pipeline": pipeline.pipeline_name,
        "data_version": last_update.isoformat(),
        "data_version_asked": status is not None,
        "budget": {
            "plan": settings.budget.plan,
            "daily": settings.budget.daily,
            "monthly": settings.budget.monthly,
            "spent_today": spend.day_requests,
            "spent_this_month": spend.month_requests,
            "left": requests_left(settings.budget, spend),
            "text": spend_text(settings.budget, spend),
        },
        "next_run": run,
        "follow_day": day,
        "plans": _against_plans(settings.budget, day, run["history"]),
    }


def _plan_text(plan: dict[str, Any]) -> str:
    """The plan for people: one screen."""
    run, day, budget = plan["next_run"], plan["follow_day"], plan["budget"]
    lines = [
        f"Plan for pipeline {plan['pipeline']} at data version {plan['data_version']} "
        + ("(asked: 1 request)" if plan["data_version_asked"] else "(loaded last; API not asked)"),
        f"Budget: {budget['text']}"
        + ("" if budget["left"] is None else f"; {budget['left']:,} left now"),
        "",
        f"Next run: {run['total']:,} requests",
    ]
    lines += [f"  {endpoint:<10} {count:>8,}" for endpoint, count in run["requests"].items()]
    lines += [
        f"  pending history: {run['history']:,} fills requests (fill rate: {run['fill_rate']})",
        "",
        f"A day of follow: {day['per_version']} requests a version with heatmaps and risk, "
        f"{day['fills_only_per_version']} with fills only; "
        + ", ".join(
            f"{cost:,} a day at {count} versions"
            for count, cost in zip(day["versions_per_day"], day["per_day"], strict=True)
        ),
        "",
        f"  {'budget':<11}{'a day':>10}  follow (versions loaded / with snapshots)     history",
    ]
    for row in plan["plans"]:
        follow = ", ".join(
            f"{f['loaded']}/{f['with_snapshots']} of {f['versions']}" for f in row["follow"]
        )
        history = f"{row['history_days']} days" if row["history_days"] else "-"
        lines.append(f"  {row['budget']:<11}{row['requests_per_day']:>10,}  {follow:<44} {history}")
    return "\n".join(lines)
