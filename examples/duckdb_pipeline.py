"""Load HyperTracker's liquidation data into a local DuckDB file; run it on a schedule.

Settings resolve from dlt config: the key from .dlt/secrets.toml or SOURCES__HYPERTRACKER__API_KEY,
the rest (coins, heatmap_coins, segment_ids, ...) from .dlt/config.toml or SOURCES__HYPERTRACKER__*.
The file is hypertracker_data.duckdb in the working folder: not hypertracker.duckdb, because DuckDB
cannot tell a schema from a file of the same name. Each run reads only the fills that are new; a
first run reads the whole history, 250,000 fills a chunk (`max_fills_per_run`), chunk after chunk.
"""

from pathlib import Path

import dlt

from hypertracker_source import hypertracker, load_until_caught_up

DATABASE = Path("hypertracker_data.duckdb").resolve()
"""The file in the working folder, by its absolute path: dlt resolves a relative one against the
folder a pipeline of this name first ran in, which may be another project's."""

LIQUIDATED_BY_COIN = """
SELECT coin, COUNT(*) AS fills, ROUND(SUM(px * sz)) AS liquidated_usd
FROM liquidation_fills GROUP BY coin ORDER BY liquidated_usd DESC LIMIT 10
"""


def load() -> dlt.Pipeline:
    """Runs the source into DuckDB, prints the coins with the most value liquidated."""
    pipeline = dlt.pipeline(
        pipeline_name="hypertracker",
        destination=dlt.destinations.duckdb(str(DATABASE)),
        dataset_name="hypertracker",
        progress="log",
    )
    for load in load_until_caught_up(pipeline, hypertracker):
        print(load)
    print(pipeline.dataset()(LIQUIDATED_BY_COIN).arrow())
    return pipeline


if __name__ == "__main__":
    load()
