"""The pages a fills run may ask for: max_fills_per_run and the request budget, counted once."""

import math
import threading
from collections.abc import Iterable

from hypertracker_source.config.resolve import FillsPlan
from hypertracker_source.fills.plan import Read


class RunBudget:
    """The pages one run may still ask for, shared by the reads that run side by side: the fewer
    of `max_fills_per_run`'s (each page counted full) and the request budget's `max_pages`.

    A budget too small for every read still moves unfinished reads forward: lined up by rank,
    a read gets a page only when enough are left for the first page of each read ranked before
    it (and, past its own first page, of each read ranked the same). A back-fill is cut by
    neither limit: it keeps no cursor to resume from.
    """

    # Hand-written: dlt's parallelized resources share no page budget between their items.
    # The reads are ranked rather than a caught-up filter's walk skipped at an unchanged API
    # version: the API does not promise that a version shows every fill older than its
    # `lastUpdate` (shared/hypertracker-api.md, "Indexing and late data"), and asking for the
    # version would cost a run a status request. A walk left waiting stays in its filter's
    # backlog, so no fill is lost.

    def __init__(self, plan: FillsPlan, max_pages: int | None = None) -> None:
        self.page_size = plan.page_size
        self._requests_spent = max_pages is not None and max_pages <= 0
        max_fills = plan.max_fills_per_run
        fill_pages = math.ceil(max_fills / plan.page_size) if max_fills > 0 else None
        limits = [limit for limit in (fill_pages, max_pages) if limit is not None]
        self._pages_left = None if plan.end_date is not None else min(limits, default=None)
        self._ranks: list[tuple[Read, int]] = []
        self._owed: list[tuple[Read, int]] = []
        self._lock = threading.Lock()

    @property
    def requests_spent(self) -> bool:
        """Whether the request budget leaves no page at all for this run's fills."""
        return self._requests_spent

    def line_up(self, ranked: Iterable[tuple[Read, int]]) -> None:
        """Lines up this run's reads for pages, each with its rank (fills/plan.py's page_rank)."""
        with self._lock:
            self._ranks = list(ranked)
            self._owed = list(self._ranks)

    def take_page(self, read: Read) -> bool:
        """Whether one more page of this read fits (and counts it)."""
        with self._lock:
            if self._pages_left is None:
                return True
            rank = next((rank for lined, rank in self._ranks if lined is read), 0)
            others = [(lined, other) for lined, other in self._owed if lined is not read]
            first = len(others) < len(self._owed)
            self._owed = others
            held = sum(other < rank or (other == rank and not first) for _, other in others)
            if self._pages_left <= held:
                return False
            self._pages_left -= 1
            return True
