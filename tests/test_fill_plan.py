"""The fills planner, the run budget and a filter's marks, on literal states: no I/O."""

import copy
from datetime import timedelta
from typing import Any, NamedTuple

import pendulum
import pytest
from pendulum import DateTime

from hypertracker_source.config.resolve import FillFilter, FillsPlan
from hypertracker_source.fills.budget import RunBudget
from hypertracker_source.fills.marks import FillMarks, PageRead
from hypertracker_source.fills.plan import backfill_reads, page_rank, planned_marks

pytestmark = pytest.mark.fast

START = "2025-07-27T00:00:00.000Z"
VERSION = "2025-12-01T12:00:00.000Z"
"""The API's lastUpdate of the first run."""
NEWER_VERSION = "2025-12-01T12:05:00.000Z"
NEWEST = "2025-12-01T11:58:00.000Z"
"""The newest fill the finished reads read."""
ALL_MARKETS = FillFilter(None, None, None)
LAG = timedelta(hours=1)

FIRST_WINDOW = {
    "start": START,
    "end": "2025-10-25T00:00:00.000Z",
    "kept_from": None,
    "kept_before": "2025-10-25T00:00:00.000Z",
}
LAST_WINDOW = {
    "start": "2025-10-24T23:59:59.999Z",
    "end": VERSION,
    "kept_from": "2025-10-25T00:00:00.000Z",
    "kept_before": None,
}
CUT_WINDOW = {
    **FIRST_WINDOW,
    "cursor": "eyJpZCI6IjQyIn0=",
    "newest": "2025-08-02T10:00:00.000Z",
    "page": "0123456789abcdef",
    "stalled": 0,
}
"""A window a run's budget cut after a page, as the state keeps it."""
HISTORY_READ = {"loaded_from": START, "history_until": VERSION}


def fills_plan(start: str = START, end: str | None = None, **settings: Any) -> FillsPlan:
    """The fills settings of a run over all markets."""
    return FillsPlan(
        filters=(ALL_MARKETS,),
        start_date=pendulum.parse(start),
        end_date=None if end is None else pendulum.parse(end),
        lag=LAG,
        page_size=settings.get("page_size", 1000),
        max_fills_per_run=settings.get("max_fills_per_run", 250_000),
    )


def api_version(moment: str | None) -> Any:
    """The API's lastUpdate as the planner asks it; None: a plan that must not need it."""

    def last_update() -> DateTime:
        assert moment is not None, "the plan asked for the API's lastUpdate"
        return pendulum.parse(moment)

    return last_update


class PlanCase(NamedTuple):
    """A filter's marks before a run, the run's settings and the API's version, and the marks
    with the run's reads in their backlog."""

    marks: dict[str, Any] | None
    version: str | None
    planned: dict[str, Any]
    start: str = START
    legacy_mark: str | None = None


