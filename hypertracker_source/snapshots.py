"""The API's data version, which stamps the heatmap and risk snapshots and saves their requests."""

import threading
from collections.abc import Callable, Iterator, MutableMapping
from typing import TypeVar

import pendulum
from dlt.common.time import ensure_pendulum_datetime

from hypertracker_source.client import HyperTrackerClient
from hypertracker_source.settings import STATUS_PATH

T = TypeVar("T")


class DataVersion:
    """The API's `lastUpdate`, asked at most once per source instance, when first needed."""

    def __init__(self, client: HyperTrackerClient) -> None:
        self._client = client
        self._lock = threading.Lock()

    @property
    def status(self) -> dict[str, str]:
        """The API's state status: lastUpdate, nextUpdate, nextUpdateThreshold."""
        with self._lock:
            if self._client.stats.status is None:
                self._client.stats.status = self._client.get_json(STATUS_PATH)
            return self._client.stats.status

    @property
    def last_update(self) -> pendulum.DateTime:
        """When the API last refreshed its data: the `snapshot_at` of every snapshot row."""
        return ensure_pendulum_datetime(self.status["lastUpdate"])


def new_snapshot(
    loaded_versions: MutableMapping[str, str],
    key: str,
    data_version: DataVersion,
    refresh: bool,
    fetch: Callable[[pendulum.DateTime], Iterator[T]],
) -> Iterator[T]:
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
