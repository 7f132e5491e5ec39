"""The checks of single settings: each takes a setting's name and value, returns it normalised."""

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import orjson
import pendulum
from dlt.common.time import ensure_pendulum_datetime

from hypertracker_source.config.defaults import (
    BYTES_PER_MB,
    HISTORY_START,
    MAX_BODY_MB,
    MAX_LAG,
    REQUESTS_PER_MINUTE_PLANS,
    SEGMENT_NAMES,
)
from hypertracker_source.exceptions import HyperTrackerConfigError

Check = Callable[[str, Any], Any]
"""A setting's check: its name and the value given, to the value normalised; a bad value raises
HyperTrackerConfigError naming the setting."""

ListSetting = str | Sequence[str] | Sequence[int] | None
"""A list setting as dlt hands it over: a list, a JSON list string, or a comma-separated string."""


def unset_is_none(check: Check) -> Check:
    """The check of a setting that may be unset: None or "" is None, anything else is checked."""

    def checked_when_set(setting: str, value: Any) -> Any:
        return None if value is None or value == "" else check(setting, value)

    return checked_when_set


def whole_number(low: int, high: int | None, problem: str, fix: str) -> Check:
    """The check of a whole number from low up to high (None: no upper bound)."""

    def check(setting: str, value: Any) -> int:
        number = _as_number(setting, value, fix)
        if number != int(number) or number < low or (high is not None and number > high):
            raise HyperTrackerConfigError(setting, value, problem, fix)
        return int(number)

    return check


def one_of(options: Sequence[str], problem: str, fix: str, fold_case: bool = False) -> Check:
    """The check of a choice among options; with fold_case, in any case and spacing."""

    def check(setting: str, value: Any) -> str:
        text = str(value).strip().lower() if fold_case else value
        for option in options:
            if text == option:
                return option
        raise HyperTrackerConfigError(setting, value, problem, fix)

    return check


def coin_list(case_sensitive: bool) -> Check:
    """The check of a list of coin names; where case matters, refusing two spellings of one."""

    def check(setting: str, value: ListSetting) -> tuple[str, ...]:
        return tuple(_check_coins(setting, value, case_sensitive))

    return check


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


def _as_number(setting: str, value: object, fix: str) -> float:
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


def check_api_key(setting: str, api_key: str | None) -> str:
    """Returns the API key, refusing a missing or blank one, or one that is not text."""
    if api_key is not None and not isinstance(api_key, str):
        raise HyperTrackerConfigError(
            setting,
            f"<a {type(api_key).__name__}>",
            "it is not text",
            "Give the token from the HyperTracker API dashboard as a string",
        )
    if not api_key or not api_key.strip():
        raise HyperTrackerConfigError(
            setting,
            api_key,
            "no API key is set",
            "Put the token from the HyperTracker API dashboard in .dlt/secrets.toml under "
            '[sources.hypertracker] as api_key = "..."',
        )
    return api_key.strip()


