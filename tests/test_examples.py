"""The recipes in examples/ run as a user runs them, against the simulator, into real databases."""

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import psycopg2
import pytest
from helpers import API_KEY, POSTGRES_URL, PipelineFactory, assert_fills_equal, landed, source_for

from hypertracker_simulator import Simulator
from hypertracker_source.config.defaults import DEFAULT_HEATMAP_COINS, SEGMENT_NAMES
from hypertracker_source.report import stored_dataset
from hypertracker_source.tables import TABLE_NAMES

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
DAGSTER_CHILD = Path(__file__).with_name("dagster_job_child.py")


def example_env(sim: Simulator, tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of an example's process: the simulator and a folder of its own for dlt."""
    return {
        **os.environ,
        "SOURCES__HYPERTRACKER__BASE_URL": sim.url,
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
        "DLT_DATA_DIR": str(tmp_path / "dlt"),
        **settings,
    }


def run(command: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """Runs a command to its end; fails the test with its output if it failed."""
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def assert_full_load(dataset: dlt.Dataset, sim: Simulator) -> None:
    """The dataset holds every fill of the simulator, the default heatmaps and all risk."""
    assert_fills_equal(dataset, sim.expected_fills())
    heatmap_bins = sum(len(sim.expected_heatmap(coin)) for coin in DEFAULT_HEATMAP_COINS)
    assert len(landed(dataset, "liquidation_heatmap")) == heatmap_bins
    risk_rows = sum(len(sim.expected_risk(segment_id)) for segment_id in SEGMENT_NAMES)
    assert len(landed(dataset, "liquidation_risk")) == risk_rows
    assert len(landed(dataset, "segments")) == len(sim.segments)


@pytest.fixture
def postgres_prefix(postgres_destination: Any) -> Iterator[str]:
    """A prefix for the datasets an example makes in PostgreSQL; they are dropped afterwards."""
    prefix = f"ex{uuid.uuid4().hex[:8]}"
    yield prefix
    for schema in postgres_schemas(prefix):
        with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
            cursor.execute(f'DROP SCHEMA "{schema}" CASCADE')


def postgres_schemas(prefix: str) -> list[str]:
    """The PostgreSQL schemas (datasets and staging datasets) whose name starts with a prefix."""
    with psycopg2.connect(POSTGRES_URL) as connection, connection.cursor() as cursor:
        cursor.execute(
            "SELECT schema_name FROM information_schema.schemata WHERE schema_name LIKE %s",
            (f"{prefix}%",),
        )
        return sorted(name for (name,) in cursor.fetchall())


def postgres_settings(prefix: str) -> dict[str, str]:
    """An example's settings for the PostgreSQL server, its datasets named under a prefix."""
    return {
        "DESTINATION__POSTGRES__CREDENTIALS": POSTGRES_URL,
        "DATASET_NAME_LAYOUT": f"{prefix}_%s",
    }


def example_dataset(prefix: str) -> str:
    """The one dataset an example made under a prefix (dlt helpers may apply the layout twice)."""
    (dataset,) = [name for name in postgres_schemas(prefix) if "_staging" not in name]
    return dataset


@pytest.mark.slow
def test_duckdb_example_loads_everything_into_the_folder_it_runs_in(
    simulator: Simulator, tmp_path: Path
):
    folders = [tmp_path / "first", tmp_path / "second"]
    for folder in folders:
        folder.mkdir()
        done = run(
            [sys.executable, str(EXAMPLES / "duckdb_pipeline.py")],
            example_env(simulator, tmp_path),
            folder,
        )

    for folder in folders:
        database = dlt.destinations.duckdb(str(folder / "hypertracker_data.duckdb"))
        dataset = dlt.dataset(database, "hypertracker")
        assert_full_load(dataset, simulator)
        assert dataset["_dlt_loads"].arrow().num_rows == 1, f"{folder.name} holds its own load"
    top_coin = dataset("SELECT coin, SUM(px * sz) AS v FROM liquidation_fills GROUP BY coin")
    assert max(top_coin.fetchall(), key=lambda row: row[1])[0] in done.stdout


def test_postgres_example_loads_everything(
    simulator: Simulator, postgres_destination: Any, postgres_prefix: str, tmp_path: Path
):
    env = example_env(simulator, tmp_path, **postgres_settings(postgres_prefix))
    run([sys.executable, str(EXAMPLES / "postgres_pipeline.py")], env, tmp_path)

    dataset = dlt.dataset(postgres_destination, f"{postgres_prefix}_hypertracker")
    assert_full_load(dataset, simulator)


def midnight_days_ago(days: int) -> datetime:
    """Midnight UTC, a number of days before today."""
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=days)


def fills_between(sim: Simulator, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The simulator's fills from start up to (not including) end."""
    return [
        fill
        for fill in sim.expected_fills()
        if start <= datetime.fromisoformat(fill["time"].replace("Z", "+00:00")) < end
    ]


def test_adjacent_day_backfills_share_no_boundary_fill(make_pipeline: PipelineFactory):
    first_day = midnight_days_ago(2)
    with Simulator(seed=5, fills=400, api_key=API_KEY, history_start=first_day) as sim:
        on_midnight = fills_between(sim, first_day, first_day + timedelta(milliseconds=1))
        assert on_midnight, "the simulator puts its first fills at history_start exactly"
        for start in (first_day - timedelta(days=1), first_day):
            end = start + timedelta(days=1)
            pipeline = make_pipeline()
            source = source_for(sim, start_date=start, end_date=end)
            pipeline.run(source.with_resources("liquidation_fills"))
            assert_fills_equal(pipeline, fills_between(sim, start, end))


@pytest.mark.slow
def test_dagster_daily_partitions_run_side_by_side(
    postgres_destination: Any, postgres_prefix: str, tmp_path: Path
):
    pytest.importorskip("dagster_dlt")
    first_day = midnight_days_ago(2)
    with Simulator(seed=21, fills=3000, api_key=API_KEY, history_start=first_day) as sim:
        env = example_env(sim, tmp_path, **postgres_settings(postgres_prefix))
        run([sys.executable, str(DAGSTER_CHILD), "hypertracker_snapshots_job"], env, tmp_path)
        days = [first_day.date().isoformat(), (first_day + timedelta(days=1)).date().isoformat()]
        partitions = [
            subprocess.Popen(
                [sys.executable, str(DAGSTER_CHILD), "hypertracker_fills_job", day],
                env=env,
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for day in days
        ]
        outputs = [process.communicate(timeout=300)[0] for process in partitions]
        assert [process.returncode for process in partitions] == [0, 0], outputs

        dataset_name = example_dataset(postgres_prefix)
        dataset = stored_dataset(postgres_destination, dataset_name)
        assert set(TABLE_NAMES) <= set(dataset.tables)
        assert_fills_equal(dataset, fills_between(sim, first_day, first_day + timedelta(days=2)))
        assert len(landed(dataset, "liquidation_heatmap")) == sum(
            len(sim.expected_heatmap(coin)) for coin in DEFAULT_HEATMAP_COINS
        )
    partition_staging = [name for name in postgres_schemas(postgres_prefix) if "_staging_" in name]
    assert partition_staging == []
    states = dataset("SELECT pipeline_name FROM _dlt_pipeline_state").fetchall()
    assert {name for (name,) in states} >= {
        f"hypertracker_fills_{day.replace('-', '')}" for day in days
    }


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_airflow_dag_loads_in_dagbag_and_runs(
    simulator: Simulator, postgres_destination: Any, postgres_prefix: str, tmp_path: Path
):
    pytest.importorskip("airflow.sdk")
    dag_file = str(EXAMPLES / "airflow_dag.py")
    env = example_env(
        simulator,
        tmp_path,
        **postgres_settings(postgres_prefix),
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(EXAMPLES),
    )
    airflow = str(Path(sys.executable).with_name("airflow"))
    bag = (
        "import json; from airflow.models.dagbag import DagBag; "
        f"bag = DagBag(dag_folder={dag_file!r}); "
        "print(json.dumps({'errors': bag.import_errors, "
        "'tasks': {dag_id: dag.task_ids for dag_id, dag in bag.dags.items()}}))"
    )
    loaded = json.loads(run([sys.executable, "-c", bag], env, tmp_path).stdout.splitlines()[-1])
    assert loaded["errors"] == {}
    (task_id,) = loaded["tasks"]["hypertracker_liquidations"]
    assert task_id.startswith("hypertracker.hypertracker_liquidation_fills")

    run([airflow, "db", "migrate"], env, tmp_path)
    run([airflow, "dags", "test", "hypertracker_liquidations", "-f", dag_file], env, tmp_path)

    assert_full_load(dlt.dataset(postgres_destination, example_dataset(postgres_prefix)), simulator)
