"""Liquidation fills: filters, 3-month windows, newest-first walks, and their cursor pages."""

import hashlib
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, NamedTuple, TypeAlias, TypedDict

import orjson
import pendulum
import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.time import ensure_pendulum_datetime
from pendulum import DateTime

from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import FILLS
from hypertracker_source.config.defaults import (
    MAX_STALLED_PAGES,
    REJECTED_FILLS_TABLE,
    WINDOW_MAX_DAYS,
    WINDOW_MAX_MONTHS,
)
from hypertracker_source.config.resolve import FillFilter
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.fills.contract import FillsSplit, RejectedFills, split_fills
from hypertracker_source.schema import (
    FILL_FIELDS,
    FILL_PRIMARY_KEY,
    TIMESTAMP,
    read_page,
    rows_to_arrow,
)

logger = logging.getLogger(__name__)


class Window(NamedTuple):
    """A query the API accepts, and the part of its answer to keep."""

    start: DateTime
    end: DateTime
    kept_from: DateTime | None
    kept_before: DateTime | None


def window_end(start: DateTime) -> DateTime:
    """Returns the latest `end` the API accepts for `start`, under either reading of 3 months."""
    return min(start.add(months=WINDOW_MAX_MONTHS), start.add(days=WINDOW_MAX_DAYS))


def split_windows(start: DateTime, end: DateTime) -> list[Window]:
    """Splits [start, end] into consecutive windows the API accepts, the last ending at `end`.

    Whether the API's `start` and `end` are inclusive is not known, so each window starts 1 ms
    before the previous one ends, and keeps only the fills from that end on: a fill on a
    boundary is read under every reading, and kept by exactly one window.
    """
    start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    windows = []
    kept_from = None
    while (limit := window_end(start)) < end:
        windows.append(Window(start, limit, kept_from, limit))
        start, kept_from = limit.subtract(microseconds=1000), limit
    windows.append(Window(start, end, kept_from, None))
    return windows


def backfill_windows(start: DateTime, end: DateTime) -> list[Window]:
    """Splits a back-fill into windows that keep exactly the fills from `start` up to `end`.

    Half-open, so that back-fills of adjacent ranges (daily partitions) never share a fill that
    falls on their boundary, whether or not the API's `start` and `end` are inclusive: the reads
    reach 1 ms past both ends, and the first and last windows keep only their own side.
    """
    reach = timedelta(milliseconds=1)
    windows = split_windows(start - reach, end + reach)
    windows[0] = windows[0]._replace(kept_from=start)
    windows[-1] = windows[-1]._replace(kept_before=end)
    return windows


def kept_rows(
    table: pa.Table, kept_from: DateTime | None, kept_before: DateTime | None
) -> pa.Table:
    """Drops the fills of a page that another read keeps; a row without a time is kept."""
    keep = None
    if kept_from is not None:
        keep = pc.greater_equal(table["time"], pa.scalar(kept_from, TIMESTAMP))
    if kept_before is not None:
        before = pc.less(table["time"], pa.scalar(kept_before, TIMESTAMP))
        keep = before if keep is None else pc.and_(keep, before)
    return table if keep is None else table.filter(pc.fill_null(keep, True))


PageRows: TypeAlias = "pa.Table | list[dict[str, Any]]"
"""A page's fills: in Arrow when they fit the declared columns, else as the API sent them."""


def iso(moment: DateTime) -> str:
    """Formats an instant the way the API writes dates: ISO 8601, milliseconds, Z."""
    return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss.SSS[Z]")


def instant(text: str | None) -> DateTime | None:
    """Parses an instant this module wrote with `iso`, None staying None."""
    return None if text is None else ensure_pendulum_datetime(text)


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


def window_read(window: Window) -> Read:
    """A window, as a read to keep in state."""
    return Read(
        start=iso(window.start),
        end=iso(window.end),
        kept_from=None if window.kept_from is None else iso(window.kept_from),
        kept_before=None if window.kept_before is None else iso(window.kept_before),
    )


