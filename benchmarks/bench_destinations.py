"""Each destination against DuckDB in the same run: a first load, and a rerun with overlap.

    .venv/bin/python -m benchmarks.bench_destinations     # about 5 minutes

The whole source with its defaults (every fill, 3 heatmap coins, 16 cohorts) into DuckDB,
PostgreSQL (127.0.0.1:5432), MariaDB (127.0.0.1:3306; once more with its destination profile
turned off, so without the staging indexes) and parquet and delta on an S3 bucket (moto's
S3 server on 127.0.0.1), from one simulator in a process of its own; then a new data version with
new and late fills, and every pipeline once more. Iceberg upserts row by row through pyiceberg and
gets a smaller history of its own, again against DuckDB. Each pipeline runs in this process, one
after the other, alternately `--repeat` times; each figure is the best. Prints a markdown report
and writes it to benchmarks/results/destinations.md.
"""

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import boto3
import dlt

from benchmarks.measure import machine, markdown_table, write_result
from hypertracker_simulator import SimulatorProcess, start_simulator_process
from hypertracker_source import hypertracker
from hypertracker_source.destinations.profiles import PROFILES, DestinationProfile
from hypertracker_source.tables import TABLE_NAMES

API_KEY = "bench-key"
SEED = 7
POSTGRES_URL = "postgresql://postgres:bench@127.0.0.1:5432/test"
MARIADB_URL = "mysql+pymysql://root:@127.0.0.1:3306/test"
S3_START_SECONDS = 30.0
NEW_FILLS = 300
MARIADB_UNINDEXED = "mariadb, no index"
"""MariaDB with its destination profile turned off: no staging index before the rerun's merge."""
LATE_FILLS = 50

Destination = Callable[[], Any]
Run = tuple[Destination, dict[str, Any], dict[str, Any]]
"""A destination to make, the source's settings for it, and pipeline.run's."""


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_destinations")
    parser.add_argument("--fills", type=int, default=20_000, help="simulated fills (20000)")
    parser.add_argument(
        "--iceberg-fills", type=int, default=3_000, help="fills of the iceberg run (3000)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of each destination (2)")
    return parser.parse_args()


@contextmanager
def s3_server() -> Iterator[dict[str, str]]:
    """moto's S3 server in a child process on a free port; yields dlt's credentials for it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    credentials = {
        "aws_access_key_id": "bench",
        "aws_secret_access_key": "bench",
        "endpoint_url": f"http://127.0.0.1:{port}",
        "region_name": "us-east-1",
    }
    try:
        deadline = time.monotonic() + S3_START_SECONDS
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield credentials
    finally:
        server.terminate()
        server.wait(timeout=10)


def bucket_destination(credentials: dict[str, str]) -> Destination:
    """A factory of filesystem destinations, each on a new bucket of the S3 server."""

    def make() -> Any:
        bucket = f"bench-{uuid.uuid4().hex[:8]}"
        boto3.client("s3", **credentials).create_bucket(Bucket=bucket)
        return dlt.destinations.filesystem(f"s3://{bucket}/lake", credentials=credentials)

    return make


@contextmanager
def without_profile(kind: str) -> Iterator[None]:
    """Turns a destination type's profile off: no checks, no steps after a load."""
    profile = PROFILES[kind]
    PROFILES[kind] = DestinationProfile()
    try:
        yield
    finally:
        PROFILES[kind] = profile


def runs_of(credentials: dict[str, str], workdir: str) -> dict[str, Run]:
    """The destinations of the main run, DuckDB first."""
    upsert = {"merge_strategy": "upsert"}
    bucket = bucket_destination(credentials)
    return {
        "duckdb": (lambda: dlt.destinations.duckdb(f"{workdir}/{uuid.uuid4().hex}.duckdb"), {}, {}),
        "postgres": (lambda: dlt.destinations.postgres(POSTGRES_URL), {}, {}),
        "mariadb": (lambda: dlt.destinations.sqlalchemy(MARIADB_URL), {}, {}),
        MARIADB_UNINDEXED: (lambda: dlt.destinations.sqlalchemy(MARIADB_URL), {}, {}),
        "parquet on S3": (bucket, {}, {}),
        "delta on S3": (bucket, upsert, {"table_format": "delta"}),
        "iceberg on S3": (bucket, upsert, {"table_format": "iceberg"}),
    }


