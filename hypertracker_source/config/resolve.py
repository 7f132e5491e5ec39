"""Checks and normalises the source's settings before any request is made."""

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple
from urllib.parse import urlparse

import orjson
import pendulum
from dlt.common.schema.typing import TLoaderMergeStrategy
from dlt.common.time import ensure_pendulum_datetime

from hypertracker_source.config.defaults import (
    BYTES_PER_MB,
    DEFAULT_RESPONSE_DEADLINE,
    FILL_SIDES,
    FILLS_MAX_PAGE_SIZE,
    HISTORY_START,
    MAX_BODY_MB,
    MAX_LAG,
    MERGE_STRATEGIES,
    PLANS,
    REQUESTS_PER_MINUTE_PLANS,
    SEGMENT_NAMES,
)
from hypertracker_source.exceptions import HyperTrackerConfigError

ListSetting = str | Sequence[str] | Sequence[int] | None
"""A list setting as dlt hands it over: a list, a JSON list string, or a comma-separated string."""


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


def fill_filters(coins: list[str], address: str | None, side: str | None) -> tuple[FillFilter, ...]:
    """Returns every filter combination to load: one per coin, or one for all markets."""
    choices: list[str | None] = [*coins] or [None]
    return tuple(FillFilter(coin, address, side) for coin in choices)


class RequestBudget(NamedTuple):
    """How many API requests (usage tokens) may be spent a UTC day and a UTC month; None: any."""

    daily: int | None = None
    monthly: int | None = None
    plan: str | None = None


@dataclass(frozen=True)
class SourceSettings:
    """The source's settings, checked and normalised, in the order they are checked."""

    base_url: str
    api_key: str = field(repr=False)
    requests_per_minute: int | None
    fills: FillsPlan
    heatmap_coins: tuple[str, ...]
    refresh_snapshots: bool
    segment_ids: tuple[int, ...]
    merge_strategy: TLoaderMergeStrategy
    response_deadline: float = DEFAULT_RESPONSE_DEADLINE
    max_body_bytes: Mapping[str, int] = field(default_factory=dict)
    budget: RequestBudget = field(default_factory=RequestBudget)


def resolve_settings(
    api_key: str | None,
    base_url: str,
    start_date: str | datetime | None,
    end_date: str | datetime | None,
    coins: ListSetting,
    address: str | None,
    side: str | None,
    heatmap_coins: ListSetting,
    segment_ids: ListSetting,
    page_size: int | str,
    lag: float | str | timedelta,
    max_fills_per_run: int | str,
    requests_per_minute: str | int | None,
    refresh_snapshots: bool | str,
    merge_strategy: str,
    response_deadline: float | str = DEFAULT_RESPONSE_DEADLINE,
    max_body_mb: Mapping[str, float] | str | None = None,
    plan: str | None = None,
    daily_request_budget: int | str | None = None,
    monthly_request_budget: int | str | None = None,
) -> SourceSettings:
    """Returns the source's settings checked and normalised, or names the first bad one.

    The order is fixed, so that of several bad settings the same one is named: base_url, api_key,
    plan, daily_request_budget, monthly_request_budget, requests_per_minute, start_date, coins,
    address, side, end_date, lag, page_size, max_fills_per_run, heatmap_coins, refresh_snapshots,
    segment_ids, merge_strategy, response_deadline, max_body_mb.
    """
    checked_base_url = check_base_url(base_url)
    checked_api_key = check_api_key(api_key)
    budget = check_request_budget(plan, daily_request_budget, monthly_request_budget)
    rate = check_requests_per_minute(requests_per_minute) or plan_rate(budget)
    first_day = check_start_date(start_date)
    fills = FillsPlan(
        fill_filters(check_coins("coins", coins), check_address(address), check_side(side)),
        first_day,
        check_end_date(end_date, first_day),
        check_lag(lag),
        check_page_size(page_size),
        check_max_fills_per_run(max_fills_per_run),
    )
    return SourceSettings(
        base_url=checked_base_url,
        api_key=checked_api_key,
        requests_per_minute=rate,
        fills=fills,
        heatmap_coins=tuple(check_coins("heatmap_coins", heatmap_coins, case_sensitive=False)),
        refresh_snapshots=check_flag("refresh_snapshots", refresh_snapshots),
        segment_ids=tuple(check_segment_ids(segment_ids)),
        merge_strategy=check_merge_strategy(merge_strategy),
        response_deadline=check_response_deadline(response_deadline),
        max_body_bytes=check_max_body_mb(max_body_mb),
        budget=budget,
    )


