"""What the API host and the file host answer, request by request, without the transport.

Of the faults, only those inside a payload apply here: a fills field retyped or added, and
hostile fills (hostile.py). Errors,
resets, rate limits, cut answers and delays are the transport's (server.py).
"""

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import unquote

import orjson

from .catalog import SEGMENT_IDS
from .fills import iso_ms
from .hostile import bad_fill_kind, break_fill, gzip_bomb, huge_value
from .links import FileKey, S3Error, file_key, refusal
from .queries import (
    ApiError,
    encode_cursor,
    epoch_ms,
    parse_fill_query,
    parse_risk_page,
)
from .snapshots import heatmap_file, risk_items
from .view import SimulatorView

JSON = "application/json; charset=utf-8"
STATUS_AFTER = timedelta(minutes=20)
STATUS_THRESHOLD_AFTER = timedelta(minutes=30)
ERROR_NAMES = {400: "Bad Request", 404: "Not Found"}
NO_SUCH_KEY = S3Error(404, "NoSuchKey", "The specified key does not exist.")

ROUTES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("fills", re.compile(r"/api/external/fills/liquidation")),
    ("export", re.compile(r"/api/external/exports/coins/(?P<coin>[^/]+)/liquidation-heatmap")),
    ("risk", re.compile(r"/api/external/(?P<segment>[^/]+)/assets/liquidation-risk")),
    ("segments", re.compile(r"/api/external/segments")),
    ("status", re.compile(r"/api/external/hypertracker/state/status")),
)


@dataclass(frozen=True)
class Response:
    """A complete HTTP answer."""

    status: int
    body: bytes
    content_type: str = JSON
    headers: tuple[tuple[str, str], ...] = ()


def json_response(payload: Any, status: int = 200) -> Response:
    """A JSON answer."""
    return Response(status, orjson.dumps(payload))


def error_response(status: int, message: str) -> Response:
    """A NestJS-style error answer."""
    payload: dict[str, Any] = {"statusCode": status, "message": message}
    if status in ERROR_NAMES:
        payload["error"] = ERROR_NAMES[status]
    return json_response(payload, status)


def route(path: str) -> tuple[str, dict[str, str]]:
    """The endpoint a path names (or "unknown") and its path parameters."""
    for endpoint, pattern in ROUTES:
        found = pattern.fullmatch(path)
        if found:
            return endpoint, {name: unquote(value) for name, value in found.groupdict().items()}
    return "unknown", {}


def answer_api(
    sim: SimulatorView, method: str, path: str, params: dict[str, str], authorization: str | None
) -> Response:
    """The API host's answer to one request."""
    endpoint, path_params = route(path)
    if method != "GET" or endpoint == "unknown":
        return error_response(404, f"Cannot {method} {path}")
    if authorization != f"Bearer {sim.config.api_key}":
        return json_response({"statusCode": 401, "message": "Unauthorized"}, 401)
    try:
        return ENDPOINTS[endpoint](sim, params, **path_params)
    except ApiError as error:
        return error_response(error.status, error.message)


def fills(sim: SimulatorView, params: dict[str, str]) -> Response:
    """A page of liquidation fills."""
    faults = sim.faults
    query = parse_fill_query(params, sim.now_ms(), faults.cursor_generation)
    table = sim.state.table
    match = table.match_for(query.coin, query.address, query.side)
    if match is None:
        return json_response({"fills": [], "nextCursor": None})
    ascending = sim.config.fill_order == "notes" and query.start_ms is not None
    window = (query.start_ms, query.end_ms)
    after = None if faults.loop_cursors else query.after
    positions, more = table.select(match, window, after, ascending, query.limit)
    nonce = sim.draw_nonce() if faults.loop_cursors else 0
    last_key = table.key(positions[-1]) if more else None
    cursor = encode_cursor(*last_key, faults.cursor_generation, nonce) if last_key else None
    rows = [served_fill(sim, p) for p in positions]
    if faults.huge_field_mb and rows:
        rows[0]["hash"] = huge_value(faults.huge_field_mb)
    retyped = sim.faults.string_field
    for row in rows:
        if retyped in row:
            row[retyped] = str(row[retyped])
    added = sim.faults.new_field
    for number, row in enumerate(rows if added else ()):
        row[added] = {"position": number} if number % 2 else number
    return json_response({"fills": rows, "nextCursor": cursor})


