"""Reading query parameters the way the API's NestJS validation does, and its opaque cursor."""

import base64
import binascii
import calendar
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import orjson

FILLS_MAX_LIMIT = 1000
FILLS_DEFAULT_LIMIT = 500
RISK_MAX_LIMIT = 500
RISK_DEFAULT_LIMIT = 50
WINDOW_MONTHS = 3
SIDES = ("A", "B")

NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
ISO_8601 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"([zZ]|[+-]\d{2}(?::?\d{2})?)?)?"
)


class ApiError(Exception):
    """A request the API refuses, with its status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class FillQuery:
    """A validated fills request; times are epoch milliseconds, both window ends inclusive."""

    limit: int
    coin: str | None
    address: str | None
    side: str | None
    start_ms: int | None
    end_ms: int | None
    after: tuple[int, int] | None


def js_number(text: str) -> float | None:
    """The number JavaScript's Number() makes of a decimal text (blank is 0), or None for NaN."""
    stripped = text.strip()
    if not stripped:
        return 0.0
    return float(stripped) if NUMBER.fullmatch(stripped) else None


def bounded_integer(params: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    """An integer query parameter within [low, high], as class-validator checks it."""
    text = params.get(name)
    if text is None:
        return default
    number = js_number(text)
    if number is None or not number.is_integer():
        raise ApiError(400, f"{name} must be an integer number")
    if number < low:
        raise ApiError(400, f"{name} must not be less than {low}")
    if number > high:
        raise ApiError(400, f"{name} must not be greater than {high}")
    return int(number)


def epoch_ms_of_iso(text: str) -> int | None:
    """The instant an ISO 8601 date string names (UTC when it names no zone), or None."""
    found = ISO_8601.fullmatch(text)
    if found is None:
        return None
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            tzinfo=timezone.utc,
        )
    except ValueError:
        return None
    millis = int((fraction or "0")[:3].ljust(3, "0"))
    return epoch_ms(moment) + millis - zone_offset_ms(zone)


def zone_offset_ms(zone: str | None) -> int:
    """A zone designator's offset from UTC in milliseconds (none and Z are UTC)."""
    if zone is None or zone in "zZ":
        return 0
    digits = zone[1:].replace(":", "")
    minutes = int(digits[:2]) * 60 + int(digits[2:] or 0)
    return (-1 if zone[0] == "-" else 1) * minutes * 60_000


def wall_clock_ms() -> int:
    """This machine's time in epoch milliseconds."""
    return time.time_ns() // 1_000_000


def epoch_ms(moment: datetime) -> int:
    """An aware datetime as epoch milliseconds."""
    return (moment - datetime(1970, 1, 1, tzinfo=timezone.utc)) // timedelta(milliseconds=1)


def datetime_of_ms(value: int) -> datetime:
    """Epoch milliseconds as an aware UTC datetime."""
    return datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=value)


def add_months(value_ms: int, months: int) -> int:
    """An instant moved by calendar months, the day clamped to the target month's end."""
    moment = datetime_of_ms(value_ms)
    year, month_index = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month_index + 1)[1])
    return epoch_ms(moment.replace(year=year, month=month_index + 1, day=day))


def iso_parameter(params: dict[str, str], name: str) -> int | None:
    """An optional ISO 8601 query parameter as epoch milliseconds."""
    text = params.get(name)
    if text is None:
        return None
    value = epoch_ms_of_iso(text)
    if value is None:
        raise ApiError(400, f"{name} must be a valid ISO 8601 date string")
    return value


def encode_cursor(time_ms: int, fill_id: int, generation: int = 0, nonce: int = 0) -> str:
    """The opaque nextCursor for the row with this (time, id) key, in a cursor generation; a
    nonce makes it new even for the same row."""
    payload: dict[str, object] = {"id": str(fill_id), "time": time_ms}
    payload.update({name: value for name, value in (("g", generation), ("n", nonce)) if value})
    return base64.urlsafe_b64encode(orjson.dumps(payload)).decode()


def decode_cursor(text: str, generation: int = 0) -> tuple[int, int]:
    """The (time, id) key a nextCursor of this generation stands for."""
    try:
        payload = orjson.loads(base64.urlsafe_b64decode(text.encode()))
    except (binascii.Error, ValueError) as error:
        raise ApiError(400, "nextCursor is invalid") from error
    if not isinstance(payload, dict):
        raise ApiError(400, "nextCursor is invalid")
    fill_id, time_ms = payload.get("id"), payload.get("time")
    if not (isinstance(fill_id, str) and fill_id.isdigit() and type(time_ms) is int):
        raise ApiError(400, "nextCursor is invalid")
    if payload.get("g", 0) != generation:
        raise ApiError(400, "nextCursor is invalid")
    return time_ms, int(fill_id)


def parse_fill_query(params: dict[str, str], now_ms: int, cursor_generation: int = 0) -> FillQuery:
    """A fills request's parameters, validated; `cursor` and unknown names are ignored.

    `end` defaults to 3 months after `start`, capped at now: a `start` in the API's future
    leaves no window, and is refused like an `end` before `start`.
    """
    limit = bounded_integer(params, "limit", FILLS_DEFAULT_LIMIT, 1, FILLS_MAX_LIMIT)
    side = params.get("side")
    if side is not None and side not in SIDES:
        raise ApiError(400, "side must be one of the following values: A, B")
    start_ms, end_ms = iso_parameter(params, "start"), iso_parameter(params, "end")
    if end_ms is not None and start_ms is None:
        raise ApiError(400, "end can only be provided together with start")
    if start_ms is not None:
        latest_end = add_months(start_ms, WINDOW_MONTHS)
        end_ms = min(latest_end, now_ms) if end_ms is None else end_ms
        if end_ms <= start_ms:
            raise ApiError(400, "end must be later than start")
        if end_ms > latest_end:
            raise ApiError(400, "end must be within 3 months of start")
    cursor = params.get("nextCursor")
    return FillQuery(
        limit=limit,
        coin=params.get("coin") or None,
        address=params.get("address") or None,
        side=side,
        start_ms=start_ms,
        end_ms=end_ms,
        after=None if cursor is None else decode_cursor(cursor, cursor_generation),
    )


def parse_risk_page(params: dict[str, str]) -> tuple[int, int]:
    """The offset and limit of a liquidation-risk request, validated."""
    offset = bounded_integer(params, "offset", 0, 0, 2**31 - 1)
    return offset, bounded_integer(params, "limit", RISK_DEFAULT_LIMIT, 1, RISK_MAX_LIMIT)
