"""Constants of the report: what its charts and tables show, and what counts as a cascade."""

from typing import Any

import yaml  # type: ignore[import-untyped]

from hypertracker_source.commands.models import DBT_PACKAGE

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


def _dbt_vars() -> dict[str, Any]:
    """The dbt package's variables, with the values its dbt_project.yml gives them."""
    with (DBT_PACKAGE / "dbt_project.yml").open(encoding="utf-8") as project:
        variables: dict[str, Any] = yaml.safe_load(project)["vars"]
    return variables


_DBT_VARS = _dbt_vars()
CASCADE_MAX_GAP_SECONDS: int = _DBT_VARS["cascade_max_gap_seconds"]
CASCADE_MIN_WALLETS: int = _DBT_VARS["cascade_min_wallets"]
CASCADE_MIN_NOTIONAL_USD: float = _DBT_VARS["cascade_min_notional_usd"]
"""A cascade, as the dbt package's liquidation_cascades model finds it with its default vars: a
coin's fills each within CASCADE_MAX_GAP_SECONDS of the one before, of at least
CASCADE_MIN_WALLETS wallets, worth at least CASCADE_MIN_NOTIONAL_USD. Declared once, in the
package's dbt_project.yml, so that the report's cascades are the model's."""
