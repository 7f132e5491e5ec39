"""The reads of a fills run, planned from each filter's marks: no I/O, no dlt.

A filter's first run reads its history, `start_date` up to the API's `lastUpdate`, in 3-month
windows side by side. Every later run walks down from the newest fill to the newest fill it had
read, less `lag`: the marks follow what the API has shown, never this machine's clock. A read the
run's budget cuts short keeps its cursor in the marks, and the next run resumes it there; when the
API has a newer version than the one those reads were planned under, that run also walks down to
them, so that ending them is caught up. A back-fill reads its windows and keeps no marks.
When a run's budget cannot cover every read, unfinished reads get its pages before new walks.
"""

from collections.abc import Callable
from datetime import timedelta
from typing import TypedDict

from dlt.common.time import ensure_pendulum_datetime
from pendulum import DateTime

from hypertracker_source.config.resolve import FillsPlan
from hypertracker_source.fills.windows import Window, backfill_windows, iso, split_windows

LastUpdate = Callable[[], DateTime]
"""The API's `lastUpdate`, asked only when a plan needs it (it may cost a status request)."""
_CLOCK_MARGIN = timedelta(days=1)
"""How far this machine's clock may be wrong: a back-fill ending closer to now than this ends just
after the API's `lastUpdate` instead, so that no window reaches into the API's future."""


class Read(TypedDict, total=False):
    """One read of a filter's fills, as kept in resource state until it is done.

    A window (`start` and `end`), or without them a walk from the newest fill down to
    `kept_from`; `cursor` is where the next page starts, `newest` the newest fill time read,
    `page` what the last page held (its fingerprint) and `stalled` how many pages in a row
    brought nothing new.
    """

    start: str | None
    end: str | None
    kept_from: str | None
    kept_before: str | None
    cursor: str | None
    newest: str | None
    probe: bool
    page: str
    stalled: int


class FilterMarks(TypedDict, total=False):
    """What one filter has loaded: the state the fills resource keeps for it."""

    loaded_from: str
    """The earliest instant of history its reads were planned from."""
    history_until: str
    """The API's `lastUpdate` its first run read history up to."""
    newest: str | None
    """The newest fill time its finished reads read."""
    planned_until: str
    """The latest API `lastUpdate` a walk was added under (else `history_until`): a newer one
    adds a walk for the fills since."""
    backlog: list[Read]
    """Its reads not yet finished, each with its cursor."""


def _window_read(window: Window) -> Read:
    """A window, as a read to keep in state."""
    return Read(
        start=iso(window.start),
        end=iso(window.end),
        kept_from=None if window.kept_from is None else iso(window.kept_from),
        kept_before=None if window.kept_before is None else iso(window.kept_before),
    )


def _walk_read(stop: DateTime) -> Read:
    """A walk from the newest fill down to `stop`, as a read to keep in state."""
    return Read(kept_from=iso(stop))


def is_walk(read: Read) -> bool:
    """Whether a read is a walk down from the newest fill (not a window)."""
    return not read.get("start")


def planned_marks(
    plan: FillsPlan,
    marks: FilterMarks | None,
    legacy_mark: str | None,
    last_update: LastUpdate,
) -> FilterMarks:
    """A filter's marks with this run's reads in their backlog: what it holds unfinished, and what
    it must read beyond that. `marks` are left as they are; `legacy_mark` is what a version
    before 0.2 kept for a filter without marks."""
    # Hand-written: dlt.sources.incremental keeps one cursor per resource and sends it as `start`.
    # Here each filter needs a mark of its own (a coin added later gets its history); a cursor sent
    # as `start` never gets past a pause of 3 months, the API's default `end` (a test shows it);
    # and a read cut short by the run's budget resumes from the API's own nextCursor.
    if marks is None:
        planned = _migrated_marks(legacy_mark, plan)
    else:
        planned = FilterMarks(**marks)
        planned["backlog"] = list(marks.get("backlog", []))
    if "loaded_from" not in planned:
        _add_history(plan, planned, last_update)
    else:
        _add_later_reads(plan, planned, last_update)
    return planned


def _migrated_marks(legacy_mark: str | None, plan: FillsPlan) -> FilterMarks:
    """The marks of a filter that an older version loaded, or none for a new filter."""
    if legacy_mark is None:
        return FilterMarks(backlog=[])
    return FilterMarks(
        loaded_from=iso(plan.start_date), history_until=legacy_mark, newest=None, backlog=[]
    )