def served_fill(sim: SimulatorView, position: int) -> dict[str, Any]:
    """The fill at a position as the API serves it: broken if the hostile-data fault says so."""
    table, faults = sim.state.table, sim.faults
    row = table.row(position)
    kind = bad_fill_kind(
        sim.config.seed, table.ids[position], faults.bad_fill_rate, faults.bad_fill_kinds
    )
    return row if kind is None else break_fill(row, kind, faults.oversized_field_bytes)


def export(sim: SimulatorView, params: dict[str, str], coin: str) -> Response:
    """A coin's heatmap export: a redirect, a download URL or the file, per export mode."""
    canonical = sim.heatmap_coin(coin)
    if canonical is None:
        return error_response(404, f"{coin.upper()} not found")
    key = FileKey(canonical, sim.version, sim.config.gzip_files)
    if sim.config.export_mode == "inline":
        return file_response(sim, key)
    url = sim.issue_link(key)
    if sim.config.export_mode == "download_url":
        return json_response({"downloadUrl": url})
    body = f"Found. Redirecting to {url}".encode()
    return Response(302, body, "text/plain; charset=utf-8", (("Location", url),))


def risk(sim: SimulatorView, params: dict[str, str], segment: str) -> Response:
    """A page of a cohort's liquidation risk by coin."""
    if not (segment.isdigit() and int(segment) in SEGMENT_IDS):
        raise ApiError(404, f"Segment {segment} not found")
    offset, limit = parse_risk_page(params)
    items = risk_items(
        sim.config.seed,
        int(segment),
        sim.version,
        sim.config.risk_coins,
        sim.config.extra_coins or (),
    )
    return json_response({"totalCount": len(items), "items": items[offset : offset + limit]})


def segments(sim: SimulatorView, params: dict[str, str]) -> Response:
    """The 16 cohorts."""
    return json_response(sim.segments)


def status(sim: SimulatorView, params: dict[str, str]) -> Response:
    """When the data were last updated and when the next update is due."""
    updated = sim.last_update
    return json_response(
        {
            "lastUpdate": iso_ms(epoch_ms(updated)),
            "nextUpdate": iso_ms(epoch_ms(updated + STATUS_AFTER)),
            "nextUpdateThreshold": iso_ms(epoch_ms(updated + STATUS_THRESHOLD_AFTER)),
        }
    )


ENDPOINTS: dict[str, Callable[..., Response]] = {
    "fills": fills,
    "export": export,
    "risk": risk,
    "segments": segments,
    "status": status,
}


def file_response(sim: SimulatorView, key: FileKey) -> Response:
    """A heatmap file as the file host serves it: JSON, or gzip bytes without Content-Encoding."""
    content_type = "application/gzip" if key.gzipped else "application/json"
    if sim.faults.gzip_bomb_mb:
        return Response(200, gzip_bomb(sim.faults.gzip_bomb_mb), "application/gzip")
    return Response(
        200, heatmap_file(sim.config.seed, key.coin, key.version, key.gzipped), content_type
    )


def answer_file(
    sim: SimulatorView, path: str, params: dict[str, str], authorization: str | None
) -> Response:
    """The file host's answer to a request for a pre-signed object."""
    now = datetime.now(timezone.utc)
    if sim.faults.file_redirect:
        redirect = sim.faults.file_redirect
        return Response(302, b"Found", "text/plain", (("Location", redirect),))
    error = refusal(sim.link_secret, path, params, authorization is not None, now)
    key = file_key(path)
    if error is None and key is not None:
        return file_response(sim, key)
    error = error or NO_SUCH_KEY
    return Response(error.status, error.xml(), "application/xml")
