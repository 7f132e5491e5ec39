"""The cursor pages of a fills read: getting and decoding them, and the checks that stop a loop."""

import hashlib
from collections.abc import Iterator
from typing import Any, TypeAlias

import orjson
import pendulum
import pyarrow as pa
import pyarrow.compute as pc
from pendulum import DateTime

from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import FILLS
from hypertracker_source.config.defaults import MAX_STALLED_PAGES
from hypertracker_source.config.resolve import FillFilter
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.fills.contract import FillsSplit, split_fills
from hypertracker_source.fills.plan import Read
from hypertracker_source.fills.windows import iso
from hypertracker_source.schema import FILL_FIELDS, FILL_PRIMARY_KEY, read_page, rows_to_arrow

_PageRows: TypeAlias = "pa.Table | list[dict[str, Any]]"
"""A page's fills: in Arrow when they fit the declared columns, else as the API sent them."""


def get_page(
    client: HyperTrackerClient, params: dict[str, Any], cursor: str | None
) -> tuple[FillsSplit, str | None]:
    """Gets one page of a read: its fills in Arrow, split by the data contract, and the cursor of
    the next page."""
    query = params if cursor is None else {**params, "nextCursor": cursor}
    page = client.get_json(FILLS, query, decode=fills_page)
    return split_fills(fills_table(page.get("fills") or [])), page.get("nextCursor") or None


def fills_page(content: bytes) -> dict[str, Any]:
    """Decodes a fills page: its rows straight into Arrow when they fit the declared columns."""
    page = read_page(content, "fills", FILL_FIELDS)
    return orjson.loads(content) if page is None else page


def fills_table(rows: _PageRows) -> pa.Table:
    """Converts a page of fills to Arrow, with addresses lower-cased so the key never splits."""
    table = rows if isinstance(rows, pa.Table) else rows_to_arrow(rows, FILL_FIELDS)
    for column in ("address", "liquidated_user"):
        index = table.schema.get_field_index(column)
        table = table.set_column(index, column, pc.utf8_lower(table[column]))
    return table


def newest_fill(table: pa.Table) -> str | None:
    """The newest fill time of a page, written with `iso`; None for a page without fills."""
    if not table.num_rows:
        return None
    return iso(pendulum.instance(pc.max(table["time"]).as_py()))


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


def _page_fingerprint(table: pa.Table) -> str:
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
    fingerprint = _page_fingerprint(table)
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
