"""Fixtures: the simulator over HTTP, and real dlt pipelines into DuckDB, PostgreSQL, MariaDB,
parquet, and an S3 bucket on a local S3 server."""

import fcntl
import importlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

import dlt
import pytest
import requests
from helpers import API_KEY, MARIADB_URL, POSTGRES_URL, PipelineFactory, source_for
from hypothesis import settings

from hypertracker_simulator import Simulator

os.environ["RUNTIME__DLTHUB_TELEMETRY"] = "false"
"""dlt's anonymous usage telemetry would look up and call a host outside this machine: never in
tests, whoever runs them (.ci/run sets it too)."""

settings.register_profile("shared_machine", deadline=None)
settings.load_profile("shared_machine")
"""No per-example deadline: parallel workers on a busy machine would fail fast code for waiting."""

S3_SERVER_START_SECONDS = 30.0
DUCKDB_EXTENSIONS = ("httpfs", "avro", "delta", "iceberg")
"""DuckDB extensions that dlt's dataset access needs to read parquet, delta and iceberg on S3."""


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keeps dlt's retry backoff short, so fault tests spend seconds, not minutes."""
    monkeypatch.setenv("RUNTIME__REQUEST_BACKOFF_FACTOR", "0.05")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", "2")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "10")


@pytest.fixture
def simulator_settings(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> Simulator:
    """The simulator, given to the command through dlt's environment settings, as a user's are."""
    monkeypatch.setenv("SOURCES__HYPERTRACKER__BASE_URL", simulator.url)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", API_KEY)
    return simulator


@pytest.fixture
def simulator() -> Iterator[Simulator]:
    """A simulator with a few thousand fills over the API's whole history."""
    with Simulator(seed=7, fills=3000, api_key=API_KEY) as sim:
        yield sim


def new_pipeline(folder: Path, destination: Any = None, name: str = "hypertracker") -> dlt.Pipeline:
    """A pipeline kept in a folder, with a dataset of its own, into DuckDB there by default."""
    suffix = uuid.uuid4().hex[:8]
    return dlt.pipeline(
        pipeline_name=f"{name}_{suffix}",
        destination=destination or dlt.destinations.duckdb(str(folder / f"{name}.duckdb")),
        dataset_name=f"hypertracker_{suffix}",
        pipelines_dir=str(folder / "pipelines"),
    )


@pytest.fixture
def make_pipeline(tmp_path: Path) -> Iterator[PipelineFactory]:
    """Makes pipelines in the test's own folder, each with its own dataset, dropped afterwards."""
    pipelines: list[dlt.Pipeline] = []

    def make(destination: Any = None, name: str = "hypertracker") -> dlt.Pipeline:
        pipelines.append(new_pipeline(tmp_path, destination, name))
        return pipelines[-1]

    yield make
    for pipeline in pipelines:
        sql_database = pipeline.destination.destination_name in ("postgres", "sqlalchemy")
        if sql_database and pipeline.default_schema_name:
            with pipeline.sql_client() as client:
                client.drop_dataset()
                with client.with_staging_dataset():
                    if client.has_dataset():
                        client.drop_dataset()


@pytest.fixture(scope="module")
def module_pipeline(tmp_path_factory: pytest.TempPathFactory) -> dlt.Pipeline:
    """A DuckDB pipeline of the module's own, for a load that its tests share and only read."""
    return new_pipeline(tmp_path_factory.mktemp("module"))


class TwoLoads(NamedTuple):
    """A DuckDB pipeline that loaded two data versions of a simulator, 40 fills apart."""

    simulator: Simulator
    pipeline: dlt.Pipeline


@pytest.fixture(scope="session")
def two_loads(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoLoads]:
    """Two loads of a simulator like `simulator`'s, made once per worker for the tests that only
    read them: neither the simulator nor the DuckDB file may be changed."""
    with Simulator(seed=7, fills=3000, api_key=API_KEY) as sim:
        pipeline = new_pipeline(tmp_path_factory.mktemp("two-loads"))
        pipeline.run(source_for(sim))
        sim.advance_state(new_fills=40)
        pipeline.run(source_for(sim))
        yield TwoLoads(sim, pipeline)


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


@pytest.fixture
def mariadb_destination() -> Any:
    """The real MariaDB server, through dlt's sqlalchemy destination; skipped when absent,
    unless CI demands it."""
    pymysql = pytest.importorskip("pymysql")
    try:
        pymysql.connect(host="127.0.0.1", port=3306, user="root", connect_timeout=3).close()
    except pymysql.err.OperationalError as error:
        if os.environ.get("HYPERTRACKER_REQUIRE_MARIADB"):
            raise
        pytest.skip(f"no MariaDB at {MARIADB_URL} ({error}); start it to run this test")
    return dlt.destinations.sqlalchemy(MARIADB_URL)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, process: subprocess.Popen, timeout: float) -> None:
    """Waits until a child process listens on a port; fails if it ends or takes too long."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the S3 server ended with code {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"the S3 server did not listen on port {port} in {timeout} s")


@pytest.fixture(scope="session")
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server in a child process on 127.0.0.1; yields the credentials dlt takes.

    Skipped when moto is not installed, unless CI demands it.
    """
    if not os.environ.get("HYPERTRACKER_REQUIRE_S3"):
        pytest.importorskip("moto.server", reason="moto[server] is not installed")
    install_duckdb_extensions()
    port = free_port()
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, server, S3_SERVER_START_SECONDS)
        yield {
            "aws_access_key_id": "moto-test-key",
            "aws_secret_access_key": "moto-test-secret",
            "endpoint_url": f"http://127.0.0.1:{port}",
            "region_name": "us-east-1",
        }
    finally:
        server.terminate()
        server.wait(timeout=10)


