"""The reads of a fills run, each walked over its cursor pages; a coin without fills warned of."""

import logging
from collections import Counter
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

import pendulum
import pyarrow as pa

from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import FILLS
from hypertracker_source.config.defaults import REJECTED_FILLS_TABLE
from hypertracker_source.config.resolve import FillFilter, FillsPlan
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.fills.budget import RunBudget
from hypertracker_source.fills.contract import FillsSplit, RejectedFills
from hypertracker_source.fills.marks import FillMarks, PageRead
from hypertracker_source.fills.pages import (
    CursorGuard,
    check_newest_first,
    check_progress,
    get_page,
    newest_fill,
    reaches_below,
)
from hypertracker_source.fills.plan import FilterMarks, LastUpdate, Read, backfill_reads, is_walk
from hypertracker_source.fills.windows import instant, kept_rows

logger = logging.getLogger(__name__)


class FillQuery(NamedTuple):
    """One read of one filter, the marks it reports to and the run's budget: the unit of fills
    work that runs beside the others."""

    fill_filter: FillFilter
    read: Read
    marks: FillMarks
    budget: RunBudget

    def params(self) -> dict[str, Any]:
        """The read's parameters, without a cursor: filters, limit, and a window's bounds."""
        params: dict[str, Any] = {**self.fill_filter.params(), "limit": self.budget.page_size}
        if self.read.get("start"):
            params["start"] = self.read["start"]
            params["end"] = self.read["end"]
        return params


def fill_queries(
    plan: FillsPlan,
    state: MutableMapping[str, Any],
    last_update: LastUpdate,
    budget: RunBudget,
) -> Iterator[FillQuery]:
    """Yields every read of this run, each filter's planned into its marks in the fills state, or
    a back-fill's windows, which keep no marks. Every filter is planned before the first read
    starts, so that the budget can line them all up for its pages (fills/budget.py)."""
    if plan.end_date is not None:
        windows = backfill_reads(plan, last_update, pendulum.now("UTC"))
        for fill_filter in plan.filters:
            marks = FillMarks(FilterMarks(backlog=[read.copy() for read in windows]))
            yield from (FillQuery(fill_filter, read, marks, budget) for read in marks.reads)
        return
    queries: list[FillQuery] = []
    for fill_filter in plan.filters:
        marks = FillMarks.planned(state, fill_filter, plan, last_update)
        queries.extend(FillQuery(fill_filter, read, marks, budget) for read in marks.reads)
    budget.line_up((query.read, query.marks.page_rank(query.read)) for query in queries)
    yield from queries


def read_fills(client: HyperTrackerClient, query: FillQuery) -> Iterator[pa.Table | RejectedFills]:
    """Yields one read's fills page by page, as far as the run's budget allows, and apart from
    them the rows that break the data contract (fills/contract.py), with a warning.

    Each page's cursor and newest fill go to the filter's marks, so that a later run resumes the
    read where this one stopped; they drop a read that ends. A walk stops at the first page that
    reaches below its `kept_from`. The next page is asked for as soon as it is known to be
    needed, so that the API's answer time overlaps the converting and storing of this page.
    Only the fills that keep the contract order a walk, stop it or move its newest fill.
    """
    # Hand-written: dlt's parallelized resources overlap whole items, not the pages of one cursor,
    # and dlt's paginators neither stop a walk at a mark nor resume from a stored cursor.
    read, walk, params = query.read, is_walk(query.read), query.params()
    kept_from, kept_before = instant(read.get("kept_from")), instant(read.get("kept_before"))
    guard = CursorGuard(params)
    rejected: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hypertracker-fills") as prefetch:
        pending = None
        if query.budget.take_page(read):
            pending = prefetch.submit(_first_page, client, query)
        previous: pa.Table | None = None
        while pending is not None:
            (table, set_apart), cursor = pending.result()
            guard.check(cursor)
            fingerprint = check_progress(read, table, cursor, query.fill_filter)
            if walk:
                check_newest_first(table, previous, query.fill_filter)
            more = cursor is not None and not (walk and reaches_below(table, kept_from))
            pending = None
            if more and query.budget.take_page(read):
                pending = prefetch.submit(get_page, client, params, cursor)
            yield kept_rows(table, kept_from, kept_before)
            set_apart = kept_rows(set_apart, kept_from, kept_before)
            if set_apart.num_rows:
                rejected.update(set_apart["reason"].to_pylist())
                yield RejectedFills(set_apart, _describe_read(query))
            page = PageRead(cursor if more else None, newest_fill(table), fingerprint)
            query.marks.record_page(read, page)
            if not more:
                query.marks.finish(read)
                if read.get("probe") and read.get("newest") is None:
                    since = read.get("kept_from") or read.get("start") or ""
                    _warn_if_misspelled(client, query.fill_filter, since)
            previous = table
    if rejected:
        _warn_rejected(query, rejected)


