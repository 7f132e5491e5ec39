"""Snapshot tables (heatmaps, cohort risk): each key fetched once per API data version."""

import threading
from collections.abc import Callable, Iterator, MutableMapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import dlt
import pendulum
import pyarrow as pa
from dlt.common.schema.typing import TTableSchemaColumns
from dlt.common.time import ensure_pendulum_datetime
from dlt.sources import DltResource

from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import STATUS

SnapshotKey = str | int
"""What a snapshot table is fetched by: a coin for heatmaps, a segment id for risk."""


class DataVersion:
    """The API's state status, asked at most once per source instance, when first needed.

    A status the caller already holds (`hypertracker follow` found the new version with it) is
    used as is; one asked for is also reported in the client's run stats.
    """

    def __init__(self, client: HyperTrackerClient, known: dict[str, str] | None = None) -> None:
        self._client = client
        self._status = known
        self._lock = threading.Lock()

    @property
    def status(self) -> dict[str, str]:
        """The API's state status: lastUpdate, nextUpdate, nextUpdateThreshold."""
        with self._lock:
            if self._status is None:
                self._status = self._client.get_json(STATUS)
                self._client.stats.status = self._status
            return self._status

    @property
    def known(self) -> dict[str, str] | None:
        """The status if it was asked (or given) already, without asking it."""
        return self._status

    @property
    def last_update(self) -> pendulum.DateTime:
        """When the API last refreshed its data: the `snapshot_at` of every snapshot row."""
        return ensure_pendulum_datetime(self.status["lastUpdate"])


class SnapshotTable(NamedTuple):
    """A resource of a table the API rebuilds at each data version: its names and hints, and how
    to fetch one key's rows stamped with the version."""

    name: str
    keys_name: str
    table_name: str
    primary_key: Sequence[str]
    columns: TTableSchemaColumns
    fetch: Callable[[Any, pendulum.DateTime], Iterator[pa.Table]]


def snapshot_resource(
    table: SnapshotTable,
    keys: Sequence[SnapshotKey],
    data_version: DataVersion,
    refresh: bool,
) -> DltResource:
    """The table's snapshots of these keys, fetched side by side, each once per data version."""

    def snapshots(key: SnapshotKey) -> Iterator[pa.Table]:
        """One key's snapshot, unless its resource state shows this version loaded."""
        loaded = dlt.current.resource_state().setdefault("loaded_versions", {})
        yield from new_snapshot(loaded, str(key), data_version, refresh, partial(table.fetch, key))

    transformer = dlt.transformer(
        snapshots,
        name=table.name,
        table_name=table.table_name,
        primary_key=table.primary_key,
        columns=table.columns,
        parallelized=True,
    )
    return (
        dlt.resource(snapshot_keys, name=f"{table.name}_keys", selected=False)(keys) | transformer
    )


def snapshot_keys(keys: Sequence[SnapshotKey]) -> Iterator[SnapshotKey]:
    """The keys of a snapshot table, one at a time, for its transformer."""
    yield from keys


def new_snapshot(
    loaded_versions: MutableMapping[str, str],
    key: str,
    data_version: DataVersion,
    refresh: bool,
    fetch: Callable[[pendulum.DateTime], Iterator[pa.Table]],
) -> Iterator[pa.Table]:
    """Yields a snapshot fetched for the current data version, unless that version already loaded.

    The version is recorded after the last item, in resource state that dlt commits only with a
    successful extract: a failed run refetches. `refresh` fetches even an already loaded version.
    """
    snapshot_at = data_version.last_update
    version = snapshot_at.isoformat()
    if loaded_versions.get(key) == version and not refresh:
        return
    yield from fetch(snapshot_at)
    loaded_versions[key] = version