PLAN_CASES = {
    "a first run reads the history in windows, the last a probe": PlanCase(
        None,
        VERSION,
        {**HISTORY_READ, "backlog": [FIRST_WINDOW, {**LAST_WINDOW, "probe": True}]},
    ),
    "a first run at a version before start_date reads nothing": PlanCase(
        None,
        "2025-07-01T00:00:00.000Z",
        {"loaded_from": START, "history_until": "2025-07-01T00:00:00.000Z", "backlog": []},
    ),
    "a later run at a new version walks down to the newest fill less lag": PlanCase(
        {**HISTORY_READ, "newest": NEWEST, "backlog": []},
        NEWER_VERSION,
        {
            **HISTORY_READ,
            "newest": NEWEST,
            "planned_until": NEWER_VERSION,
            "backlog": [{"kept_from": "2025-12-01T10:58:00.000Z"}],
        },
    ),
    "a later run at the version its history was read under adds no walk": PlanCase(
        {**HISTORY_READ, "newest": NEWEST, "backlog": []},
        VERSION,
        {**HISTORY_READ, "newest": NEWEST, "backlog": []},
    ),
    "a later run at the version its last walk was planned under adds none": PlanCase(
        {**HISTORY_READ, "newest": NEWEST, "planned_until": NEWER_VERSION, "backlog": []},
        NEWER_VERSION,
        {**HISTORY_READ, "newest": NEWEST, "planned_until": NEWER_VERSION, "backlog": []},
    ),
    "a later run with no fill read walks down to the history's end less lag": PlanCase(
        {**HISTORY_READ, "backlog": []},
        NEWER_VERSION,
        {
            **HISTORY_READ,
            "planned_until": NEWER_VERSION,
            "backlog": [{"kept_from": "2025-12-01T11:00:00.000Z"}],
        },
    ),
    "a start moved earlier reads the history it adds, first": PlanCase(
        {**HISTORY_READ, "newest": NEWEST, "backlog": []},
        NEWER_VERSION,
        {
            "loaded_from": "2025-07-17T00:00:00.000Z",
            "history_until": VERSION,
            "planned_until": NEWER_VERSION,
            "newest": NEWEST,
            "backlog": [
                {
                    "start": "2025-07-16T23:59:59.999Z",
                    "end": "2025-07-27T00:00:00.001Z",
                    "kept_from": "2025-07-17T00:00:00.000Z",
                    "kept_before": START,
                },
                {"kept_from": "2025-12-01T10:58:00.000Z"},
            ],
        },
        start="2025-07-17T00:00:00.000Z",
    ),
    "a budget cut resumes its reads where they stopped and adds none at the same version": (
        PlanCase(
            {**HISTORY_READ, "backlog": [CUT_WINDOW, LAST_WINDOW]},
            VERSION,
            {**HISTORY_READ, "backlog": [CUT_WINDOW, LAST_WINDOW]},
        )
    ),
    "a new version with reads left adds a walk down to what they cover, less lag": PlanCase(
        {**HISTORY_READ, "newest": NEWEST, "backlog": [CUT_WINDOW]},
        NEWER_VERSION,
        {
            **HISTORY_READ,
            "newest": NEWEST,
            "planned_until": NEWER_VERSION,
            "backlog": [CUT_WINDOW, {"kept_from": "2025-12-01T11:00:00.000Z"}],
        },
    ),
    "a new version whose walk is unstarted adds none, without asking the version": PlanCase(
        {**HISTORY_READ, "backlog": [CUT_WINDOW, {"kept_from": NEWEST}]},
        None,
        {**HISTORY_READ, "backlog": [CUT_WINDOW, {"kept_from": NEWEST}]},
    ),
    "a version already planned under adds no second walk": PlanCase(
        {
            **HISTORY_READ,
            "planned_until": NEWER_VERSION,
            "backlog": [CUT_WINDOW, {"kept_from": NEWEST, "cursor": "c2", "newest": NEWEST}],
        },
        NEWER_VERSION,
        {
            **HISTORY_READ,
            "planned_until": NEWER_VERSION,
            "backlog": [CUT_WINDOW, {"kept_from": NEWEST, "cursor": "c2", "newest": NEWEST}],
        },
    ),
    "the marks of a version before 0.2 (LEGACY_MARKS_KEY) become the history's end": PlanCase(
        None,
        VERSION,
        {
            "loaded_from": START,
            "history_until": "2025-11-30T00:00:00.000Z",
            "planned_until": VERSION,
            "newest": None,
            "backlog": [{"kept_from": "2025-11-29T23:00:00.000Z"}],
        },
        legacy_mark="2025-11-30T00:00:00.000Z",
    ),
}


@pytest.mark.parametrize("case", PLAN_CASES.values(), ids=PLAN_CASES.keys())
def test_the_planner_adds_the_reads_a_run_needs(case: PlanCase):
    before = copy.deepcopy(case.marks)
    planned = planned_marks(
        fills_plan(case.start), case.marks, case.legacy_mark, api_version(case.version)
    )
    assert planned == case.planned
    assert case.marks == before, "the marks given are left as they are"


BACKFILL_CASES = {
    "a back-fill in the past reads its half-open range": (
        "2025-07-17T00:00:00.000Z",
        "2025-07-27T00:00:00.000Z",
        None,
        [
            {
                "start": "2025-07-16T23:59:59.999Z",
                "end": "2025-07-27T00:00:00.001Z",
                "kept_from": "2025-07-17T00:00:00.000Z",
                "kept_before": START,
            }
        ],
    ),
    "a back-fill up to now ends just after the API's version": (
        "2025-11-30T00:00:00.000Z",
        "2025-12-02T00:00:00.000Z",
        VERSION,
        [
            {
                "start": "2025-11-29T23:59:59.999Z",
                "end": "2025-12-01T12:00:00.002Z",
                "kept_from": "2025-11-30T00:00:00.000Z",
                "kept_before": "2025-12-01T12:00:00.001Z",
            }
        ],
    ),
    "a back-fill that ends before it starts reads nothing": (
        "2025-12-01T13:00:00.000Z",
        "2025-12-02T00:00:00.000Z",
        VERSION,
        [],
    ),
}


@pytest.mark.parametrize(
    ("start", "end", "version", "reads"), BACKFILL_CASES.values(), ids=BACKFILL_CASES.keys()
)
def test_a_back_fill_reads_its_windows(
    start: str, end: str, version: str | None, reads: list[dict[str, Any]]
):
    now = pendulum.parse("2025-12-01T12:30:00.000Z")
    assert backfill_reads(fills_plan(start, end), api_version(version), now) == reads


BUDGET_CASES = {
    "no limit": (0, 1000, None, None, False),
    "max_fills_per_run counts each page full": (1500, 200, None, 8, False),
    "the request budget, when it leaves fewer": (250_000, 1000, 3, 3, False),
    "max_fills_per_run, when it leaves fewer": (2000, 1000, 3, 2, False),
    "a spent request budget leaves no page": (250_000, 1000, 0, 0, True),
    "an overspent one neither": (250_000, 1000, -2, 0, True),
}


