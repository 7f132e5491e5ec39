"""The request budget: API requests spent per UTC day and month, kept in the pipeline's state and
in a local journal, and refused before they go once the budget is spent."""

import os
import threading
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import orjson
from dlt.common.configuration.container import Container
from dlt.common.pipeline import PipelineContext, pipeline_state

from hypertracker_source.config.resolve import RequestBudget
from hypertracker_source.config.settings import SOURCE_NAME
from hypertracker_source.exceptions import HyperTrackerBudgetError

_SPEND_STATE_KEY = "request_spend"
"""Where the source state keeps the requests spent this UTC day and month."""
SPEND_JOURNAL = "request_spend.json"
"""The local journal of the spend, in the pipeline's working folder: it also holds the requests of
runs that failed before their state was committed."""
_JOURNAL_LOCK = threading.Lock()
"""Serialises the journal's read-add-write between the clients of this process."""

_Item = TypeVar("_Item")


def _utc_now() -> datetime:
    """The current time in UTC."""
    return datetime.now(timezone.utc)


class Spend(NamedTuple):
    """Requests spent in one UTC day and in its month."""

    day: str
    day_requests: int
    month: str
    month_requests: int

    @classmethod
    def nothing(cls, now: datetime) -> "Spend":
        """No request spent yet, on the day of `now`."""
        return cls(f"{now:%Y-%m-%d}", 0, f"{now:%Y-%m}", 0)

    @classmethod
    def from_record(cls, record: object, now: datetime) -> "Spend":
        """A stored spend as of `now` (counts of past periods are 0); nothing when unreadable."""
        try:
            assert isinstance(record, Mapping)
            stored = cls(
                str(record["day"]),
                int(record["day_requests"]),
                str(record["month"]),
                int(record["month_requests"]),
            )
        except (AssertionError, KeyError, TypeError, ValueError):
            return cls.nothing(now)
        return stored.at(now)

    def at(self, now: datetime) -> "Spend":
        """This spend as of `now`: a new day or month starts from 0."""
        fresh = Spend.nothing(now)
        day_requests = self.day_requests if self.day == fresh.day else 0
        month_requests = self.month_requests if self.month == fresh.month else 0
        return fresh._replace(day_requests=day_requests, month_requests=month_requests)

    def plus(self, requests: int) -> "Spend":
        """This spend and `requests` more."""
        return self._replace(
            day_requests=self.day_requests + requests,
            month_requests=self.month_requests + requests,
        )

    def most(self, other: "Spend") -> "Spend":
        """The larger count of each period, of two spends as of the same moment."""
        return self._replace(
            day_requests=max(self.day_requests, other.day_requests),
            month_requests=max(self.month_requests, other.month_requests),
        )

    def record(self) -> dict[str, Any]:
        """The spend as stored in state and in the journal."""
        return self._asdict()


def next_day(now: datetime) -> datetime:
    """When the UTC day after `now` starts: the daily budget's renewal."""
    return datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)


def next_month(now: datetime) -> datetime:
    """When the UTC month after `now` starts: the monthly budget's renewal."""
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=timezone.utc)


def requests_left(budget: RequestBudget, spend: Spend) -> int | None:
    """Requests the budget still allows today and this month, or None when it sets no limit."""
    left = [
        limit - used
        for limit, used in (
            (budget.daily, spend.day_requests),
            (budget.monthly, spend.month_requests),
        )
        if limit is not None
    ]
    return max(0, min(left)) if left else None


def renewal(budget: RequestBudget, spend: Spend, now: datetime) -> datetime:
    """When the budget lets requests go again: the next month if that one is spent, else the next
    day."""
    if budget.monthly is not None and spend.month_requests >= budget.monthly:
        return next_month(now)
    return next_day(now)


def spend_text(budget: RequestBudget, spend: Spend) -> str:
    """The spend against the budget, in words: `requests today 40 of 100, this month 40`."""
    day = f"{spend.day_requests:,}" + (f" of {budget.daily:,}" if budget.daily else "")
    month = f"{spend.month_requests:,}" + (f" of {budget.monthly:,}" if budget.monthly else "")
    unset = "" if budget.daily or budget.monthly else " (no budget set)"
    return f"requests today {day}, this month {month}{unset}"


def _budget_spent_error(
    budget: RequestBudget, spend: Spend, now: datetime
) -> HyperTrackerBudgetError:
    """The error of a request the budget does not allow: what is spent, left, and when it renews."""
    monthly_spent = budget.monthly is not None and spend.month_requests >= budget.monthly
    setting = "monthly_request_budget" if monthly_spent else "daily_request_budget"
    renews = renewal(budget, spend, now)
    return HyperTrackerBudgetError(
        f"The request budget is spent: {spend_text(budget, spend)} "
        f"(sources.hypertracker.{setting}); {_left_text(requests_left(budget, spend) or 0)} "
        "until it renews at "
        f"{renews:%Y-%m-%d %H:%M} UTC, in {_wait_text(renews - now)}. What this run loaded stays "
        f"loaded, with its marks: run again then to go on, or raise {setting} "
        f"(SOURCES__HYPERTRACKER__{setting.upper()})",
        renews.isoformat(),
    )


