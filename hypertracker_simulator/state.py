"""What a simulator holds between requests: its current data version and its fills indexer."""

from dataclasses import dataclass, field
from datetime import datetime

from .fills import FillTable


@dataclass(frozen=True)
class DataState:
    """One data version: its number, when it was made, and the fills visible in it."""

    version: int
    last_update: datetime
    table: FillTable


@dataclass
class Indexer:
    """The fills indexer: while stalled, fills that happen wait unpublished, then all at once.

    `ticking_status` keeps `lastUpdate` moving with each state update during a stall (the API's
    notes do not say whether `lastUpdate` promises that every earlier fill is visible).
    """

    stalled: bool = False
    ticking_status: bool = False
    unpublished: list[int] = field(default_factory=list)