def as_list(setting: str, value: ListSetting) -> list[str]:
    """Returns a list setting's items as stripped strings, empty when unset."""
    if value is None:
        return []
    if isinstance(value, str):
        text = value.strip()
        try:
            items = orjson.loads(text) if text.startswith("[") else text.split(",")
        except orjson.JSONDecodeError:
            items = None
    else:
        items = list(value) if isinstance(value, Sequence | set | frozenset) else None
    if not isinstance(items, list):
        raise HyperTrackerConfigError(
            setting,
            value,
            "it is not a list",
            'Give a list such as ["BTC", "ETH"], a JSON list, or a comma-separated string',
        )
    return [str(item).strip() for item in items if str(item).strip()]


def as_number(setting: str, value: object, fix: str) -> float:
    """Returns a numeric setting as a number, taking numeric strings (environment variables)."""
    number: object = value
    if isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        raise HyperTrackerConfigError(setting, value, "it is not a number", fix)
    if not math.isfinite(number):
        raise HyperTrackerConfigError(setting, value, "it is not a finite number", fix)
    return number


def check_api_key(api_key: str | None) -> str:
    """Returns the API key, refusing a missing or blank one, or one that is not text."""
    if api_key is not None and not isinstance(api_key, str):
        raise HyperTrackerConfigError(
            "api_key",
            f"<a {type(api_key).__name__}>",
            "it is not text",
            "Give the token from the HyperTracker API dashboard as a string",
        )
    if not api_key or not api_key.strip():
        raise HyperTrackerConfigError(
            "api_key",
            api_key,
            "no API key is set",
            "Put the token from the HyperTracker API dashboard in .dlt/secrets.toml under "
            '[sources.hypertracker] as api_key = "..."',
        )
    return api_key.strip()


def check_base_url(base_url: str) -> str:
    """Returns the base URL without a trailing slash, refusing anything but http(s)."""
    parsed = urlparse(base_url if isinstance(base_url, str) else "")
    if isinstance(base_url, str) and "://" not in base_url and base_url.strip():
        raise HyperTrackerConfigError(
            "base_url",
            base_url,
            "it has no scheme",
            f"Write it with http:// or https:// in front, such as https://{base_url.strip()}",
        )
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise HyperTrackerConfigError(
            "base_url",
            base_url,
            "it is not an http(s) URL",
            "Use https://ht-api.coinmarketman.com, or leave it unset",
        )
    return base_url.rstrip("/")


def parse_instant(setting: str, value: str | datetime) -> pendulum.DateTime:
    """Parses a date setting (ISO 8601 string or datetime) to an instant in UTC."""
    try:
        parsed = (
            pendulum.instance(value) if isinstance(value, datetime) else pendulum.parse(str(value))
        )
        if not isinstance(parsed, pendulum.Date):
            raise ValueError("it names no calendar day")
    except (ValueError, TypeError, pendulum.parsing.exceptions.ParserError) as error:
        raise HyperTrackerConfigError(
            setting,
            value,
            f"it is not an ISO 8601 date ({error})",
            "Write it like 2025-07-27 or 2026-01-01T00:00:00Z",
        ) from None
    if not isinstance(parsed, pendulum.DateTime):
        parsed = pendulum.datetime(parsed.year, parsed.month, parsed.day)
    return parsed.in_timezone("UTC")


def check_start_date(start_date: str | datetime | None) -> pendulum.DateTime:
    """Returns the first instant of fill history to load, in UTC, no earlier than the API's."""
    history_start = ensure_pendulum_datetime(HISTORY_START)
    if start_date is None:
        return history_start
    parsed = parse_instant("start_date", start_date)
    if parsed > pendulum.now("UTC"):
        raise HyperTrackerConfigError(
            "start_date", start_date, "it is in the future", "Use a date in the past"
        )
    return max(parsed, history_start)


def check_end_date(
    end_date: str | datetime | None, start_date: pendulum.DateTime
) -> pendulum.DateTime | None:
    """Returns the end of a back-fill, or None for an incremental load."""
    if end_date is None or end_date == "":
        return None
    parsed = parse_instant("end_date", end_date)
    if parsed <= start_date:
        raise HyperTrackerConfigError(
            "end_date",
            end_date,
            f"it is not after start_date ({start_date.isoformat()})",
            "Give an end_date later than start_date, or leave it unset for an incremental load",
        )
    return parsed


def check_address(address: str | None) -> str | None:
    """Returns the wallet whose fills to load, or None for every wallet."""
    if address is None or address == "":
        return None
    if not isinstance(address, str) or not address.strip():
        raise HyperTrackerConfigError(
            "address", address, "it is not a wallet address", "Write it like 0x3160fb45..."
        )
    return address.strip()