def _left_text(left: int) -> str:
    """The requests left, in words: those kept for the run's other requests are not enough."""
    return f"{left} left" if not left else f"{left} left, kept for this run's other requests,"


def _wait_text(wait: timedelta) -> str:
    """A wait in hours and minutes: `3 h 05 min`."""
    minutes = max(0, int(wait.total_seconds() // 60))
    return f"{minutes // 60} h {minutes % 60:02d} min"


class SpendLedger:
    """Counts every API request against the budget, before it goes, across runs and processes.

    The count lives in the source state (committed with each load, so a new machine continues it)
    and in a journal in the pipeline's working folder, written at every request (so the requests
    of a run that failed before its state was committed still count on this machine). Each count
    is the larger of the two: the journal is ahead of the state here, the state elsewhere.
    """

    # Hand-written: dlt has no usage budget; its retrying client counts nothing across requests.
    def __init__(
        self,
        budget: RequestBudget,
        journal: Path | None,
        stored: object = None,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.budget = budget
        self._journal = journal
        self._clock = clock
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None
        self._charged = 0
        self._spend = Spend.from_record(stored, clock())

    def spend(self) -> Spend:
        """The requests spent today and this month, as far as this process knows."""
        with self._lock:
            return self._known(self._clock())

    def left(self) -> int | None:
        """Requests the budget still allows now; None when it sets no limit."""
        return requests_left(self.budget, self.spend())

    def charge(self) -> None:
        """Counts one request about to go, or raises HyperTrackerBudgetError when none is left."""
        with self._lock:
            now = self._clock()
            spend = self._known(now)
            if requests_left(self.budget, spend) == 0:
                raise _budget_spent_error(self.budget, spend, now)
            self._charged += 1
            self._spend = spend.plus(1)
            self._store()

    def spend_text(self) -> str:
        """The requests spent today and this month against the budget, in words."""
        return spend_text(self.budget, self.spend())

    def spent_error(self) -> HyperTrackerBudgetError:
        """The error that says the budget is spent, and until when."""
        now = self._clock()
        return _budget_spent_error(self.budget, self.spend(), now)

    def keep_in_state(self, item: _Item) -> _Item:
        """Binds the count to the source state of the running extract (a resource's map step)."""
        if self._state is None:
            state, writable = pipeline_state(Container())
            if writable and state is not None:
                sources = state.setdefault("sources", {})
                self._bind(sources.setdefault(SOURCE_NAME, {}))
        return item

    def _bind(self, source_state: dict[str, Any]) -> None:
        """Writes the count into this source state from now on, counting what it holds."""
        with self._lock:
            now = self._clock()
            stored = Spend.from_record(source_state.get(_SPEND_STATE_KEY), now)
            self._spend = self._known(now).most(stored.plus(self._charged))
            self._state = source_state
            self._store()

    def _known(self, now: datetime) -> Spend:
        """The larger of this ledger's count and the journal's, as of `now`."""
        spend = self._spend.at(now)
        if self._journal is not None:
            with _JOURNAL_LOCK:
                spend = spend.most(Spend.from_record(_read_journal(self._journal), now))
        return spend

    def _store(self) -> None:
        """Writes the count to the journal and, once bound, to the source state."""
        record = self._spend.record()
        if self._state is not None:
            self._state[_SPEND_STATE_KEY] = record
        if self._journal is not None:
            with _JOURNAL_LOCK:
                _write_journal(self._journal, record)


def _read_journal(path: Path) -> object:
    """The journal's record, or None when there is none yet (or it is unreadable)."""
    try:
        return orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None


def _write_journal(path: Path, record: dict[str, Any]) -> None:
    """Replaces the journal's record at once, so a kill never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    partial.write_bytes(orjson.dumps(record))
    partial.replace(path)


def _journal_path(working_dir: str | None) -> Path | None:
    """The spend journal of a pipeline's working folder, if there is one."""
    return Path(working_dir) / SPEND_JOURNAL if working_dir else None


def stored_spend(pipeline_state_: Mapping[str, Any]) -> object:
    """The spend record a pipeline's state holds, if any."""
    return pipeline_state_.get("sources", {}).get(SOURCE_NAME, {}).get(_SPEND_STATE_KEY)


def pipeline_ledger(pipeline: Any, budget: RequestBudget) -> SpendLedger:
    """The ledger of a pipeline's spend: its journal, and the spend its state holds."""
    return SpendLedger(budget, _journal_path(pipeline.working_dir), stored_spend(pipeline.state))


def active_pipeline_ledger(budget: RequestBudget) -> SpendLedger:
    """The ledger of the active dlt pipeline, or one in memory only when none is active."""
    context = Container()[PipelineContext]
    if context.is_active():
        return pipeline_ledger(context.pipeline(), budget)
    return SpendLedger(budget, None)