def install_duckdb_extensions() -> None:
    """Installs the DuckDB extensions that PyPI packages ship, so that no test downloads one.

    DuckDB otherwise fetches httpfs, delta and iceberg from its own host at first use.
    """
    import duckdb

    # Hand-written: parallel workers install into the one ~/.duckdb folder, one at a time
    with open(Path(tempfile.gettempdir()) / "hypertracker-duckdb-extensions.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for name in DUCKDB_EXTENSIONS:
            try:
                package = importlib.import_module(f"duckdb_extension_{name}")
            except ModuleNotFoundError:
                continue
            extensions = Path(package.__file__).parent
            (extension,) = extensions.glob(f"extensions/*/{name}.duckdb_extension")
            duckdb.install_extension(str(extension))


@pytest.fixture
def s3_bucket(s3_server: dict[str, str]) -> Any:
    """A new, empty bucket on the S3 server; yields a factory of filesystem destinations on it."""
    import boto3

    bucket = f"lake-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", **s3_server).create_bucket(Bucket=bucket)

    def destination(folder: str) -> Any:
        return dlt.destinations.filesystem(f"s3://{bucket}/{folder}", credentials=s3_server)

    return destination


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


FAST_MODULES = frozenset(
    {
        "test_units.py",
        "test_structure.py",
        "test_properties.py",
        "test_simulator_fills.py",
        "test_simulator_indexer.py",
        "test_simulator_snapshots.py",
        "test_simulator_transport.py",
    }
)
"""Modules of unit tests (settings, windows, keys, the simulator's API over HTTP): the fast tier."""
NOT_FAST = frozenset(
    {
        "test_report_package_and_its_constants_import_without_plotly",  # a fresh interpreter
        "test_overlapping_backfills_merge_without_duplicates",  # dlt pipelines, many examples
        "test_fill_identity_is_unique_on_100k_fills",
        "test_a_million_fills",
    }
)
"""Tests of those modules that take seconds each, left to the whole suite."""


WORKERS_PER_CORE = 1.5
"""`-n auto`'s workers a core: a fifth of a worker's time waits (on commands it started, on a
paced or slow simulator, on a signal's effect), and a half worker more per core fills it."""


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """The workers of `-n auto`: WORKERS_PER_CORE a core, unless PYTEST_XDIST_AUTO_NUM_WORKERS
    sets them."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    return max(1, round(len(os.sched_getaffinity(0)) * WORKERS_PER_CORE))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Marks the fast tier (`pytest -m fast`); a test elsewhere may carry the mark itself."""
    for item in items:
        in_fast_module = item.path.name in FAST_MODULES
        if in_fast_module and getattr(item, "originalname", item.name) not in NOT_FAST:
            item.add_marker(pytest.mark.fast)
    items[:] = slow_first(items, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


def slow_first(items: list[pytest.Item], workers: int) -> list[pytest.Item]:
    """The tests in an order whose even split over the workers starts each with its share of
    the slow ones, a module's slow tests on one worker, so that no long test starts last and
    ends the run alone, and the tests that share a module's fixtures share one making of them."""
    # Hand-written: pytest-xdist's worksteal hands worker k the k-th contiguous share of the
    # collection, and steals from the ends of the shares; every worker collects the same order
    slow_modules: dict[Path, list[pytest.Item]] = {}
    for item in items:
        if item.get_closest_marker("slow"):
            slow_modules.setdefault(item.path, []).append(item)
    rest = [item for item in items if not item.get_closest_marker("slow")]
    shares: list[list[pytest.Item]] = [[] for _ in range(workers)]
    for module in sorted(slow_modules.values(), key=len, reverse=True):
        min(shares, key=len).extend(module)
    pending = len(items)
    for worker, share in enumerate(shares):
        size = pending // (workers - worker)
        pending -= size
        filler = max(0, size - len(share))
        share += rest[:filler]
        del rest[:filler]
    return [item for share in shares for item in share] + rest
