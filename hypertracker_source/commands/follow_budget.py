"""How `follow` spreads the request budget over the data versions ahead: fills first, snapshots
when the rest of the day's fills are paid for, and polls spaced so the day's share lasts."""

import math
from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from hypertracker_source.api.budget import Spend, SpendLedger, next_day, next_month, renewal
from hypertracker_source.api.client import RunStats
from hypertracker_source.api.endpoints import FILLS, STATUS
from hypertracker_source.config.defaults import (
    DEFAULT_HEATMAP_COINS,
    FASTEST_REFRESH,
    FILLS_RESOURCE,
    SEGMENT_NAMES,
)
from hypertracker_source.config.resolve import RequestBudget

FILLS_VERSION_COST = 3
"""A fills-only version's requests before one is measured: the poll that finds it, one late poll,
one fills page."""
_SNAPSHOTS_COST = len(DEFAULT_HEATMAP_COINS) + len(SEGMENT_NAMES) + 1
"""The snapshot requests of a version before they are measured: heatmaps, risk, segments."""


def _today_allowance(budget: RequestBudget, spend: Spend, now: datetime) -> float | None:
    """Requests left for the rest of today: the daily budget's, and the month's rest shared
    evenly over its days left, today included; None when no budget is set."""
    shares: list[float] = []
    if budget.daily is not None:
        shares.append(budget.daily - spend.day_requests)
    if budget.monthly is not None:
        spent_before_today = spend.month_requests - spend.day_requests
        days_left = (next_month(now) - next_day(now)).days + 1
        shares.append((budget.monthly - spent_before_today) / days_left - spend.day_requests)
    return max(0.0, min(shares)) if shares else None


def _versions_left_today(now: datetime) -> int:
    """The most data versions the API can still make today, this one included."""
    return max(1, math.ceil((next_day(now) - now) / FASTEST_REFRESH))


class VersionChoice(NamedTuple):
    """What `follow` loads of a new data version: nothing, the fills only, or everything."""

    load: bool
    snapshots: bool
    reason: str

    def resources(self, chosen: str | None) -> str | None:
        """The --resources of this version's load: the fills alone when snapshots are skipped
        (unless --resources left the fills out)."""
        names = [name.strip() for name in chosen.split(",")] if chosen else [FILLS_RESOURCE]
        if self.snapshots or FILLS_RESOURCE not in names:
            return chosen
        return FILLS_RESOURCE


class BudgetSpread:
    """Spreads the request budget over the data versions ahead, so that `follow` never exceeds it
    and never starves the fills.

    Fills come first: a version is loaded when today's allowance pays for its fills; its heatmaps
    and risk only when what is left after them still pays for the fills of every version the API
    can make before the day ends (one every FASTEST_REFRESH). Polls are spaced so that the
    allowance, spent a fills version at a time, lasts until midnight UTC. A version not loaded is
    not lost: the next load's walk reads every fill since the last one.
    """

    # Hand-written: dlt has no usage budget, and follow's cadence is the source's own.
    def __init__(self, ledger: SpendLedger | None) -> None:
        self._ledger = ledger
        self.fills_cost = FILLS_VERSION_COST
        self.snapshots_cost = _SNAPSHOTS_COST

    @property
    def budget(self) -> RequestBudget | None:
        """The budget spread, or None when none is set."""
        if self._ledger is None or not (self._ledger.budget.daily or self._ledger.budget.monthly):
            return None
        return self._ledger.budget

    def allowance(self, now: datetime) -> float | None:
        """Requests left for the rest of today; None when no budget is set."""
        budget = self.budget
        if budget is None or self._ledger is None:
            return None
        return _today_allowance(budget, self._ledger.spend(), now)

    def choose(self, now: datetime) -> VersionChoice:
        """What to load of the new version found now."""
        allowance = self.allowance(now)
        if allowance is None:
            return VersionChoice(True, True, "no budget set")
        if allowance < self.fills_cost:
            return VersionChoice(False, False, f"{allowance:.0f} requests left for today")
        reserve = self.fills_cost * _versions_left_today(now)
        if allowance - self.snapshots_cost >= reserve:
            return VersionChoice(True, True, "within the budget")
        return VersionChoice(
            True,
            False,
            f"fills only: {allowance:.0f} requests left for today keep {reserve} for the fills",
        )

    def learn(self, stats: RunStats, polls: int, snapshots: bool) -> None:
        """Takes a load's measured cost as the next estimate of a version's."""
        fills = stats.requests[FILLS.name] + polls
        self.fills_cost = max(FILLS_VERSION_COST, fills)
        if snapshots:
            others = sum(stats.requests.values()) - stats.requests[FILLS.name]
            self.snapshots_cost = max(1, others - stats.requests[STATUS.name])

    def spacing(self, now: datetime) -> float:
        """The fewest seconds until the next poll that keep the rest of today's allowance
        lasting to midnight UTC; until the budget renews when nothing is left."""
        allowance = self.allowance(now)
        if allowance is None:
            return 0.0
        rest_of_day = (next_day(now) - now).total_seconds()
        if allowance < 1:
            return self.until_renewal(now)
        return rest_of_day * min(1.0, self.fills_cost / allowance)

    def exhausted(self, now: datetime) -> bool:
        """Whether today's share of the budget cannot pay for one more poll."""
        allowance = self.allowance(now)
        return allowance is not None and allowance < 1

    def until_renewal(self, now: datetime) -> float:
        """Seconds until the budget renews (the next UTC day, or month when that is spent)."""
        budget = self.budget
        if budget is None or self._ledger is None:
            return 0.0
        return (renewal(budget, self._ledger.spend(), now) - now).total_seconds() + 1


def plan_version_costs(
    budget: RequestBudget, per_version: int, fills_cost: int, versions: Sequence[int]
) -> list[tuple[int, int]]:
    """For each count of versions a day: the versions whose snapshots load, and those loaded at
    all, under the spread at a steady cost (for `plan` and the docs)."""
    results = []
    for count in versions:
        daily = [budget.daily] if budget.daily else []
        if budget.monthly:
            daily.append(budget.monthly // 30)
        allowance = min(daily) if daily else None
        if allowance is None:
            results.append((count, count))
            continue
        loaded = min(count, allowance // fills_cost)
        spare = allowance - loaded * fills_cost
        snapshots = min(loaded, spare // max(1, per_version - fills_cost))
        results.append((snapshots, loaded))
    return results
