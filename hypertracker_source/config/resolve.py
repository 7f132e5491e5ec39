"""The source's settings checked in the order declared, before any request, into frozen records."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

import pendulum
from dlt.common.schema.typing import TLoaderMergeStrategy

from hypertracker_source.config.defaults import PLANS
from hypertracker_source.config.settings import SETTINGS, Setting
from hypertracker_source.exceptions import HyperTrackerConfigError


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
    """What the fills resource loads: filters, history range, re-read lag, page size, run size."""

    filters: tuple[FillFilter, ...]
    start_date: pendulum.DateTime
    end_date: pendulum.DateTime | None
    lag: timedelta
    page_size: int
    max_fills_per_run: int


def _fill_filters(
    coins: Sequence[str], address: str | None, side: str | None
) -> tuple[FillFilter, ...]:
    """Returns every filter combination to load: one per coin, or one for all markets."""
    choices: list[str | None] = [*coins] or [None]
    return tuple(FillFilter(coin, address, side) for coin in choices)


class RequestBudget(NamedTuple):
    """How many API requests (usage tokens) may be spent a UTC day and a UTC month; None: any."""

    daily: int | None = None
    monthly: int | None = None
    plan: str | None = None


@dataclass(frozen=True)
class ClientSettings:
    """What the API client is made with: address, key, pace, answer limits and request budget."""

    base_url: str
    api_key: str = field(repr=False)
    requests_per_minute: int | None
    response_deadline: float
    max_body_bytes: Mapping[str, int]
    budget: RequestBudget


@dataclass(frozen=True)
class SourceSettings(ClientSettings):
    """The source's settings, checked and normalised: the client's, and what it loads."""

    fills: FillsPlan
    heatmap_coins: tuple[str, ...]
    refresh_snapshots: bool
    segment_ids: tuple[int, ...]
    merge_strategy: TLoaderMergeStrategy


def resolve_settings(**given: Any) -> SourceSettings:
    """Returns the source's settings checked and normalised, or names the first bad one.

    Each setting not given takes its default; they are checked in the order declared, so that of
    several bad settings the same one is named.
    """
    checked = _checked(SETTINGS, given)
    return SourceSettings(
        **vars(_client(checked)),
        fills=FillsPlan(
            _fill_filters(checked["coins"], checked["address"], checked["side"]),
            checked["start_date"],
            checked["end_date"],
            checked["lag"],
            checked["page_size"],
            checked["max_fills_per_run"],
        ),
        heatmap_coins=checked["heatmap_coins"],
        refresh_snapshots=checked["refresh_snapshots"],
        segment_ids=checked["segment_ids"],
        merge_strategy=checked["merge_strategy"],
    )


CLIENT_SETTINGS = tuple(setting for setting in SETTINGS if setting.client)
"""The settings the API client is made with."""


def resolve_client_settings(**given: Any) -> ClientSettings:
    """Returns the API client's settings checked and normalised, or names the first bad one."""
    return _client(_checked(CLIENT_SETTINGS, given))


def _checked(settings: Iterable[Setting], given: Mapping[str, Any]) -> dict[str, Any]:
    """Each setting's value checked, in order: given, or its default."""
    unknown = set(given) - {setting.name for setting in SETTINGS}
    if unknown:
        raise TypeError(f"not settings of the source: {', '.join(sorted(unknown))}")
    checked: dict[str, Any] = {}
    for setting in settings:
        value = given.get(setting.name, setting.default)
        checked[setting.name] = setting.check(setting.name, value)
        if setting.later_than is not None:
            _refuse_not_later(setting, value, checked[setting.name], checked[setting.later_than])
    return checked


def _refuse_not_later(setting: Setting, value: Any, checked: Any, earlier: Any) -> None:
    """Refuses a setting's value, when set, that is not later than the one it must follow."""
    if checked is not None and checked <= earlier:
        raise HyperTrackerConfigError(
            setting.name,
            value,
            f"it is not after {setting.later_than} ({earlier.isoformat()})",
            f"Give an {setting.name} later than {setting.later_than}, or leave it unset for an "
            "incremental load",
        )


def _client(checked: Mapping[str, Any]) -> ClientSettings:
    """The client's settings, from the checked ones: a plan sets the budgets and the pace that
    are not set on their own."""
    plan = checked["plan"]
    limits = PLANS[plan] if plan else None
    budget = RequestBudget(
        daily=checked["daily_request_budget"] or (limits.daily_requests if limits else None),
        monthly=checked["monthly_request_budget"] or (limits.monthly_requests if limits else None),
        plan=plan,
    )
    return ClientSettings(
        base_url=checked["base_url"],
        api_key=checked["api_key"],
        requests_per_minute=checked["requests_per_minute"]
        or (limits.requests_per_minute if limits else None),
        response_deadline=checked["response_deadline"],
        max_body_bytes=checked["max_body_mb"],
        budget=budget,
    )


def uncoerced_setting_error(setting: str, value: object) -> HyperTrackerConfigError | None:
    """The source's own error for a setting's value that dlt could not coerce to its type (such
    as page_size=NaN), naming the setting and the fix; None when its check takes the value."""
    for declared in SETTINGS:
        if declared.name == setting:
            try:
                declared.check(setting, value)
            except HyperTrackerConfigError as error:
                return error
    return None
