"""What each fills filter has loaded, kept in dlt resource state, and the reads of one run.

A filter's first run reads its history, `start_date` up to the API's `lastUpdate`, in 3-month
windows side by side. Every later run walks down from the newest fill to the newest fill it had
read, less `lag`: the marks follow what the API has shown, never this machine's clock. A run reads
at most `max_fills_per_run` fills; a read it cuts short keeps its cursor in state, committed with
the fills it read, and the next run resumes it there; when the API has a newer version than the
one those reads were planned under, that run also walks down to them, so that ending them is
caught up.
"""

from collections.abc import Callable, Iterator, MutableMapping
from datetime import timedelta
from functools import partial
from typing import Any, TypedDict

import pendulum
from dlt.common.time import ensure_pendulum_datetime
from pendulum import DateTime

from hypertracker_source.config.resolve import FillFilter, FillsPlan
from hypertracker_source.fills.reads import (
    FillQuery,
    Read,
    RunBudget,
    backfill_windows,
    iso,
    later,
    split_windows,
    walk_read,
    window_read,
)

FILTERS_KEY = "filters"
"""Where the resource state keeps each filter's marks."""
LEGACY_MARKS_KEY = "high_water_marks"
"""Where versions before 0.2 kept one mark per filter: the clock time of its last run."""
CLOCK_MARGIN = timedelta(days=1)
"""How far this machine's clock may be wrong: a back-fill ending closer to now than this ends just
after the API's `lastUpdate` instead, so that no window reaches into the API's future."""


class FilterMarks(TypedDict, total=False):
    """What one filter has loaded: the state the fills resource keeps for it."""

    loaded_from: str
    """The earliest instant of history its reads were planned from."""
    history_until: str
    """The API's `lastUpdate` its first run read history up to."""
    newest: str | None
    """The newest fill time its finished reads read."""
    planned_until: str
    """The latest API `lastUpdate` a walk was added under while reads were left (else
    `history_until`): a newer one adds a walk for the fills since."""
    backlog: list[Read]
    """Its reads not yet finished, each with its cursor."""


def plan_run(
    plan: FillsPlan,
    state: MutableMapping[str, Any],
    frontier: Callable[[], DateTime],
    max_pages: int | None = None,
) -> Iterator[FillQuery]:
    """Yields every read of this run: a back-fill's windows, or each filter's unfinished reads,
    within `max_pages` requests (the request budget's) when given."""
    # Hand-written: dlt.sources.incremental keeps one cursor per resource and sends it as `start`.
    # Here each filter needs a mark of its own (a coin added later gets its history); a cursor sent
    # as `start` never gets past a pause of 3 months, the API's default `end` (a test shows it);
    # and a read cut short by the run's budget resumes from the API's own nextCursor.
    if plan.end_date is not None:
        yield from backfill_queries(plan, frontier)
        return
    budget = RunBudget(plan.max_fills_per_run, plan.page_size, max_pages)
    filters = state.setdefault(FILTERS_KEY, {})
    legacy = state.get(LEGACY_MARKS_KEY, {})
    for fill_filter in plan.filters:
        marks = filters.setdefault(fill_filter.state_key, migrated_marks(legacy, fill_filter, plan))
        plan_reads(plan, marks, frontier)
        for read in list(marks["backlog"]):
            yield FillQuery(fill_filter, read, budget, partial(finish_read, marks))


def migrated_marks(
    legacy: MutableMapping[str, str], fill_filter: FillFilter, plan: FillsPlan
) -> FilterMarks:
    """The marks of a filter that an older version loaded, or none for a new filter."""
    mark = legacy.get(fill_filter.state_key)
    if mark is None:
        return FilterMarks(backlog=[])
    return FilterMarks(
        loaded_from=iso(plan.start_date), history_until=mark, newest=None, backlog=[]
    )


