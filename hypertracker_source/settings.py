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

TABLE_NAMES = ("liquidation_fills", "liquidation_heatmap", "liquidation_risk", "segments")
"""The tables the source loads."""

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

EXIT_BUDGET_SPENT = 75
"""A run stopped because the request budget is spent (sysexits' EX_TEMPFAIL: try again later)."""

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