def _describe_read(query: FillQuery) -> str:
    """A read in words: its filter, and its window or the walk's stop."""
    read = query.read
    if read.get("start"):
        return f"{query.fill_filter.state_key} from {read['start']} to {read['end']}"
    return f"{query.fill_filter.state_key} newest fills down to {read.get('kept_from')}"


def _warn_rejected(query: FillQuery, rejected: Counter[str]) -> None:
    """Says how many fills of a read broke the data contract, why, and where they are."""
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in rejected.most_common())
    total = rejected.total()
    logger.warning(
        "liquidation_fills: %s of %s %s the data contract (%s): set apart in table %s, "
        "not loaded; see docs/data-contract.md",
        f"{total:,} fill{'s' if total != 1 else ''}",
        _describe_read(query),
        "breaks" if total == 1 else "break",
        reasons,
        REJECTED_FILLS_TABLE,
    )


def _first_page(client: HyperTrackerClient, query: FillQuery) -> tuple[FillsSplit, str | None]:
    """Gets a read's first page of this run: from its stored cursor, or from the read's start
    when the API refuses that cursor (HTTP 400), as it may after a release of the API."""
    stored = query.read.get("cursor")
    try:
        return get_page(client, query.params(), stored)
    except HyperTrackerApiError as error:
        if stored is None or error.status_code != 400:
            raise
        logger.warning(
            "HyperTracker refused the stored nextCursor of the fills read %s (%s): reading it "
            "again from its %s; what loaded stays, and no fill is stored twice",
            _describe_read(query),
            error,
            "start" if query.read.get("start") else "newest fill",
        )
    return get_page(client, query.params(), None)


def _spelling(coin: str) -> str | None:
    """Returns the likeliest other spelling of a coin name, if any: BTC, kPEPE, xyz:MSTR."""
    dex, _, asset = coin.rpartition(":")
    prefix = f"{dex.lower()}:" if dex else ""
    candidates = [prefix + asset.upper()]
    if asset[:1] in "kK" and len(asset) > 1:
        candidates.append(f"{prefix}k{asset[1:].upper()}")
    return next((candidate for candidate in candidates if candidate != coin), None)


def _warn_if_misspelled(client: HyperTrackerClient, fill_filter: FillFilter, since: str) -> None:
    """Warns that a coin returned no fills, naming another spelling that has some (one request).

    The API answers a coin it does not know with no fills, not an error. A warning, not an error:
    a coin may rightly have had no liquidation yet, and the run's other tables still load. Asked
    on a filter's first run only: a quiet coin must not spend a request on every run.
    """
    if fill_filter.coin is None:
        return
    other = _spelling(fill_filter.coin)
    if other is not None and client.get_json(FILLS, {"coin": other, "limit": 1}).get("fills"):
        logger.warning(
            "sources.hypertracker.coins: %r returned no fills, but %r has fills: coin names "
            "are case-sensitive; use --coins %s on the command line, coins=[%r] in Python",
            fill_filter.coin,
            other,
            other,
            other,
        )
        return
    logger.warning(
        "sources.hypertracker.coins: %r returned no fills since %s: the API answers a coin it "
        "does not know with no fills, so check the name (case-sensitive: BTC, kPEPE, xyz:MSTR)",
        fill_filter.coin,
        since,
    )
