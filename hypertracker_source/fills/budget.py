"""The pages a fills run may ask for: max_fills_per_run and the request budget, counted once."""

import math
import threading

from hypertracker_source.config.resolve import FillsPlan


class RunBudget:
    """The pages one run may still ask for, shared by the reads that run side by side: the fewer
    of `max_fills_per_run`'s (each page counted full) and the request budget's `max_pages`.

    A back-fill is cut by neither: it keeps no cursor to resume from.
    """

    def __init__(self, plan: FillsPlan, max_pages: int | None = None) -> None:
        self.page_size = plan.page_size
        self._requests_spent = max_pages is not None and max_pages <= 0
        max_fills = plan.max_fills_per_run
        fill_pages = math.ceil(max_fills / plan.page_size) if max_fills > 0 else None
        limits = [limit for limit in (fill_pages, max_pages) if limit is not None]
        self._pages_left = None if plan.end_date is not None else min(limits, default=None)
        self._lock = threading.Lock()

    @property
    def requests_spent(self) -> bool:
        """Whether the request budget leaves no page at all for this run's fills."""
        return self._requests_spent

    def take_page(self) -> bool:
        """Whether one more page fits (and counts it)."""
        with self._lock:
            if self._pages_left is None:
                return True
            if self._pages_left <= 0:
                return False
            self._pages_left -= 1
            return True