def walk_read(stop: DateTime) -> Read:
    """A walk from the newest fill down to `stop`, as a read to keep in state."""
    return Read(kept_from=iso(stop))


class RunBudget:
    """The pages one run may still ask for, shared by the reads that run side by side."""

    def __init__(self, max_fills: int, page_size: int, max_pages: int | None = None) -> None:
        self.page_size = page_size
        self._fills_left = max_fills if max_fills > 0 else None
        self._pages_left = max_pages
        self._lock = threading.Lock()

    def take_page(self) -> bool:
        """Whether one more page fits this run's fills and the request budget (and counts it)."""
        with self._lock:
            if self._pages_left is not None:
                if self._pages_left <= 0:
                    return False
                self._pages_left -= 1
            if self._fills_left is None:
                return True
            if self._fills_left <= 0:
                return False
            self._fills_left -= self.page_size
            return True

    @property
    def lock(self) -> threading.Lock:
        """Guards the resource state that reads update from their threads."""
        return self._lock


class FillQuery(NamedTuple):
    """One read of one filter: the unit of fills work that runs beside the others."""

    fill_filter: FillFilter
    read: Read
    budget: RunBudget
    done: Callable[["FillQuery"], None]

    def params(self) -> dict[str, Any]:
        """The read's parameters, without a cursor: filters, limit, and a window's bounds."""
        params: dict[str, Any] = {**self.fill_filter.params(), "limit": self.budget.page_size}
        if self.read.get("start"):
            params["start"] = self.read["start"]
            params["end"] = self.read["end"]
        return params


def read_fills(client: HyperTrackerClient, query: FillQuery) -> Iterator[pa.Table | RejectedFills]:
    """Yields one read's fills page by page, as far as the run's budget allows, and apart from
    them the rows that break the data contract (fill_contract.py), with a warning.

    The read's cursor and newest fill are written back after each page, so that a later run
    resumes it where this one stopped; a read that ends calls `done`. A walk stops at the first
    page that reaches below its `kept_from`. The next page is asked for as soon as it is known to
    be needed, so that the API's answer time overlaps the converting and storing of this page.
    Only the fills that keep the contract order a walk, stop it or move its newest fill.
    """
    # Hand-written: dlt's parallelized resources overlap whole items, not the pages of one cursor,
    # and dlt's paginators neither stop a walk at a mark nor resume from a stored cursor.
    read, walk = query.read, not query.read.get("start")
    kept_from, kept_before = instant(read.get("kept_from")), instant(read.get("kept_before"))
    guard = CursorGuard(query.params())
    rejected: Counter[str] = Counter()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hypertracker-fills") as prefetch:
        pending = None
        if query.budget.take_page():
            pending = prefetch.submit(first_page, client, query)
        previous: pa.Table | None = None
        while pending is not None:
            (table, set_apart), cursor = pending.result()
            guard.check(cursor)
            fingerprint = check_progress(read, table, cursor, query.fill_filter)
            if walk:
                check_newest_first(table, previous, query.fill_filter)
            more = cursor is not None and not (walk and reaches_below(table, kept_from))
            pending = None
            if more and query.budget.take_page():
                pending = prefetch.submit(get_page, client, query, cursor)
            yield kept_rows(table, kept_from, kept_before)
            set_apart = kept_rows(set_apart, kept_from, kept_before)
            if set_apart.num_rows:
                rejected.update(set_apart["reason"].to_pylist())
                yield RejectedFills(set_apart, describe_read(query))
            with query.budget.lock:
                record_page(read, table, cursor if more else None, fingerprint)
            if not more:
                query.done(query)
                if read.get("probe") and read.get("newest") is None:
                    since = read.get("kept_from") or read.get("start") or ""
                    warn_if_misspelled(client, query.fill_filter, since)
            previous = table
    if rejected:
        warn_rejected(query, rejected)


def describe_read(query: FillQuery) -> str:
    """A read in words: its filter, and its window or the walk's stop."""
    read = query.read
    if read.get("start"):
        return f"{query.fill_filter.state_key} from {read['start']} to {read['end']}"
    return f"{query.fill_filter.state_key} newest fills down to {read.get('kept_from')}"


