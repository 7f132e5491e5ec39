"""One filter's marks, the one writer of them: reader threads report their pages to it."""

import threading
from collections.abc import MutableMapping, Sequence
from typing import Any, NamedTuple

from hypertracker_source.config.resolve import FillFilter, FillsPlan
from hypertracker_source.fills.plan import FilterMarks, LastUpdate, Read, page_rank, planned_marks
from hypertracker_source.fills.state import FILTERS_KEY, LEGACY_MARKS_KEY
from hypertracker_source.fills.windows import later


class PageRead(NamedTuple):
    """What one page of a read showed: where the next page starts (None: the read ends there),
    the newest fill time on it (None: no fill), and its fingerprint."""

    cursor: str | None
    newest: str | None
    fingerprint: str


class FillMarks:
    """One filter's backlog of reads with their cursors, and the newest fill its finished reads
    read, written in the filter's entry of the fills state (or, for a back-fill, in none);
    `carried` are the reads of that backlog that an earlier run planned."""

    def __init__(self, marks: FilterMarks, carried: Sequence[Read] = ()) -> None:
        self._marks = marks
        self._carried = carried
        self._lock = threading.Lock()

    @classmethod
    def planned(
        cls,
        state: MutableMapping[str, Any],
        fill_filter: FillFilter,
        plan: FillsPlan,
        last_update: LastUpdate,
    ) -> "FillMarks":
        """A filter's marks in the fills state, with this run's reads planned into them."""
        filters = state.setdefault(FILTERS_KEY, {})
        key = fill_filter.state_key
        legacy_mark = state.get(LEGACY_MARKS_KEY, {}).get(key)
        carried = list(filters.get(key, {}).get("backlog", []))
        filters[key] = planned_marks(plan, filters.get(key), legacy_mark, last_update)
        return cls(filters[key], carried)

    @property
    def reads(self) -> list[Read]:
        """The reads not yet finished, in the order they were planned."""
        with self._lock:
            return list(self._marks.get("backlog", []))

    def page_rank(self, read: Read) -> int:
        """Where one of its reads stands in line for the run's pages (fills/plan.py)."""
        return page_rank(read, carried=any(read is left for left in self._carried))

    def record_page(self, read: Read, page: PageRead) -> None:
        """Writes a page's progress into its read, so that a later run resumes it after it."""
        with self._lock:
            read["stalled"] = (
                read.get("stalled", 0) + 1 if page.fingerprint == read.get("page") else 0
            )
            read["page"] = page.fingerprint
            read["cursor"] = page.cursor
            if page.newest is not None:
                read["newest"] = later(read.get("newest"), page.newest)

    def finish(self, read: Read) -> None:
        """Drops a finished read from the backlog, keeping the newest fill it read."""
        with self._lock:
            self._marks["backlog"] = [left for left in self._marks["backlog"] if left is not read]
            self._marks["newest"] = later(self._marks.get("newest"), read.get("newest"))
