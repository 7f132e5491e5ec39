"""Constants of the report: what its charts and tables show, and what counts as a cascade."""

REPORT_HEATMAP_VALUE_SHARE = 0.99
"""The share of a coin's liquidation value its heatmap chart shows: the near-empty tails are cut."""

REPORT_RISK_COINS = 12
"""How many coins, most value at risk first, the cohort risk chart shows."""

REPORT_FILL_COINS = 5
"""How many coins, most value liquidated first, get their own liquidations-over-time panel."""

REPORT_MAX_TIME_BUCKETS = 500
"""The most bars the liquidations-over-time chart draws: the bucket widens (hour to month)."""

REPORT_SNAPSHOT_HOURS = 48
REPORT_MAX_SNAPSHOTS = 48
"""The report's heatmap slider steps through the last 48 hours of snapshots, thinned evenly to at
most 48 steps (the API makes about 72 a day)."""

REPORT_CASCADE_ROWS = 10
"""How many cascades, largest first, the report's table lists."""

CASCADE_MAX_GAP_SECONDS = 60
CASCADE_MIN_WALLETS = 3
CASCADE_MIN_NOTIONAL_USD = 0
"""A cascade: a coin's fills each within 60 s of the one before, of at least 3 wallets (the dbt
package's defaults of the same name)."""