def warn_rejected(query: FillQuery, rejected: Counter[str]) -> None:
    """Says how many fills of a read broke the data contract, why, and where they are."""
    reasons = ", ".join(f"{reason} {count:,}" for reason, count in rejected.most_common())
    total = rejected.total()
    logger.warning(
        "liquidation_fills: %s of %s %s the data contract (%s): set apart in table %s, "
        "not loaded; see docs/data-contract.md",
        f"{total:,} fill{'s' if total != 1 else ''}",
        describe_read(query),
        "breaks" if total == 1 else "break",
        reasons,
        REJECTED_FILLS_TABLE,
    )


def first_page(client: HyperTrackerClient, query: FillQuery) -> tuple[pa.Table, str | None]:
    """Gets a read's first page of this run: from its stored cursor, or from the read's start
    when the API refuses that cursor (HTTP 400), as it may after a release of the API."""
    stored = query.read.get("cursor")
    try:
        return get_page(client, query, stored)
    except HyperTrackerApiError as error:
        if stored is None or error.status_code != 400:
            raise
        logger.warning(
            "HyperTracker refused the stored nextCursor of the fills read %s (%s): reading it "
            "again from its %s; what loaded stays, and no fill is stored twice",
            describe_read(query),
            error,
            "start" if query.read.get("start") else "newest fill",
        )
    return get_page(client, query, None)


def get_page(
    client: HyperTrackerClient, query: FillQuery, cursor: str | None
) -> tuple[FillsSplit, str | None]:
    """Gets one page of a read: its fills in Arrow, split by the data contract, and the cursor of
    the next page."""
    params = query.params() if cursor is None else {**query.params(), "nextCursor": cursor}
    page = client.get_json(FILLS, params, decode=fills_page)
    return split_fills(fills_table(page.get("fills") or [])), page.get("nextCursor") or None


def fills_page(content: bytes) -> dict[str, Any]:
    """Decodes a fills page: its rows straight into Arrow when they fit the declared columns."""
    page = read_page(content, "fills", FILL_FIELDS)
    return orjson.loads(content) if page is None else page


class CursorGuard:
    """Refuses a cursor seen before in one read: the API would otherwise be read in a loop."""

    def __init__(self, params: dict[str, Any]) -> None:
        self._params = params
        self._seen: set[str] = set()

    def check(self, cursor: str | None) -> None:
        """Raises if this cursor came before."""
        if cursor is None:
            return
        if cursor in self._seen:
            raise HyperTrackerApiError(
                f"HyperTracker returned the same nextCursor twice for {FILLS.path()} with "
                f"{self._params}: stopping rather than looping; rerun later, the stored "
                "high-water mark has not moved"
            )
        self._seen.add(cursor)


def page_fingerprint(table: pa.Table) -> str:
    """What a page holds, in short: its row count and the keys of its first and last fills."""
    ends = (
        table.select(list(FILL_PRIMARY_KEY)).take([0, table.num_rows - 1])
        if table.num_rows
        else None
    )
    text = f"{table.num_rows}|{ends.to_pylist() if ends is not None else ''}"
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def check_progress(read: Read, table: pa.Table, cursor: str | None, fill_filter: FillFilter) -> str:
    """Returns a page's fingerprint; refuses the page that makes MAX_STALLED_PAGES in a row
    that brought nothing new (the page before again) while the API still hands out a cursor.

    The count is kept in the read, so that runs cut short after each page stop as well.
    """
    fingerprint = page_fingerprint(table)
    stalled = cursor is not None and fingerprint == read.get("page")
    if stalled and read.get("stalled", 0) + 1 >= MAX_STALLED_PAGES:
        raise HyperTrackerApiError(
            f"HyperTracker's fills cursor for {fill_filter.state_key} makes no progress: "
            f"{MAX_STALLED_PAGES} pages in a row came with a new nextCursor but the same fills "
            "as the page before: stopping rather than looping. What loaded stays, and no mark "
            "moved; rerun later, and report it to HyperTracker if it persists"
        )
    return fingerprint