def plan_reads(plan: FillsPlan, marks: FilterMarks, frontier: Callable[[], DateTime]) -> None:
    """Adds to a filter's backlog what this run must read beyond what it already holds.

    First run: the history up to the API's `lastUpdate`. Later: history before a `start_date`
    moved earlier, and, once nothing is left to read, a walk down to the newest fill read less
    `lag`, for the fills the API has shown since.
    """
    backlog = marks.setdefault("backlog", [])
    if "loaded_from" not in marks:
        history_until = frontier()
        if history_until > plan.start_date:
            windows = split_windows(plan.start_date, history_until)
            backlog.extend(window_read(window) for window in windows)
            backlog[-1]["probe"] = True
        marks["loaded_from"] = iso(plan.start_date)
        marks["history_until"] = iso(history_until)
        return
    caught_up = not backlog
    loaded_from = ensure_pendulum_datetime(marks["loaded_from"])
    if plan.start_date < loaded_from:
        backlog[:0] = [window_read(w) for w in backfill_windows(plan.start_date, loaded_from)]
        marks["loaded_from"] = iso(plan.start_date)
    if caught_up:
        newest = marks.get("newest") or marks["history_until"]
        backlog.append(walk_read(ensure_pendulum_datetime(newest) - plan.lag))
    elif not any(is_unstarted_walk(read) for read in backlog):
        add_walk_since_planned(plan, marks, frontier)


def add_walk_since_planned(
    plan: FillsPlan, marks: FilterMarks, frontier: Callable[[], DateTime]
) -> None:
    """Adds a walk for the fills of API versions newer than the one the left reads were planned
    under: those reads end at or below that version's fills, so finishing them is not caught up."""
    planned_until = ensure_pendulum_datetime(marks.get("planned_until") or marks["history_until"])
    until = frontier()
    if until <= planned_until:
        return
    # the windows reach history_until; above it, the walks reach their tops
    tops = [read.get("newest") for read in marks["backlog"] if is_walk(read)]
    covered = [marks["history_until"], marks.get("newest"), *tops]
    read_up_to = max(ensure_pendulum_datetime(top) for top in covered if top)
    marks["backlog"].append(walk_read(read_up_to - plan.lag))
    marks["planned_until"] = iso(until)


def is_walk(read: Read) -> bool:
    """Whether a read is a walk down from the newest fill (not a window)."""
    return not read.get("start")


def is_unstarted_walk(read: Read) -> bool:
    """Whether a read is a walk that has read no page yet: it will start from the newest fill."""
    return is_walk(read) and read.get("newest") is None and read.get("cursor") is None


def finish_read(marks: FilterMarks, query: FillQuery) -> None:
    """Drops a finished read from its filter's backlog, keeping the newest fill it read."""
    with query.budget.lock:
        marks["backlog"].remove(query.read)
        marks["newest"] = later(marks.get("newest"), query.read.get("newest"))


def backfill_queries(plan: FillsPlan, frontier: Callable[[], DateTime]) -> Iterator[FillQuery]:
    """Yields the windows of a back-fill, [start_date, end_date), which leaves the marks alone."""
    assert plan.end_date is not None
    end = plan.end_date
    if end > pendulum.now("UTC") - CLOCK_MARGIN:
        end = min(end, frontier() + timedelta(milliseconds=1))
    budget = RunBudget(0, plan.page_size)
    for fill_filter in plan.filters:
        for window in backfill_windows(plan.start_date, end) if end > plan.start_date else []:
            yield FillQuery(fill_filter, window_read(window), budget, ignore_finished)


def ignore_finished(query: FillQuery) -> None:
    """A back-fill keeps no state: a finished read needs no record."""


def pending_reads(state: MutableMapping[str, Any]) -> int:
    """How many reads the fills resource state holds unfinished, over every filter."""
    filters: dict[str, FilterMarks] = state.get(FILTERS_KEY, {})
    return sum(len(marks.get("backlog", [])) for marks in filters.values())


def pending_windows(state: MutableMapping[str, Any]) -> list[tuple[DateTime, DateTime]]:
    """The [start, end] of every unfinished window read in the fills resource state."""
    filters: dict[str, FilterMarks] = state.get(FILTERS_KEY, {})
    return [
        (ensure_pendulum_datetime(start), ensure_pendulum_datetime(end))
        for marks in filters.values()
        for read in marks.get("backlog", [])
        if (start := read.get("start")) and (end := read.get("end"))
    ]
