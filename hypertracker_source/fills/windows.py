"""The API's 3-month windows of fills, and the instants the fills state is written in."""

from datetime import timedelta
from typing import NamedTuple

import pyarrow as pa
import pyarrow.compute as pc
from dlt.common.time import ensure_pendulum_datetime
from pendulum import DateTime

from hypertracker_source.config.defaults import WINDOW_MAX_DAYS, WINDOW_MAX_MONTHS
from hypertracker_source.schema import TIMESTAMP


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


def iso(moment: DateTime) -> str:
    """Formats an instant the way the API writes dates: ISO 8601, milliseconds, Z."""
    return moment.in_timezone("UTC").format("YYYY-MM-DDTHH:mm:ss.SSS[Z]")


def instant(text: str | None) -> DateTime | None:
    """Parses an instant written with `iso`, None staying None."""
    return None if text is None else ensure_pendulum_datetime(text)


def later(first: str | None, second: str | None) -> str | None:
    """The later of two instants written with `iso`; None when neither is known."""
    if first is None or second is None:
        return first or second
    return max(first, second, key=ensure_pendulum_datetime)
