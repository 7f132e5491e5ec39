"""What the request handlers see of a simulator: they need not import it, so no import cycle."""

from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Protocol

from .config import SimulatorConfig
from .links import FileKey
from .state import DataState
from .traffic import Faults, RequestRecord


class SimulatorView(Protocol):
    """The simulator as its hosts use it: configuration, data, faults, links and the request log."""

    faults: Faults
    link_secret: bytes

    @property
    def config(self) -> SimulatorConfig:
        """How the simulator was made."""

    @property
    def state(self) -> DataState:
        """The current data version."""

    @property
    def version(self) -> int:
        """The current data version's number."""

    @property
    def last_update(self) -> datetime:
        """When the current data version was made."""

    @property
    def segments(self) -> list[dict[str, Any]]:
        """The 16 cohorts as the segments endpoint returns them."""

    def now_ms(self) -> int:
        """The API's clock in epoch milliseconds."""

    def heatmap_coin(self, coin: str) -> str | None:
        """The canonical spelling of a coin with a heatmap, or None."""

    def issue_link(self, key: FileKey) -> str:
        """A pre-signed link to a heatmap file."""

    def admit(self) -> int:
        """0 when the rate limit lets a request through, else seconds to wait."""

    def draw(self) -> float:
        """The next draw of the fault dice."""

    def draw_nonce(self) -> int:
        """A number no earlier draw gave."""

    def record(self, request: RequestRecord) -> None:
        """Adds a request to the log."""

    def request_counts(self) -> Counter[str]:
        """How many requests each endpoint received."""

    def reset_requests(self) -> None:
        """Empties the request log."""

    def advance_state(
        self, new_fills: int, late_fills: int, late_by: timedelta, spread: timedelta
    ) -> int:
        """Makes a new data version; returns the current version number."""

    def stall_indexing(self, ticking_status: bool = False) -> None:
        """Stops publishing fills until release_indexing."""

    def release_indexing(self) -> int:
        """Publishes the held-back fills in a new version; returns it."""
