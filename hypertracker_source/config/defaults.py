"""Constants of the HyperTracker API and of the source: its defaults, and `follow`'s waits.

The report's constants are in hypertracker_source/report/settings.py.
"""

from datetime import timedelta
from typing import NamedTuple

from dlt.common.schema.typing import TLoaderMergeStrategy

API_BASE_URL = "https://ht-api.coinmarketman.com"

FILLS_RESOURCE = "liquidation_fills"
"""The fills resource, whose state holds every filter's marks and unfinished reads."""

DATA_VERSION_KEY = "data_version"
"""Where the source state keeps the API data version its fills were last read at."""

REJECTED_FILLS_TABLE = "liquidation_fills_rejected"
"""Where fills that break the data contract are set apart (docs/data-contract.md); made the first
time a fill is set apart."""
FILL_FIELD_MAX_BYTES = 65_536
"""The longest text a fill's field may hold: a thousand times the longest real one (`hash`, 66)."""
REJECTED_FIELD_SHOWN_BYTES = 1_000
"""How much of a field over FILL_FIELD_MAX_BYTES a rejected row keeps."""

HISTORY_START = "2025-07-27T00:00:00Z"
"""The first day of liquidation fill history the API holds."""

FILLS_MAX_PAGE_SIZE = 1000
RISK_PAGE_SIZE = 500

MAX_FILLS_PER_RUN = 250_000
"""Fills one run reads at most by default: a load package whose merge peaks near 0.5 GB, and about
250 requests, so that a scheduled run on a small worker ends in minutes whatever the history."""

FILLS_ROWS_PER_ITEM = 20_000
"""Fills per item handed to dlt, which does a fixed amount of work per item: ~20 pages, ~6 MB."""

WINDOW_MAX_MONTHS = 3
WINDOW_MAX_DAYS = 90
"""`end` may be at most 3 months after `start`; a window never exceeds either reading of that."""

DEFAULT_LAG = timedelta(hours=1)
"""How far below the newest fill read each run reads again: twice the API's slowest refresh."""
MAX_LAG = timedelta(days=3650)
"""The longest lag taken: longer than the API's whole history, so any longer re-reads no more."""

DEFAULT_HEATMAP_COINS = ("BTC", "ETH", "HYPE")

FILL_SIDES = ("A", "B")

MERGE_STRATEGIES: tuple[TLoaderMergeStrategy, ...] = ("delete-insert", "upsert")
"""Merge strategies that keep one row per key: SQL databases take the first, delta the second."""

EXPORT_LINK_ATTEMPTS = 3
"""How many pre-signed links to ask for before an expired-link error is final."""


class PlanLimits(NamedTuple):
    """What one of the API's plans allows: usage tokens (requests) a day or a month, and a rate."""

    daily_requests: int | None
    monthly_requests: int | None
    requests_per_minute: int | None


PLANS = {
    "free": PlanLimits(100, None, None),
    "pulse": PlanLimits(None, 50_000, 60),
    "surge": PlanLimits(None, 150_000, 100),
    "flow": PlanLimits(None, 400_000, 200),
    "stream": PlanLimits(None, 2_000_000, 500),
}
"""The API's plans, by the name the `plan` setting takes (shared/hypertracker-api.md)."""

REQUESTS_PER_MINUTE_PLANS = {
    name: limits.requests_per_minute for name, limits in PLANS.items() if limits.requests_per_minute
}
"""The rate limit of each paid plan, by name, for the `requests_per_minute` setting."""

FASTEST_REFRESH = timedelta(minutes=15)
"""The shortest time between two API data versions: what `follow`'s budget plans for."""

EXIT_PIPELINE_BUSY = 75
"""Another run holds the pipeline's lock: EX_TEMPFAIL of sysexits.h, try again later."""

EXIT_BUDGET_SPENT = 76
"""A run stopped because the request budget is spent: apart from EXIT_PIPELINE_BUSY, so that a
scheduler can tell "spent until it renews" from "another run is under way"."""

EXIT_BEHIND = 3
"""`hypertracker status`: the loaded data is further behind the API than allowed."""

STATUS_MAX_BEHIND = timedelta(hours=2)
"""How far the newest loaded data version may trail the API's before `status` exits EXIT_BEHIND."""

SEGMENT_NAMES = {
    16: "Shrimp",
    1: "Fish",
    2: "Dolphin",
    3: "Apex Predator",
    4: "Small Whale",
    5: "Whale",
    6: "Tidal Whale",
    7: "Leviathan",
    8: "Money Printer",
    9: "Smart Money",
    10: "Consistent Grinder",
    11: "Humble Earner",
    12: "Exit Liquidity",
    13: "Semi-Rekt",
    14: "Full Rekt",
    15: "Giga-Rekt",
}
"""The 16 wallet cohorts (segments) of the API, by id."""

FOLLOW_POLL_MARGIN = 30.0
"""Seconds `hypertracker follow` waits past the API's announced next update before it asks."""

FOLLOW_MIN_SLEEP = 60.0
"""The shortest wait between two status requests of `follow`, when the update is late or due."""

FOLLOW_MAX_SLEEP = 1800.0
"""The longest wait of `follow`: the API's slowest refresh, so a far-off nextUpdate is checked."""

FOLLOW_MAX_BACKOFF = 900.0
"""The longest wait of `follow` after failures in a row (it doubles from FOLLOW_MIN_SLEEP)."""

STOP_GRACE = 8.0
"""Seconds a command may take to end after SIGTERM or SIGINT before it ends at once: under the
10 s it promises, and far under systemd's 90 s. A load job the database is running is cut there."""

RUN_LOCK_WAIT = 0.0
"""Seconds a run waits for another run of its pipeline to end, by default: none, as `flock -n`
does under cron, since the run under way catches up anyway."""

DEFAULT_RESPONSE_DEADLINE = 120.0
"""Seconds one answer may take, from its connection to its body's last byte: a full fills page
(0.56 MB) arrives in 2 s on a fast link, in under a minute at 10 KB/s."""

BYTES_PER_MB = 1_000_000

MAX_BODY_MB = {
    "fills": 8.0,
    "risk": 8.0,
    "segments": 1.0,
    "status": 1.0,
    "export": 8.0,
    "heatmap_file": 8.0,
    "heatmap_inflated": 32.0,
}
"""The most megabytes each kind of answer's body may hold (a heatmap's also once inflated): far
above the real ones (a 1000-fill page 0.56 MB, 500 risk items 24 KB, the cohorts 2 KB, the status
130 bytes, an export link 0.3 KB, a 375-bin heatmap 59 KB or 8 KB gzipped), and low enough that a
run's peak memory stays well under 1 GB whatever an answer holds."""

MAX_FILE_REDIRECTS = 3
"""How many redirects a pre-signed file download follows, all on the link's own host."""

MAX_STALLED_PAGES = 3
"""Fills pages in a row that bring nothing new (the page before again, or none) before a read
stops: a loop of cursors costs at most this many requests more."""