def check_base_url(setting: str, base_url: str) -> str:
    """Returns the base URL without a trailing slash, refusing anything but http(s)."""
    parsed = urlparse(base_url if isinstance(base_url, str) else "")
    if isinstance(base_url, str) and "://" not in base_url and base_url.strip():
        raise HyperTrackerConfigError(
            setting,
            base_url,
            "it has no scheme",
            f"Write it with http:// or https:// in front, such as https://{base_url.strip()}",
        )
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise HyperTrackerConfigError(
            setting,
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


def check_start_date(setting: str, start_date: str | datetime | None) -> pendulum.DateTime:
    """Returns the first instant of fill history to load, in UTC, no earlier than the API's."""
    history_start = ensure_pendulum_datetime(HISTORY_START)
    if start_date is None:
        return history_start
    parsed = parse_instant(setting, start_date)
    if parsed > pendulum.now("UTC"):
        raise HyperTrackerConfigError(
            setting, start_date, "it is in the future", "Use a date in the past"
        )
    return max(parsed, history_start)


def check_address(setting: str, address: str) -> str:
    """Returns the wallet whose fills to load."""
    if not isinstance(address, str) or not address.strip():
        raise HyperTrackerConfigError(
            setting, address, "it is not a wallet address", "Write it like 0x3160fb45..."
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


def check_lag(setting: str, lag: float | str | timedelta) -> timedelta:
    """Returns how far behind its high-water mark a run re-reads fills."""
    fix = "Use for example lag=3600"
    seconds = lag.total_seconds() if isinstance(lag, timedelta) else _as_number(setting, lag, fix)
    if not 0 <= seconds <= MAX_LAG.total_seconds():
        raise HyperTrackerConfigError(
            setting, lag, f"it must be a number of seconds, 0 to {MAX_LAG.total_seconds():.0f}", fix
        )
    return timedelta(seconds=seconds)


def check_segment_ids(setting: str, segment_ids: ListSetting) -> tuple[int, ...]:
    """Returns the chosen segment ids, all 16 when unset, refusing unknown ones."""
    items = as_list(setting, segment_ids)
    if not items:
        return tuple(SEGMENT_NAMES)
    known = ", ".join(f"{id_} {name}" for id_, name in sorted(SEGMENT_NAMES.items()))
    chosen = []
    for item in items:
        if not item.isdigit() or int(item) not in SEGMENT_NAMES:
            raise HyperTrackerConfigError(
                setting, segment_ids, f"{item!r} is not a segment id", f"Known: {known}"
            )
        chosen.append(int(item))
    return tuple(dict.fromkeys(chosen))


def _check_coins(setting: str, coins: ListSetting, case_sensitive: bool = True) -> list[str]:
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


def check_requests_per_minute(setting: str, requests_per_minute: str | int) -> int:
    """Returns the request rate to pace to, from a number or a plan name."""
    text = str(requests_per_minute).strip().lower()
    if text in REQUESTS_PER_MINUTE_PLANS:
        return REQUESTS_PER_MINUTE_PLANS[text]
    if text.isdigit() and int(text) > 0:
        return int(text)
    plans = ", ".join(f"{name} ({rate})" for name, rate in REQUESTS_PER_MINUTE_PLANS.items())
    raise HyperTrackerConfigError(
        setting,
        requests_per_minute,
        "it is neither a positive number nor a plan name",
        f"Use a number or one of {plans}",
    )


def check_response_deadline(setting: str, response_deadline: float | str) -> float:
    """Returns the seconds one answer may take, refusing none, negative or infinite."""
    fix = "Use for example response_deadline=120 (seconds)"
    seconds = _as_number(setting, response_deadline, fix)
    if seconds <= 0:
        raise HyperTrackerConfigError(
            setting, response_deadline, "it must be a number of seconds above 0", fix
        )
    return seconds


def check_max_body_mb(
    setting: str, max_body_mb: Mapping[str, float] | str | None
) -> dict[str, int]:
    """Returns each kind of answer's size limit in bytes: the defaults, with those given."""
    fix = f'Give megabytes by kind, such as {{"fills": 64}}; the kinds: {", ".join(MAX_BODY_MB)}'
    given: object = max_body_mb or {}
    if isinstance(given, str):
        try:
            given = orjson.loads(given)
        except orjson.JSONDecodeError:
            given = None
    if not isinstance(given, Mapping):
        raise HyperTrackerConfigError(setting, max_body_mb, "it is not a table", fix)
    limits = {**MAX_BODY_MB}
    for kind, megabytes in given.items():
        number = _as_number(setting, megabytes, fix)
        if kind not in MAX_BODY_MB or number <= 0:
            raise HyperTrackerConfigError(
                setting, max_body_mb, f"{kind} = {megabytes!r} is not a kind and a size", fix
            )
        limits[kind] = number
    return {kind: int(megabytes * BYTES_PER_MB) for kind, megabytes in limits.items()}
