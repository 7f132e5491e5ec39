"""Load HyperTracker's liquidation data into PostgreSQL; run it on a schedule.

Install with `pip install -e ".[postgres]"` in the clone. Settings resolve from dlt config: the
key from .dlt/secrets.toml or SOURCES__HYPERTRACKER__API_KEY, the server from
[destination.postgres.credentials] or DESTINATION__POSTGRES__CREDENTIALS
(postgresql://user:password@host:5432/database). Each run reads only the fills that are new since
the last one; heatmaps and risk are fetched once per API data version.
"""

import dlt

from hypertracker_source import hypertracker


def load() -> dlt.Pipeline:
    """Runs the source into PostgreSQL and returns the pipeline."""
    pipeline = dlt.pipeline(
        pipeline_name="hypertracker_postgres",
        destination="postgres",
        dataset_name="hypertracker",
        progress="log",
    )
    load_info = pipeline.run(hypertracker())
    load_info.raise_on_failed_jobs()
    print(load_info)
    return pipeline


if __name__ == "__main__":
    load()