def reaches_below(table: pa.Table, stop: DateTime | None) -> bool:
    """Whether a page holds a fill older than `stop`."""
    if stop is None or not table.num_rows:
        return False
    return pc.min(table["time"]).as_py() < stop


def check_newest_first(table: pa.Table, previous: pa.Table | None, fill_filter: FillFilter) -> None:
    """Refuses a walk's page that is not newest first, or newer than the page before it.

    Both of the API's documents say fills come newest first without `start`; a walk relies on
    it to stop at its mark, so any other order stops the run before a mark moves.
    """
    times = table["time"]
    ordered = table.num_rows < 2 or pc.all(pc.greater_equal(times[:-1], times[1:])).as_py()
    if previous is not None and previous.num_rows and table.num_rows:
        ordered = ordered and pc.max(times).as_py() <= pc.min(previous["time"]).as_py()
    if not ordered:
        raise HyperTrackerApiError(
            f"HyperTracker sent the fills of {fill_filter.state_key} without `start` in an order "
            "other than newest first, which both of its documents promise: stopping before any "
            "mark moves; report it to the maintainers of hypertracker-source"
        )


def record_page(read: Read, table: pa.Table, cursor: str | None, fingerprint: str) -> None:
    """Writes a page's progress into its read: the next cursor, the newest fill time, and what
    the page held."""
    read["stalled"] = read.get("stalled", 0) + 1 if fingerprint == read.get("page") else 0
    read["page"] = fingerprint
    read["cursor"] = cursor
    if table.num_rows:
        newest = iso(pendulum.instance(pc.max(table["time"]).as_py()))
        read["newest"] = later(read.get("newest"), newest)


def later(first: str | None, second: str | None) -> str | None:
    """The later of two instants written with `iso`; None when neither is known."""
    if first is None or second is None:
        return first or second
    return max(first, second, key=ensure_pendulum_datetime)


def fills_table(rows: PageRows) -> pa.Table:
    """Converts a page of fills to Arrow, with addresses lower-cased so the key never splits."""
    table = rows if isinstance(rows, pa.Table) else rows_to_arrow(rows, FILL_FIELDS)
    for column in ("address", "liquidated_user"):
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, pc.utf8_lower(table[column]))
    return table


def batched(tables: Iterator[pa.Table | Any], rows_per_batch: int) -> Iterator[pa.Table | Any]:
    """Joins consecutive tables, without copying, into batches of at least `rows_per_batch` rows;
    any other item passes as it comes.

    dlt does a fixed amount of work for each item it gets (its schema, checks, a write), so a few
    batches of fills cost less than many pages; a batch of a few MB keeps the memory flat.
    """
    batch: list[pa.Table] = []
    rows = 0
    for table in tables:
        if not isinstance(table, pa.Table):
            yield table
            continue
        batch.append(table)
        rows += table.num_rows
        if rows >= rows_per_batch:
            yield pa.concat_tables(batch, promote_options="default")
            batch, rows = [], 0
    if batch:
        yield pa.concat_tables(batch, promote_options="default")


def spelling(coin: str) -> str | None:
    """Returns the likeliest other spelling of a coin name, if any: BTC, kPEPE, xyz:MSTR."""
    dex, _, asset = coin.rpartition(":")
    prefix = f"{dex.lower()}:" if dex else ""
    candidates = [prefix + asset.upper()]
    if asset[:1] in "kK" and len(asset) > 1:
        candidates.append(f"{prefix}k{asset[1:].upper()}")
    return next((candidate for candidate in candidates if candidate != coin), None)


def warn_if_misspelled(client: HyperTrackerClient, fill_filter: FillFilter, since: str) -> None:
    """Warns that a coin returned no fills, naming another spelling that has some (one request).

    The API answers a coin it does not know with no fills, not an error. A warning, not an error:
    a coin may rightly have had no liquidation yet, and the run's other tables still load. Asked
    on a filter's first run only: a quiet coin must not spend a request on every run.
    """
    if fill_filter.coin is None:
        return
    other = spelling(fill_filter.coin)
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
