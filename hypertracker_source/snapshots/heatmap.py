"""Liquidation heatmaps: the export endpoint's pre-signed link, followed at once to its file."""

from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin

import orjson
import pendulum
import pyarrow as pa
import pyarrow.compute as pc

from hypertracker_source.api.answers import gunzip_bounded
from hypertracker_source.api.client import ApiAnswer, HyperTrackerClient
from hypertracker_source.api.endpoints import HEATMAP_EXPORT
from hypertracker_source.api.errors import check_status
from hypertracker_source.api.files import HEATMAP_FILE
from hypertracker_source.config.defaults import EXPORT_LINK_ATTEMPTS
from hypertracker_source.exceptions import HyperTrackerApiError, HyperTrackerConfigError
from hypertracker_source.schema import HEATMAP_FIELDS, SNAPSHOT_AT, TIMESTAMP, rows_to_arrow

GZIP_MAGIC = b"\x1f\x8b"


def heatmap_file(client: HyperTrackerClient, coin: str) -> dict[str, Any]:
    """Returns a coin's heatmap file, asking for a fresh link while the last one had expired."""
    for _ in range(EXPORT_LINK_ATTEMPTS):
        answer = client.get(HEATMAP_EXPORT, path_args={"coin": coin})
        if answer.response.status_code == 404:
            raise HyperTrackerConfigError(
                "heatmap_coins",
                coin,
                "the API has no liquidation heatmap for this coin (HTTP 404)",
                "Use a perp the API lists, such as BTC, ETH, HYPE or xyz:MSTR",
            )
        check_status(answer.response, answer.path, client.attempts)
        link = download_link(answer)
        if link is None:
            if answer.body is not None:
                return answer.body
            return decode_file(client, answer.response.content)
        download = client.download(link)
        if download.status_code != 403:
            check_status(download, HEATMAP_FILE, client.attempts)
            return decode_file(client, download.content)
    raise HyperTrackerApiError(
        f"The heatmap link of {coin} had expired each of {EXPORT_LINK_ATTEMPTS} times it was "
        "followed; check this machine's clock and its latency to the file host, then rerun",
        403,
    )


def download_link(answer: ApiAnswer) -> str | None:
    """Returns the pre-signed URL of an export answer, or None when the answer is the file."""
    if answer.response.is_redirect:
        return urljoin(answer.response.url, answer.response.headers["Location"])
    if isinstance(answer.body, dict) and "downloadUrl" in answer.body:
        return answer.body["downloadUrl"]
    return None


def decode_file(client: HyperTrackerClient, content: bytes) -> dict[str, Any]:
    """Returns a heatmap file's JSON, gunzipping it, never past its limit, when served gzip
    without Content-Encoding."""
    if content[:2] == GZIP_MAGIC:
        content = gunzip_bounded(
            content,
            client.body_limit("heatmap_inflated"),
            "HyperTracker's heatmap file, once inflated,",
        )
    return orjson.loads(content)


def heatmap_tables(
    client: HyperTrackerClient, coin: str, snapshot_at: pendulum.DateTime
) -> Iterator[pa.Table]:
    """Yields a coin's heatmap, downloaded now, stamped with the data version."""
    yield heatmap_table(coin, heatmap_file(client, coin), snapshot_at)


def heatmap_table(coin: str, file: dict[str, Any], snapshot_at: pendulum.DateTime) -> pa.Table:
    """Converts a heatmap file to one row per price bin, stamped with the data version."""
    table = rows_to_arrow(
        file.get("heatmap") or [],
        HEATMAP_FIELDS,
        **{SNAPSHOT_AT.column: pa.scalar(snapshot_at, TIMESTAMP)},
    )
    file_coin = file.get("coin") or coin
    index = table.schema.get_field_index("coin")
    return table.set_column(index, "coin", pc.fill_null(table["coin"], file_coin))
