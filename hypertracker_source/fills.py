"""Liquidation fills: filters, 3-month windows, cursor pages and per-filter high-water marks."""

import logging
from collections.abc import Iterator, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any, NamedTuple

import pendulum
import pyarrow as pa
import pyarrow.compute as pc

from hypertracker_source.client import HyperTrackerClient
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.schema import FILL_FIELDS, TIMESTAMP, rows_to_arrow
from hypertracker_source.settings import FILLS_PATH, WINDOW_MAX_DAYS, WINDOW_MAX_MONTHS

logger = logging.getLogger(__name__)


class FillFilter(NamedTuple):
    """One combination of the fills filters; each keeps its own high-water mark."""

    coin: str | None
    address: str | None
    side: str | None

    @property
    def state_key(self) -> str:
        """The filter's key in the resource state."""
        return f"coin={self.coin or '*'}|address={self.address or '*'}|side={self.side or '*'}"

    def params(self) -> dict[str, str]:
        """The filter's query parameters."""
        return {name: value for name, value in self._asdict().items() if value is not None}


class FillsPlan(NamedTuple):
    """What the fills resource loads: its filters, from when, until when, re-read lag, page size."""

    filters: list[FillFilter]
    start_date: pendulum.DateTime
    end_date: pendulum.DateTime | None
    lag: timedelta
    page_size: int


class Window(NamedTuple):
    """A query the API accepts (`end` None: up to now), and the part of its answer to keep."""

    start: pendulum.DateTime
    end: pendulum.DateTime | None
    kept_from: pendulum.DateTime | None
    kept_before: pendulum.DateTime | None


def fill_filters(coins: list[str], address: str | None, side: str | None) -> list[FillFilter]:
    """Returns every filter combination to load: one per coin, or one for all markets."""
    return [FillFilter(coin, address, side) for coin in coins or [None]]


def window_end(start: pendulum.DateTime) -> pendulum.DateTime:
    """Returns the latest `end` the API accepts for `start`, under either reading of 3 months."""
    return min(start.add(months=WINDOW_MAX_MONTHS), start.add(days=WINDOW_MAX_DAYS))


def split_windows(
    start: pendulum.DateTime, end: pendulum.DateTime, open_ended: bool = True
) -> list[Window]:
    """Splits [start, end] into consecutive windows the API accepts; an open last one ends now.

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
    windows.append(Window(start, None if open_ended else end, kept_from, None))
    return windows


def backfill_windows(start: pendulum.DateTime, end: pendulum.DateTime) -> list[Window]:
    """Splits a back-fill into windows that keep exactly the fills from `start` up to `end`.

    Half-open, so that back-fills of adjacent ranges (daily partitions) never share a fill that
    falls on their boundary, whether or not the API's `start` and `end` are inclusive: the reads
    reach 1 ms past both ends, and the first and last windows keep only their own side.
    """
    reach = timedelta(milliseconds=1)
    windows = split_windows(start - reach, end + reach, open_ended=False)
    windows[0] = windows[0]._replace(kept_from=start)
    windows[-1] = windows[-1]._replace(kept_before=end)
    return windows


def kept_rows(table: pa.Table, window: Window) -> pa.Table:
    """Drops the fills of a page that belong to the neighbouring window."""
    keep = None
    if window.kept_from is not None:
        keep = pc.greater_equal(table["time"], pa.scalar(window.kept_from, TIMESTAMP))
    if window.kept_before is not None:
        before = pc.less(table["time"], pa.scalar(window.kept_before, TIMESTAMP))
        keep = before if keep is None else pc.and_(keep, before)
    return table if keep is None else table.filter(keep)


def iso(moment: pendulum.DateTime) -> str:
    """Formats an instant the way the API writes dates: ISO 8601, milliseconds, Z."""
    return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss.SSS[Z]")


PageRows = pa.Table | list[dict[str, Any]]
"""A page's fills: in Arrow when they fit the declared columns, else as the API sent them."""


