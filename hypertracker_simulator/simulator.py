"""The simulator object: data versions, both hosts, faults, and the ground truth for tests."""

import random
import secrets
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from types import TracebackType
from typing import Any

from .catalog import MARKETS, SEGMENT_IDS, SEGMENTS
from .config import SimulatorConfig
from .fills import FillMatch, FillTable
from .hostile import bad_fill_kind
from .links import FileKey, presigned_url
from .queries import datetime_of_ms, epoch_ms, epoch_ms_of_iso, wall_clock_ms
from .server import ApiHandler, FileHandler, HostServer, SlidingWindowLimit, serve_in_background
from .snapshots import heatmap_bins, risk_items
from .state import DataState, Indexer
from .traffic import Faults, RequestRecord

NEW_FILLS_SPREAD = timedelta(minutes=1)
EXPIRED_LINK_AGE = timedelta(minutes=1)


def instant_ms(moment: str | datetime) -> int:
    """An ISO 8601 string or aware datetime as epoch milliseconds."""
    if isinstance(moment, datetime):
        return epoch_ms(moment)
    value = epoch_ms_of_iso(moment)
    if value is None:
        raise ValueError(f"not an ISO 8601 instant: {moment!r}")
    return value


def spread_until(count: int, after_ms: int, until_ms: int) -> list[int]:
    """`count` non-decreasing times in (after_ms, until_ms], the last at until_ms."""
    gap = until_ms - after_ms - 1
    return [after_ms + 1 + gap * (n + 1) // count for n in range(count)]


class Simulator:
    """A local HyperTracker API: a real HTTP API host and a separate "S3" file host.

    Made from a SimulatorConfig, or from its fields as keywords: `Simulator(seed=3, fills=400)`.
    """

    def __init__(self, config: SimulatorConfig | None = None, **settings: Any) -> None:
        self.config = replace(config or SimulatorConfig(), **settings)
        config = self.config
        self.indexer = Indexer()
        self.link_secret = secrets.token_bytes(32)
        self.faults = Faults(latency=config.latency)
        self.requests: list[RequestRecord] = []
        coins = config.heatmap_coins or [market.coin for market in MARKETS]
        self._heatmap_coins = {coin.casefold(): coin for coin in coins}
        self._limit = (
            SlidingWindowLimit(config.rate_limit_per_minute, config.rate_limit_window)
            if config.rate_limit_per_minute
            else None
        )
        self._fault_dice = random.Random(config.seed)
        self._nonces = 0
        self._lock = threading.Lock()
        self._advance_lock = threading.Lock()
        self._servers: list[HostServer] = []
        created_ms = self.now_ms()
        first_ms = instant_ms(config.history_start)
        table = FillTable.generate(config.seed, config.fills, first_ms, created_ms)
        self.state = DataState(1, datetime_of_ms(created_ms), table)

    def start(self, port: int | None = None, file_port: int | None = None) -> "Simulator":
        """Starts serving the API and file hosts on 127.0.0.1, on the config's ports unless given
        (0: any free port)."""
        api_port = self.config.port if port is None else port
        files_port = self.config.file_port if file_port is None else file_port
        self._servers = [
            HostServer(("127.0.0.1", api_port), ApiHandler, self),
            HostServer(("127.0.0.1", files_port), FileHandler, self),
        ]
        for server in self._servers:
            serve_in_background(server)
        return self

    def stop(self) -> None:
        """Stops both hosts and cuts their open connections."""
        for server in self._servers:
            server.shutdown()
            server.close_connections()
            server.server_close()
        self._servers = []

    def __enter__(self) -> "Simulator":
        """The simulator for a with block, started unless it already is."""
        return self if self._servers else self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stops the simulator at the end of a with block."""
        self.stop()

    @property
    def url(self) -> str:
        """The API base URL (paths under /api/external)."""
        return f"http://127.0.0.1:{self._port(0)}"

    @property
    def file_url(self) -> str:
        """The file host's base URL, under another host name so clients drop credentials."""
        return f"http://localhost:{self._port(1)}"

    def _port(self, host: int) -> int:
        """The port a started host listens on."""
        if not self._servers:
            raise RuntimeError("the simulator is not started")
        return self._servers[host].server_address[1]

    @property
    def version(self) -> int:
        """The current data version, from 1."""
        return self.state.version

    @property
    def last_update(self) -> datetime:
        """When the current data version was made (UTC, whole milliseconds)."""
        return self.state.last_update

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The 16 cohorts as the segments endpoint returns them."""
        return [{**segment, "criteria": dict(segment["criteria"])} for segment in SEGMENTS]

    def now_ms(self) -> int:
        """The API's clock in epoch milliseconds: the wall clock moved by `clock_offset`."""
        return wall_clock_ms() + self.config.clock_offset // timedelta(milliseconds=1)

    def advance_state(
        self,
        new_fills: int = 0,
        late_fills: int = 0,
        late_by: timedelta = timedelta(minutes=30),
        spread: timedelta = NEW_FILLS_SPREAD,
    ) -> int:
        """Makes a new data version with fresh fills (spread over the time before it) and late ones.

        While the indexer is stalled the fills wait unpublished, and the version moves only if
        the status ticks; returns the current version number.
        """
        with self._advance_lock:
            state = self.state
            newest_ms = max(
                epoch_ms(state.last_update), state.table.last_time() or 0, *self.indexer.unpublished
            )
            while (update_ms := self.now_ms()) <= newest_ms:
                time.sleep(0.001)
            after_ms = max(newest_ms, update_ms - spread // timedelta(milliseconds=1))
            late_ms = update_ms - late_by // timedelta(milliseconds=1)
            times = spread_until(new_fills, after_ms, update_ms)
            times += [late_ms - n for n in range(late_fills)]
            if self.indexer.stalled:
                self.indexer.unpublished += times
                if self.indexer.ticking_status:
                    return self._publish([], update_ms)
                return state.version
            return self._publish(times, update_ms)

    def stall_indexing(self, ticking_status: bool = False) -> None:
        """Stops publishing fills until `release_indexing`; `lastUpdate` ticks on if asked."""
        with self._advance_lock:
            self.indexer = Indexer(stalled=True, ticking_status=ticking_status)

    def release_indexing(self) -> int:
        """Publishes every fill the stall held back, at once, in a new version; returns it."""
        with self._advance_lock:
            held_back, self.indexer = self.indexer.unpublished, Indexer()
            newest_ms = max(epoch_ms(self.state.last_update), *held_back)
            while (update_ms := self.now_ms()) <= newest_ms:
                time.sleep(0.001)
            return self._publish(held_back, update_ms)

    def _publish(self, times: list[int], update_ms: int) -> int:
        """Makes the version that adds fills at these times, made at update_ms; returns it."""
        state = self.state
        table = state.table.with_fills(times) if times else state.table
        self.state = DataState(state.version + 1, datetime_of_ms(update_ms), table)
        return state.version + 1

    def expected_fills(
        self, coin: str | None = None, address: str | None = None, side: str | None = None
    ) -> list[dict[str, Any]]:
        """Every visible fill matching the filters, as the API renders it, oldest first."""
        table = self.state.table
        match = table.match_for(coin, address, side)
        if match is None:
            return []
        positions, _ = table.select(match, (None, None), None, True, len(table))
        return [table.row(position) for position in positions]

    def bad_fill_kinds(self) -> list[str | None]:
        """How each visible fill is broken under the hostile-data fault (None: sound), oldest
        first, in the order of `expected_fills()`."""
        table, faults = self.state.table, self.faults
        positions, _ = table.select(FillMatch(), (None, None), None, True, len(table))
        seed, rate, kinds = self.config.seed, faults.bad_fill_rate, faults.bad_fill_kinds
        return [bad_fill_kind(seed, table.ids[p], rate, kinds) for p in positions]

    def expected_heatmap(self, coin: str) -> list[dict[str, Any]]:
        """The heatmap bins of a coin in the current version."""
        canonical = self.heatmap_coin(coin)
        if canonical is None:
            raise KeyError(coin)
        return heatmap_bins(self.config.seed, canonical, self.version)

    def expected_risk(self, segment_id: int) -> list[dict[str, Any]]:
        """A cohort's liquidation-risk items in the current version, in API order."""
        if segment_id not in SEGMENT_IDS:
            raise KeyError(segment_id)
        items = risk_items(
            self.config.seed,
            segment_id,
            self.version,
            self.config.risk_coins,
            self.config.extra_coins or (),
        )
        return [dict(item) for item in items]

    def heatmap_coin(self, coin: str) -> str | None:
        """The canonical spelling of a coin with a heatmap, matched without case, or None."""
        return self._heatmap_coins.get(coin.casefold())

    def issue_link(self, key: FileKey) -> str:
        """A pre-signed link to a heatmap file; already expired while expire_next_links lasts."""
        if self.faults.export_link:
            return self.faults.export_link
        with self._lock:
            expired = self.faults.expire_next_links > 0
            if expired:
                self.faults.expire_next_links -= 1
        ttl = int(self.config.link_ttl)
        signed_at = datetime.now(timezone.utc).replace(microsecond=0)
        if expired:
            signed_at -= timedelta(seconds=ttl) + EXPIRED_LINK_AGE
        return presigned_url(self.file_url, self.link_secret, key, signed_at, ttl)

    def admit(self) -> int:
        """0 when the rate limit lets an API request through, else seconds to wait."""
        return self._limit.admit() if self._limit else 0

    def draw(self) -> float:
        """The next uniform draw of the seeded fault dice."""
        with self._lock:
            return self._fault_dice.random()

    def draw_nonce(self) -> int:
        """A number no earlier draw gave, to make a cursor new."""
        with self._lock:
            self._nonces += 1
            return self._nonces

    def record(self, request: RequestRecord) -> None:
        """Adds a request to the log."""
        with self._lock:
            self.requests.append(request)

    def request_counts(self) -> Counter[str]:
        """How many requests each endpoint received, faulted ones included."""
        with self._lock:
            return Counter(request.endpoint for request in self.requests)

    def reset_requests(self) -> None:
        """Empties the request log."""
        with self._lock:
            self.requests.clear()
