"""Wallet cohorts (segments) and the liquidation risk of each, paged by offset."""

from collections.abc import Iterator
from typing import Any

import pendulum
import pyarrow as pa

from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import RISK, SEGMENTS
from hypertracker_source.config.defaults import RISK_PAGE_SIZE, SEGMENT_NAMES
from hypertracker_source.schema import (
    RISK_FIELDS,
    SEGMENT_ID,
    SNAPSHOT_AT,
    TIMESTAMP,
    rows_to_arrow,
)


def risk_resource_name(segment_id: int) -> str:
    """Returns the name of a segment's risk resource, e.g. liquidation_risk_smart_money."""
    slug = "".join(char if char.isalnum() else "_" for char in SEGMENT_NAMES[segment_id].lower())
    return f"liquidation_risk_{slug.strip('_')}"


def risk_items(client: HyperTrackerClient, segment_id: int) -> Iterator[list[dict[str, Any]]]:
    """Yields every page of a segment's risk list, paging by offset until `totalCount`."""
    offset = 0
    while True:
        page = client.get_json(
            RISK, {"offset": offset, "limit": RISK_PAGE_SIZE}, {"segment_id": segment_id}
        )
        items = page.get("items") or []
        yield items
        offset += len(items)
        if not items or offset >= int(page.get("totalCount") or 0):
            return


def risk_tables(
    client: HyperTrackerClient, segment_id: int, snapshot_at: pendulum.DateTime
) -> Iterator[pa.Table]:
    """Yields a segment's risk by coin, once per coin, stamped with its segment and data version.

    A coin can reach two pages when the API refreshes between them and the ranking shifts; it is
    kept once, so that no load holds a key twice.
    """
    stamps = {
        SEGMENT_ID.column: pa.scalar(segment_id, SEGMENT_ID.arrow_type),
        SNAPSHOT_AT.column: pa.scalar(snapshot_at, TIMESTAMP),
    }
    seen: set[str | None] = set()
    for items in risk_items(client, segment_id):
        new_items = [item for item in items if item.get("coin") not in seen]
        seen.update(item.get("coin") for item in new_items)
        if new_items:
            yield rows_to_arrow(new_items, RISK_FIELDS, **stamps)


def segment_rows(client: HyperTrackerClient) -> list[dict[str, Any]]:
    """Returns the cohorts the API lists."""
    answer = client.get_json(SEGMENTS)
    if isinstance(answer, dict):
        answer = next((value for value in answer.values() if isinstance(value, list)), [])
    return answer
