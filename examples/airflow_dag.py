"""An Airflow DAG that loads HyperTracker every 30 minutes, built with dlt's PipelineTasksGroup.

Put this file in the dags folder and install the source where Airflow runs (in its clone:
`pip install -e ".[postgres]"`).
Settings resolve from dlt config: PipelineTasksGroup reads .dlt/config.toml and secrets.toml from
the dags folder, and environment variables work everywhere: SOURCES__HYPERTRACKER__API_KEY and
DESTINATION__POSTGRES__CREDENTIALS (postgresql://user:password@host:5432/database). Each run reads
the fills that are new since the last one and the heatmaps and risk of a new API data version;
the incremental marks live in the destination, so the workers keep no local state.

A run reads at most `max_fills_per_run` fills (250,000 by default, about 250 requests and half a
GB of memory), so no run outgrows a small worker or its task timeout: a first load of a long
history catches up over the first scheduled runs, each landing its chunk with its marks. To load
everything at once first, run `hypertracker load --destination postgres` once before enabling it.
"""

import dlt
import pendulum
from airflow.sdk import dag
from dlt.helpers.airflow_helper import PipelineTasksGroup

from hypertracker_source import hypertracker


@dag(
    schedule="*/30 * * * *",
    start_date=pendulum.datetime(2025, 7, 27, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["hypertracker", "dlt"],
)
def hypertracker_liquidations() -> None:
    """Loads HyperTracker's liquidation fills, heatmaps, cohort risk and cohorts."""
    tasks = PipelineTasksGroup("hypertracker", use_data_folder=False, wipe_local_data=True)
    pipeline = dlt.pipeline(
        pipeline_name="hypertracker_airflow",
        destination="postgres",
        dataset_name="hypertracker",
    )
    # One task for the whole source: decomposed into a task per resource, every cohort's task
    # would ask the API for its data version again, and each request costs a usage token.
    tasks.add_run(pipeline, hypertracker(), decompose="none", trigger_rule="all_done", retries=0)


hypertracker_liquidations()