def measure_pair(
    sim: SimulatorProcess, runs: dict[str, Run], workdir: str
) -> dict[str, dict[str, Any]]:
    """Loads each destination, makes a new data version, loads each again; times and counts."""
    pipelines = {
        name: dlt.pipeline(
            pipeline_name=f"bench_{uuid.uuid4().hex[:8]}",
            destination=make(),
            dataset_name=f"bench_{uuid.uuid4().hex[:8]}",
            pipelines_dir=f"{workdir}/pipelines",
        )
        for name, (make, _, _) in runs.items()
    }
    figures: dict[str, dict[str, Any]] = {name: {} for name in runs}
    for step in ("first", "rerun"):
        for name, pipeline in pipelines.items():
            _, source_settings, run_settings = runs[name]
            sim.reset_requests()
            source = hypertracker(api_key=API_KEY, base_url=sim.url, **source_settings)
            started = time.perf_counter()
            with without_profile("mysql") if name == MARIADB_UNINDEXED else nullcontext():
                pipeline.run(source, **run_settings)
            figures[name][f"{step}_s"] = time.perf_counter() - started
            figures[name][f"{step}_requests"] = sum(sim.request_counts().values())
        if step == "first":
            sim.advance_state(new_fills=NEW_FILLS, late_fills=LATE_FILLS)
    for name, pipeline in pipelines.items():
        counts = pipeline.dataset().row_counts(table_names=list(TABLE_NAMES)).fetchall()
        figures[name]["rows"] = dict(counts)
        if pipeline.destination.destination_name in ("postgres", "sqlalchemy"):
            with pipeline.sql_client() as client:
                client.drop_dataset()
                with client.with_staging_dataset():
                    if client.has_dataset():
                        client.drop_dataset()
    return figures


def best(repeats: list[dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Each destination's fastest first load and rerun over the repeats; the rest from the last."""
    result = {name: dict(figures) for name, figures in repeats[-1].items()}
    for name, figures in result.items():
        for key in ("first_s", "rerun_s"):
            figures[key] = min(repeat[name][key] for repeat in repeats)
    return result


def report(groups: dict[int, dict[str, dict[str, Any]]], args: argparse.Namespace) -> str:
    """The markdown report: per destination, times against DuckDB's, requests and rows."""
    header = [
        "destination",
        "fills in the API",
        "first load s",
        "vs DuckDB",
        "rerun s",
        "vs DuckDB",
        "requests (first, rerun), file downloads included",
        *(f"{table} rows" for table in TABLE_NAMES),
    ]
    rows = []
    for fills, figures in groups.items():
        duckdb = figures["duckdb"]
        for name, f in figures.items():
            rows.append(
                [
                    name,
                    f"{fills:,}",
                    f["first_s"],
                    f"{f['first_s'] / duckdb['first_s']:.2f}x",
                    f["rerun_s"],
                    f"{f['rerun_s'] / duckdb['rerun_s']:.2f}x",
                    f"{f['first_requests']}, {f['rerun_requests']}",
                    *(f"{f['rows'].get(table, 0):,}" for table in TABLE_NAMES),
                ]
            )
    return "\n".join(
        [
            "# Destinations against DuckDB",
            "",
            f"Machine: {machine()}. Best of {args.repeat}; the rerun follows a new data version "
            f"with {NEW_FILLS} new and {LATE_FILLS} late fills, and re-reads the last hour.",
            "",
            markdown_table(header, rows),
            "",
        ]
    )


def main() -> None:
    """Runs every destination against DuckDB and writes the report."""
    args = parse_args()
    groups: dict[int, dict[str, dict[str, Any]]] = {}
    with s3_server() as credentials, tempfile.TemporaryDirectory(prefix="bench_dest_") as workdir:
        every = runs_of(credentials, workdir)
        plans = {
            args.fills: {name: run for name, run in every.items() if "iceberg" not in name},
            args.iceberg_fills: {name: every[name] for name in ("duckdb", "iceberg on S3")},
        }
        for fills, runs in plans.items():
            repeats = []
            for _ in range(args.repeat):
                with start_simulator_process(seed=SEED, fills=fills, api_key=API_KEY) as sim:
                    repeats.append(measure_pair(sim, runs, workdir))
            groups[fills] = best(repeats)
    markdown = report(groups, args)
    print(markdown)
    print(f"Written to {write_result('destinations', markdown, groups)}")


if __name__ == "__main__":
    main()