def _add_history(plan: FillsPlan, marks: FilterMarks, last_update: LastUpdate) -> None:
    """Adds a first run's reads: the history up to the API's `lastUpdate`, its last window a
    probe (a filter whose history holds no fill is checked for a misspelled coin)."""
    history_until = last_update()
    if history_until > plan.start_date:
        windows = split_windows(plan.start_date, history_until)
        marks["backlog"].extend(_window_read(window) for window in windows)
        marks["backlog"][-1]["probe"] = True
    marks["loaded_from"] = iso(plan.start_date)
    marks["history_until"] = iso(history_until)


def _add_later_reads(plan: FillsPlan, marks: FilterMarks, last_update: LastUpdate) -> None:
    """Adds a later run's reads: history before a `start_date` moved earlier, and, at an API
    version newer than its reads were planned under, a walk down to the newest fill read less
    `lag`."""
    backlog = marks["backlog"]
    caught_up = not backlog
    loaded_from = ensure_pendulum_datetime(marks["loaded_from"])
    if plan.start_date < loaded_from:
        backlog[:0] = [_window_read(w) for w in backfill_windows(plan.start_date, loaded_from)]
        marks["loaded_from"] = iso(plan.start_date)
    if caught_up:
        newest = ensure_pendulum_datetime(marks.get("newest") or marks["history_until"])
        _add_walk_since_planned(plan, marks, last_update, newest)
    elif not any(is_unstarted_walk(read) for read in backlog):
        _add_walk_since_planned(plan, marks, last_update, _read_up_to(marks))


def _read_up_to(marks: FilterMarks) -> DateTime:
    """How far up a filter's reads reach: the windows to history_until, the walks to their tops."""
    tops = [read.get("newest") for read in marks["backlog"] if is_walk(read)]
    covered = [marks["history_until"], marks.get("newest"), *tops]
    return max(ensure_pendulum_datetime(top) for top in covered if top)


def _add_walk_since_planned(
    plan: FillsPlan, marks: FilterMarks, last_update: LastUpdate, read_up_to: DateTime
) -> None:
    """Adds a walk down to `read_up_to` less `lag`, for the fills of an API version newer than
    the one the filter's reads were planned under; at that version nothing new can show."""
    # A caught-up filter walks at a newer version only: fills are published with the API's
    # versions (shared/hypertracker-api.md, "Indexing and late data"), and a walk that finds
    # nothing spends a page that a run too small for every read owes the other filters' reads.
    until = last_update()
    if not is_newer_version(marks, until):
        return
    marks["backlog"].append(_walk_read(read_up_to - plan.lag))
    marks["planned_until"] = iso(until)


def is_newer_version(marks: FilterMarks, last_update: DateTime) -> bool:
    """Whether the API's `lastUpdate` is newer than the version a filter's reads were planned
    under: only then can a walk find fills they did not read."""
    return last_update > ensure_pendulum_datetime(
        marks.get("planned_until") or marks["history_until"]
    )


def is_unstarted_walk(read: Read) -> bool:
    """Whether a read is a walk that has read no page yet: it will start from the newest fill."""
    return is_walk(read) and read.get("newest") is None and read.get("cursor") is None


def backfill_reads(plan: FillsPlan, last_update: LastUpdate, now: DateTime) -> list[Read]:
    """The windows of a back-fill, [start_date, end_date), which leaves the marks alone."""
    assert plan.end_date is not None
    end = plan.end_date
    if end > now - _CLOCK_MARGIN:
        end = min(end, last_update() + timedelta(milliseconds=1))
    if end <= plan.start_date:
        return []
    return [_window_read(window) for window in backfill_windows(plan.start_date, end)]


def page_rank(read: Read, carried: bool) -> int:
    """Where a read stands in line for a run's pages, 0 first: a window or a read cut short, then
    a walk an earlier run planned (`carried`) but gave no page, then a walk this run planned."""
    # A new walk goes last: a caught-up filter's walk often finds nothing new, and taking the
    # pages of a run too small for every read it would starve the other filters' reads.
    if not is_unstarted_walk(read):
        return 0
    return 1 if carried else 2