@pytest.mark.parametrize(
    ("max_fills", "page_size", "max_pages", "pages", "spent"),
    BUDGET_CASES.values(),
    ids=BUDGET_CASES.keys(),
)
def test_the_run_budget_allows_the_fewer_pages_of_its_two_limits(
    max_fills: int, page_size: int, max_pages: int | None, pages: int | None, spent: bool
):
    budget = RunBudget(
        fills_plan(page_size=page_size, max_fills_per_run=max_fills), max_pages=max_pages
    )
    taken = sum(budget.take_page(FIRST_WINDOW) for _ in range(100))
    assert taken == (100 if pages is None else pages)
    assert budget.requests_spent is spent


def test_a_back_fill_is_cut_by_neither_budget():
    budget = RunBudget(
        fills_plan(end="2025-08-01T00:00:00.000Z", page_size=1000, max_fills_per_run=1000),
        max_pages=0,
    )
    assert sum(budget.take_page(FIRST_WINDOW) for _ in range(100)) == 100
    assert budget.requests_spent, "a spent request budget still stops a run with reads pending"


def test_a_budget_too_small_for_every_read_moves_the_unfinished_reads_first():
    """The lead's stuck pipeline: a caught-up filter's walk and another filter's windows, one page
    a run. The windows get the pages, then the walk that waited, and a new walk goes last."""
    caught_up = planned_marks(
        fills_plan(),
        {**HISTORY_READ, "newest": NEWEST, "backlog": []},
        None,
        api_version(NEWER_VERSION),
    )
    behind = planned_marks(
        fills_plan(),
        {**HISTORY_READ, "backlog": [CUT_WINDOW, LAST_WINDOW]},
        None,
        api_version(VERSION),
    )
    [new_walk], (cut, last) = caught_up["backlog"], behind["backlog"]
    waiting_walk = {"kept_from": NEWEST}
    reads = [new_walk, waiting_walk, cut, last]
    carried = [False, True, True, True]
    ranks = [page_rank(read, carried=was) for read, was in zip(reads, carried, strict=True)]
    assert ranks == [2, 1, 0, 0]
    for pages, served in ((1, [cut]), (2, [cut, last]), (3, [cut, last, waiting_walk])):
        budget = RunBudget(fills_plan(page_size=1000, max_fills_per_run=1000 * pages))
        budget.line_up(zip(reads, ranks, strict=True))
        taken = [read for read in reads if budget.take_page(read)]
        assert [read for read in reads if read in served] == taken
    budget = RunBudget(fills_plan(page_size=1000, max_fills_per_run=2000))
    budget.line_up(zip(reads, ranks, strict=True))
    assert budget.take_page(cut) and not budget.take_page(cut), "its second page waits for `last`"
    assert budget.take_page(last) and not budget.take_page(new_walk)


def test_the_marks_continue_a_state_of_the_json_shape_before_them():
    """A state as 0.4 wrote it (the reads' dicts in the backlog), planned and read on by the
    marks object: the same shape comes out, with the pages and the finished read recorded."""
    state: dict[str, Any] = {
        "filters": {ALL_MARKETS.state_key: {**HISTORY_READ, "backlog": [CUT_WINDOW, LAST_WINDOW]}}
    }
    marks = FillMarks.planned(state, ALL_MARKETS, fills_plan(), api_version(VERSION))
    cut, last = marks.reads
    marks.record_page(cut, PageRead("eyJpZCI6IjQzIn0=", "2025-08-09T00:00:00.000Z", "fedcba98"))
    marks.record_page(last, PageRead(None, None, "00000000"))
    marks.finish(last)
    assert state == {
        "filters": {
            ALL_MARKETS.state_key: {
                **HISTORY_READ,
                "newest": None,
                "backlog": [
                    {
                        **CUT_WINDOW,
                        "cursor": "eyJpZCI6IjQzIn0=",
                        "newest": "2025-08-09T00:00:00.000Z",
                        "page": "fedcba98",
                    }
                ],
            }
        }
    }


def test_the_marks_keep_the_newest_fill_of_their_finished_reads():
    state: dict[str, Any] = {}
    marks = FillMarks.planned(state, ALL_MARKETS, fills_plan(), api_version(VERSION))
    first, last = marks.reads
    marks.record_page(first, PageRead(None, "2025-09-01T00:00:00.000Z", "aa"))
    marks.record_page(last, PageRead("next", NEWEST, "bb"))
    marks.record_page(last, PageRead(None, "2025-11-01T00:00:00.000Z", "bb"))
    for read in (last, first):
        marks.finish(read)
    filter_marks = state["filters"][ALL_MARKETS.state_key]
    assert filter_marks["backlog"] == []
    assert filter_marks["newest"] == NEWEST
    assert last["stalled"] == 1, "a page like the one before counts as stalled"
