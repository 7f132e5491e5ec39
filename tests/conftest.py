"""Fixtures: the simulator over HTTP, and real dlt pipelines into DuckDB, PostgreSQL, parquet."""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
import requests
from helpers import API_KEY, POSTGRES_URL, PipelineFactory

from hypertracker_simulator import Simulator


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps dlt's retry backoff short, so fault tests spend seconds, not minutes."""
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "10")


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A simulator with a few thousand fills over the API's whole history."""
    with Simulator(seed=7, fills=3000, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[PipelineFactory]:
    """Makes pipelines in the test's own folder, each with its own dataset, dropped afterwards."""
    pipelines: list[dlt.Pipeline] = []

    def make(destination: Any = None, name: str = "hypertracker") -> dlt.Pipeline:
        suffix = uuid.uuid4().hex[:8]
        pipeline = dlt.pipeline(
            pipeline_name=f"{name}_{suffix}",
            destination=destination or dlt.destinations.duckdb(str(tmp_path / f"{name}.duckdb")),
            dataset_name=f"hypertracker_{suffix}",
            pipelines_dir=str(tmp_path / "pipelines"),
        )
        pipelines.append(pipeline)
        return pipeline

    yield make
    for pipeline in pipelines:
        if pipeline.destination.destination_name == "postgres" and pipeline.default_schema_name:
            with pipeline.sql_client() as client:
                client.drop_dataset()
                with client.with_staging_dataset():
                    if client.has_dataset():
                        client.drop_dataset()


@pytest.fixture
def postgres_destination() -> Any:
    """The real PostgreSQL server; skipped when absent, unless CI demands it."""
    psycopg2 = pytest.importorskip("psycopg2")
    try:
        psycopg2.connect(POSTGRES_URL, connect_timeout=3).close()
    except psycopg2.OperationalError as error:
        if os.environ.get("HYPERTRACKER_REQUIRE_POSTGRES"):
            raise
        pytest.skip(f"no PostgreSQL at {POSTGRES_URL} ({error}); start it to run this test")
    return dlt.destinations.postgres(POSTGRES_URL)


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Simulator]]:
    """Read-only simulators with the same data, one per documented fill order."""
    with (
        Simulator(seed=7, fills=5000, api_key=API_KEY) as newest,
        Simulator(seed=7, fills=5000, api_key=API_KEY, fill_order="notes") as notes,
    ):
        yield {"newest": newest, "notes": notes}


@pytest.fixture(scope="module")
def sim(sims: dict[str, Simulator]) -> Simulator:
    """The read-only simulator whose fills come newest first."""
    return sims["newest"]


@pytest.fixture
def fresh() -> Iterator[Simulator]:
    """A small simulator of the test's own, free to change."""
    with Simulator(seed=3, fills=400, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def client() -> Iterator[requests.Session]:
    """An HTTP session that sends the API key."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        yield session