def fill_pages(client: HyperTrackerClient, params: dict[str, Any]) -> Iterator[PageRows]:
    """Yields the fills of each page of one query, following `nextCursor` with the same parameters.

    The next page is asked for as soon as its cursor is known, so that the API's answer time
    overlaps the converting and storing of this page.
    """
    # Hand-written: dlt's parallelized resources overlap whole items, not the pages of one cursor.
    seen_cursors: set[str] = set()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="hypertracker-fills") as prefetch:
        pending = prefetch.submit(client.get_json, FILLS_PATH, params)
        while True:
            page = pending.result()
            cursor = page.get("nextCursor")
            if cursor in seen_cursors:
                raise HyperTrackerApiError(
                    f"HyperTracker returned the same nextCursor twice for {FILLS_PATH} with "
                    f"{ {k: v for k, v in params.items() if k != 'nextCursor'} }: stopping rather "
                    "than looping; rerun later, the stored high-water mark has not moved"
                )
            if cursor:
                seen_cursors.add(cursor)
                params = {**params, "nextCursor": cursor}
                pending = prefetch.submit(client.get_json, FILLS_PATH, params)
            yield page.get("fills") or []
            if not cursor:
                return


def fills_table(rows: PageRows) -> pa.Table:
    """Converts a page of fills to Arrow, with addresses lower-cased so the key never splits."""
    table = rows if isinstance(rows, pa.Table) else rows_to_arrow(rows, FILL_FIELDS)
    for column in ("address", "liquidated_user"):
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, pc.utf8_lower(table[column]))
    return table


class FillQuery(NamedTuple):
    """One window of one filter: the unit of fills work that runs beside the others."""

    fill_filter: FillFilter
    window: Window
    page_size: int
    probe_spellings: bool

    def params(self) -> dict[str, Any]:
        """The query's parameters, without a cursor."""
        params = {**self.fill_filter.params(), "limit": self.page_size}
        params["start"] = iso(self.window.start)
        if self.window.end is not None:
            params["end"] = iso(self.window.end)
        return params


def window_fills(client: HyperTrackerClient, query: FillQuery) -> Iterator[pa.Table]:
    """Yields one query's fills page by page; a probing query that finds none checks spelling."""
    read = 0
    for rows in fill_pages(client, query.params()):
        if len(rows):
            read += len(rows)
            yield kept_rows(fills_table(rows), query.window)
    if not read and query.probe_spellings:
        warn_if_misspelled(
            client, query.fill_filter, iso(query.window.kept_from or query.window.start)
        )


def batched(tables: Iterator[pa.Table], rows_per_batch: int) -> Iterator[pa.Table]:
    """Joins consecutive tables, without copying, into batches of at least `rows_per_batch` rows.

    dlt does a fixed amount of work for each item it gets (its schema, checks, a write), so a few
    batches of fills cost less than many pages; a batch of a few MB keeps the memory flat.
    """
    batch: list[pa.Table] = []
    rows = 0
    for table in tables:
        batch.append(table)
        rows += table.num_rows
        if rows >= rows_per_batch:
            yield pa.concat_tables(batch, promote_options="default")
            batch, rows = [], 0
    if batch:
        yield pa.concat_tables(batch, promote_options="default")


def filter_windows(plan: FillsPlan, mark: str | None, now: pendulum.DateTime) -> list[Window]:
    """Returns the windows one filter reads: its back-fill range, or from its mark less the lag."""
    if plan.end_date is not None:
        return backfill_windows(plan.start_date, plan.end_date)
    start = max(pendulum.parse(mark) - plan.lag, plan.start_date) if mark else plan.start_date
    return split_windows(start, now)


def fill_queries(
    plan: FillsPlan, high_water_marks: MutableMapping[str, str]
) -> Iterator[FillQuery]:
    """Yields every window of every filter to read, then moves each filter's mark to this run.

    A filter without a mark starts at `start_date`; one with a mark re-reads `lag` behind it, for
    fills indexed late. Marks move to the time this run started: dlt commits resource state only
    with a successful extract, so a run that fails reading any window keeps the old marks. With an
    `end_date` the run is a back-fill of [start_date, end_date) that leaves marks alone. A filter's
    first run probes other spellings of its coin if its newest window holds no fill.
    """
    now = pendulum.now("UTC")
    moved: dict[str, str] = {}
    for fill_filter in plan.filters:
        mark = high_water_marks.get(fill_filter.state_key)
        windows = filter_windows(plan, mark, now)
        for window in windows:
            newest = window is windows[-1]
            yield FillQuery(fill_filter, window, plan.page_size, newest and mark is None)
        moved[fill_filter.state_key] = iso(now)
    if plan.end_date is None:
        high_water_marks.update(moved)


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
    if other is not None and client.get_json(FILLS_PATH, {"coin": other, "limit": 1}).get("fills"):
        logger.warning(
            "sources.hypertracker.coins: %r returned no fills, but %r has fills: coin names "
            "are case-sensitive; use coins=[%r]",
            fill_filter.coin,
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