def check_flag(setting: str, value: bool | str) -> bool:
    """Returns a yes-or-no setting, taking the strings an environment variable would hold."""
    text = str(value).strip().lower()
    if isinstance(value, bool | int) and value in (0, 1):
        return bool(value)
    if text in ("true", "yes", "1", "false", "no", "0"):
        return text in ("true", "yes", "1")
    raise HyperTrackerConfigError(
        setting, value, "it is neither true nor false", "Use true or false"
    )


def check_side(side: str | None) -> str | None:
    """Returns the fills side filter, A (ask/sell) or B (bid/buy), or None for both."""
    if side is None or side == "":
        return None
    if side not in FILL_SIDES:
        raise HyperTrackerConfigError(
            "side",
            side,
            "the API knows only A (ask, sell) and B (bid, buy), in upper case",
            "Use side='A' or side='B', or leave it unset for both",
        )
    return side


def check_page_size(page_size: int | str) -> int:
    """Returns the fills page size, refusing one the API would reject."""
    fix = f"Leave it unset for {FILLS_MAX_PAGE_SIZE}, the cheapest in requests"
    size = as_number("page_size", page_size, fix)
    if size != int(size) or not 1 <= size <= FILLS_MAX_PAGE_SIZE:
        raise HyperTrackerConfigError(
            "page_size",
            page_size,
            f"the API takes 1 to {FILLS_MAX_PAGE_SIZE} fills a page",
            fix,
        )
    return int(size)


def check_max_fills_per_run(max_fills_per_run: int | str) -> int:
    """Returns how many fills one run reads at most, 0 for no limit."""
    fix = "Use for example max_fills_per_run=250000, or 0 for no limit"
    fills = as_number("max_fills_per_run", max_fills_per_run, fix)
    if fills != int(fills) or fills < 0:
        raise HyperTrackerConfigError(
            "max_fills_per_run", max_fills_per_run, "it must be a whole number, 0 or more", fix
        )
    return int(fills)


def check_lag(lag: float | str | timedelta) -> timedelta:
    """Returns how far behind its high-water mark a run re-reads fills."""
    fix = "Use for example lag=3600"
    seconds = lag.total_seconds() if isinstance(lag, timedelta) else as_number("lag", lag, fix)
    if not 0 <= seconds <= MAX_LAG.total_seconds():
        raise HyperTrackerConfigError(
            "lag", lag, f"it must be a number of seconds, 0 to {MAX_LAG.total_seconds():.0f}", fix
        )
    return timedelta(seconds=seconds)


def check_segment_ids(segment_ids: ListSetting) -> list[int]:
    """Returns the chosen segment ids, all 16 when unset, refusing unknown ones."""
    items = as_list("segment_ids", segment_ids)
    if not items:
        return list(SEGMENT_NAMES)
    known = ", ".join(f"{id_} {name}" for id_, name in sorted(SEGMENT_NAMES.items()))
    chosen = []
    for item in items:
        if not item.isdigit() or int(item) not in SEGMENT_NAMES:
            raise HyperTrackerConfigError(
                "segment_ids", segment_ids, f"{item!r} is not a segment id", f"Known: {known}"
            )
        chosen.append(int(item))
    return list(dict.fromkeys(chosen))


def check_coins(setting: str, coins: ListSetting, case_sensitive: bool = True) -> list[str]:
    """Returns a coin list setting's coins, without duplicates, refusing blank names.

    Where case matters, two spellings of one name are refused: were the API to match coins in any
    case, both would read the same fills in one run, and a run's fills are stored as read.
    """
    items = as_list(setting, coins)
    for coin in items:
        if any(char.isspace() or char == "/" for char in coin):
            raise HyperTrackerConfigError(
                setting, coins, f"{coin!r} is not a coin name", "Write coins like BTC or xyz:MSTR"
            )
    unique: dict[str, str] = {}
    for coin in items:
        kept = unique.setdefault(coin.lower(), coin)
        if case_sensitive and kept != coin:
            raise HyperTrackerConfigError(
                setting,
                coins,
                f"{kept!r} and {coin!r} differ only in case",
                "Keep the one spelled as the API lists it, such as BTC or xyz:MSTR",
            )
    return list(unique.values())


def check_requests_per_minute(requests_per_minute: str | int | None) -> int | None:
    """Returns the request rate to pace to, from a number or a plan name, or None for unpaced."""
    if requests_per_minute is None or requests_per_minute == "":
        return None
    text = str(requests_per_minute).strip().lower()
    if text in REQUESTS_PER_MINUTE_PLANS:
        return REQUESTS_PER_MINUTE_PLANS[text]
    if text.isdigit() and int(text) > 0:
        return int(text)
    plans = ", ".join(f"{name} ({rate})" for name, rate in REQUESTS_PER_MINUTE_PLANS.items())
    raise HyperTrackerConfigError(
        "requests_per_minute",
        requests_per_minute,
        "it is neither a positive number nor a plan name",
        f"Use a number or one of {plans}",
    )


def check_merge_strategy(merge_strategy: str) -> TLoaderMergeStrategy:
    """Returns how the tables merge: delete-insert (SQL databases) or upsert (delta, iceberg)."""
    for strategy in MERGE_STRATEGIES:
        if merge_strategy == strategy:
            return strategy
    raise HyperTrackerConfigError(
        "merge_strategy",
        merge_strategy,
        f"it is not one of {', '.join(MERGE_STRATEGIES)}",
        "Use delete-insert for SQL databases, upsert for delta or iceberg tables on a bucket",
    )


def check_response_deadline(response_deadline: float | str) -> float:
    """Returns the seconds one answer may take, whole, refusing none, negative or infinite."""
    fix = "Use for example response_deadline=120 (seconds)"
    seconds = as_number("response_deadline", response_deadline, fix)
    if not math.isfinite(seconds) or seconds <= 0:
        raise HyperTrackerConfigError(
            "response_deadline", response_deadline, "it must be a number of seconds above 0", fix
        )
    return seconds


def check_max_body_mb(max_body_mb: Mapping[str, float] | str | None) -> dict[str, int]:
    """Returns each kind of answer's size limit in bytes: the defaults, with those given."""
    fix = f'Give megabytes by kind, such as {{"fills": 64}}; the kinds: {", ".join(MAX_BODY_MB)}'
    given: object = max_body_mb or {}
    if isinstance(given, str):
        try:
            given = orjson.loads(given)
        except orjson.JSONDecodeError:
            given = None
    if not isinstance(given, Mapping):
        raise HyperTrackerConfigError("max_body_mb", max_body_mb, "it is not a table", fix)
    limits = {**MAX_BODY_MB}
    for kind, megabytes in given.items():
        number = as_number("max_body_mb", megabytes, fix)
        if kind not in MAX_BODY_MB or not math.isfinite(number) or number <= 0:
            raise HyperTrackerConfigError(
                "max_body_mb", max_body_mb, f"{kind} = {megabytes!r} is not a kind and a size", fix
            )
        limits[kind] = number
    return {kind: int(megabytes * BYTES_PER_MB) for kind, megabytes in limits.items()}


def check_plan(plan: str | None) -> str | None:
    """Returns the API plan named by the `plan` setting, in lower case, or None when unset."""
    if plan is None or plan == "":
        return None
    name = str(plan).strip().lower()
    if name not in PLANS:
        raise HyperTrackerConfigError(
            "plan", plan, "it is not a plan of the API", f"Use one of {', '.join(PLANS)}"
        )
    return name


def check_budget_count(setting: str, value: int | str | None) -> int | None:
    """Returns a request budget: a whole number of requests above 0, or None when unset."""
    if value is None or value == "":
        return None
    fix = f"Use a whole number of requests such as {setting}=1000, or leave it unset"
    count = as_number(setting, value, fix)
    if count != int(count) or count < 1:
        raise HyperTrackerConfigError(setting, value, "it must be a whole number above 0", fix)
    return int(count)


def check_request_budget(
    plan: str | None, daily: int | str | None, monthly: int | str | None
) -> RequestBudget:
    """Returns the request budget: the plan's limits, each overridden by its own setting."""
    name = check_plan(plan)
    limits = PLANS[name] if name else None
    return RequestBudget(
        daily=check_budget_count("daily_request_budget", daily)
        or (limits.daily_requests if limits else None),
        monthly=check_budget_count("monthly_request_budget", monthly)
        or (limits.monthly_requests if limits else None),
        plan=name,
    )


def plan_rate(budget: RequestBudget) -> int | None:
    """The requests per minute of the budget's plan, if it names one with a rate limit."""
    return PLANS[budget.plan].requests_per_minute if budget.plan else None


SETTING_CHECKS: dict[str, Callable[[Any], object]] = {
    "page_size": check_page_size,
    "max_fills_per_run": check_max_fills_per_run,
    "lag": check_lag,
    "response_deadline": check_response_deadline,
    "refresh_snapshots": lambda value: check_flag("refresh_snapshots", value),
}
"""The checks of the typed settings that dlt coerces before the source sees them."""


def uncoerced_setting_error(setting: str, value: object) -> HyperTrackerConfigError | None:
    """The source's own error for a setting's value that dlt could not coerce to its type (such
    as page_size=NaN), naming the setting and the fix; None when the source has no check."""
    check = SETTING_CHECKS.get(setting)
    if check is None:
        return None
    try:
        check(value)
    except HyperTrackerConfigError as error:
        return error
    return None
