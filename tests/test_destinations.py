"""Destinations beyond DuckDB and PostgreSQL: MariaDB, and parquet, delta and iceberg tables on a
real S3 API, each against DuckDB in the same run, after a first load and a rerun with overlap."""

import time
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import dlt
import pytest
from helpers import (
    API_KEY,
    LAG,
    MARIADB_URL,
    TABLES,
    PipelineFactory,
    api_fill_key,
    assert_fills_equal,
    comparable,
    epoch_ms,
    landed,
    landed_fill_key,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source.commands import main
from hypertracker_source.destinations.mysql import MERGE_KEY_INDEX, index_merge_keys
from hypertracker_source.destinations.profiles import PROFILES, DestinationProfile
from hypertracker_source.tables import TABLES as SOURCE_TABLES

PUBLIC_TABLES = [table for table in SOURCE_TABLES if table.public]

SETTINGS = {"coins": ["BTC", "HYPE"], "heatmap_coins": ["ETH"], "segment_ids": [4, 12]}
"""A few of every table, so that a per-row merge (iceberg's) stays quick."""
NEW_FILLS = 30
LATE_FILLS = 5


def load_two_versions(
    sim: Simulator,
    runs: dict[str, tuple[dlt.Pipeline, dict[str, Any], dict[str, Any]]],
    before_rerun: Callable[[], None] = lambda: None,
) -> dict[str, list[tuple[float, int]]]:
    """Loads every pipeline, makes a new data version with new and late fills, loads again.

    Returns each pipeline's (seconds, API requests) per run, for the figures.
    """
    figures: dict[str, list[tuple[float, int]]] = {name: [] for name in runs}
    for version in (1, 2):
        for name, (pipeline, source_settings, run_settings) in runs.items():
            sim.reset_requests()
            started = time.perf_counter()
            pipeline.run(source_for(sim, **SETTINGS, **source_settings), **run_settings)
            seconds = time.perf_counter() - started
            figures[name].append((seconds, sum(sim.request_counts().values())))
        if version == 1:
            sim.advance_state(new_fills=NEW_FILLS, late_fills=LATE_FILLS)
            before_rerun()
    print_figures(figures)
    return figures


def print_figures(figures: dict[str, list[tuple[float, int]]]) -> None:
    """Prints each run's time against DuckDB's in the same run, and its requests (pytest -s)."""
    for name, runs in figures.items():
        line = ", ".join(
            f"run {n}: {seconds:.2f} s ({seconds / figures['duckdb'][n - 1][0]:.2f}x duckdb), "
            f"{requests} requests"
            for n, (seconds, requests) in enumerate(runs, start=1)
        )
        print(f"\n{name}: {line}")


def expected_fills(sim: Simulator) -> list[dict[str, Any]]:
    """The simulator's fills of the coins in SETTINGS."""
    return [fill for coin in SETTINGS["coins"] for fill in sim.expected_fills(coin=coin)]


def assert_same_rows(reference: dlt.Dataset, other: dlt.Dataset) -> None:
    """Every table holds the same rows, every column compared, in both datasets."""
    for table in TABLES:
        assert comparable(landed(other, table)) == comparable(landed(reference, table)), table


def assert_api_rows(dataset: dlt.Dataset, sim: Simulator) -> None:
    """The dataset holds the API's fills once each, and both versions' heatmap and risk."""
    assert_fills_equal(dataset, expected_fills(sim))
    assert len(landed(dataset, "liquidation_heatmap")) == 2 * len(sim.expected_heatmap("ETH"))
    risk_rows = sum(len(sim.expected_risk(segment_id)) for segment_id in SETTINGS["segment_ids"])
    assert len(landed(dataset, "liquidation_risk")) == 2 * risk_rows
    assert len(landed(dataset, "segments")) == len(sim.segments)


@pytest.mark.slow
def test_mariadb_lands_what_duckdb_lands(
    simulator: Simulator, make_pipeline: PipelineFactory, mariadb_destination: Any
):
    duckdb = make_pipeline(name="duckdb")
    mariadb = make_pipeline(mariadb_destination, name="mariadb")

    runs = {"duckdb": (duckdb, {}, {}), "mariadb": (mariadb, {}, {})}
    figures = load_two_versions(simulator, runs)

    assert_api_rows(mariadb.dataset(), simulator)
    assert_same_rows(duckdb.dataset(), mariadb.dataset())
    assert [requests for _, requests in figures["mariadb"]] == [
        requests for _, requests in figures["duckdb"]
    ]


def test_a_plain_rerun_into_mariadb_indexes_the_staging_keys_before_its_merge(
    simulator: Simulator, make_pipeline: PipelineFactory, mariadb_destination: Any
):
    """No CLI: the source indexes the staging tables the previous load made, at its extract."""
    pipeline = make_pipeline(mariadb_destination, name="mariadb")
    staging = f"{pipeline.dataset_name}_staging"
    pipeline.run(source_for(simulator, **SETTINGS))
    assert staging_indexes(staging) == {}
    simulator.advance_state(new_fills=NEW_FILLS, late_fills=LATE_FILLS)

    pipeline.run(source_for(simulator, **SETTINGS))

    assert staging_indexes(staging) == {table.name: table.primary_key for table in PUBLIC_TABLES}
    assert_api_rows(pipeline.dataset(), simulator)


def test_the_load_command_indexes_each_mariadb_staging_table_once(
    simulator_settings: Simulator,
    make_pipeline: PipelineFactory,
    mariadb_destination: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    """The command's steps after each chunk and the source's before each extract index a staging
    table once between them, over chunks and runs."""
    pipeline = make_pipeline(mariadb_destination)
    indexed: list[str] = []

    def index_and_record(loading: dlt.Pipeline) -> list[str]:
        tables = index_merge_keys(loading)
        indexed.extend(tables)
        return tables

    monkeypatch.setitem(PROFILES, "mysql", DestinationProfile(after_load=index_and_record))
    monkeypatch.setenv("DESTINATION__SQLALCHEMY__CREDENTIALS", MARIADB_URL)
    monkeypatch.setenv("DLT_DATA_DIR", str(Path(pipeline.pipelines_dir).parent))
    monkeypatch.setenv("SOURCES__HYPERTRACKER__MAX_FILLS_PER_RUN", "1000")
    command = [
        *("load", "--destination", "sqlalchemy", "--pipeline-name", pipeline.pipeline_name),
        *("--dataset", pipeline.dataset_name, "--heatmap-coins", "ETH", "--segments", "4,12"),
    ]
    try:
        assert main(command) == 0
        assert "chunk 2:" in capsys.readouterr().out
        assert main(command) == 0
        assert sorted(indexed) == sorted(TABLES)
        assert staging_indexes(f"{pipeline.dataset_name}_staging") == {
            table.name: table.primary_key for table in PUBLIC_TABLES
        }
    finally:
        drop_mariadb_datasets(pipeline.dataset_name)


def test_mariadb_column_types_and_utc_timestamps(
    simulator: Simulator, make_pipeline: PipelineFactory, mariadb_destination: Any
):
    pipeline = make_pipeline(mariadb_destination, name="mariadb")
    pipeline.run(source_for(simulator, **SETTINGS))

    with pipeline.sql_client() as client:
        types = dict(
            client.execute_sql(
                "SELECT CONCAT(table_name, '.', column_name), column_type"
                " FROM information_schema.columns WHERE table_schema = %s",
                pipeline.dataset_name,
            )
        )
        client.execute_sql("SET time_zone = '+05:00'")
        fills_table = client.make_qualified_table_name("liquidation_fills")
        ((newest,),) = client.execute_sql(f"SELECT MAX(time) FROM {fills_table}")
    expected = {
        "liquidation_fills.time": "datetime(6)",
        "liquidation_fills.tid": "bigint(20)",
        "liquidation_fills.px": "double",
        "liquidation_fills.crossed": "tinyint(1)",
        "liquidation_heatmap.snapshot_at": "datetime(6)",
        "liquidation_heatmap.most_impacted_segment": "bigint(20)",
        "liquidation_risk.percent_risk": "double",
        "segments.id": "bigint(20)",
    }
    assert {name: types.get(name) for name in expected} == expected
    # DATETIME holds no zone: dlt writes the UTC wall time, whatever the session's time zone
    assert newest.tzinfo is None
    newest_api = max(epoch_ms(fill["time"]) for fill in expected_fills(simulator))
    assert epoch_ms(newest) == newest_api


@pytest.mark.slow
def test_report_reads_mariadb(
    simulator: Simulator, make_pipeline: PipelineFactory, mariadb_destination: Any, tmp_path: Path
):
    """The report of a MariaDB dataset shows what the same data shows from DuckDB."""
    from hypertracker_source.report import stored_dataset, write_report
    from hypertracker_source.report.queries import read_report_data

    mariadb = make_pipeline(mariadb_destination, name="mariadb")
    duckdb = make_pipeline(name="duckdb")
    for pipeline in (mariadb, duckdb):
        pipeline.run(source_for(simulator, **SETTINGS))
    dataset = stored_dataset(mariadb_destination, mariadb.dataset_name)
    page = write_report(dataset, tmp_path / "report.html")
    assert "BTC" in page.read_text(encoding="utf-8")
    shown, expected = read_report_data(dataset), read_report_data(duckdb.dataset())
    assert shown.buckets is not None and expected.buckets is not None
    assert shown.buckets.unit == expected.buckets.unit
    by_bucket = {(r["coin"], r["side"], r["bucket"]): r["value"] for r in expected.buckets.rows}
    assert {(r["coin"], r["side"], r["bucket"]): r["value"] for r in shown.buckets.rows} == (
        pytest.approx(by_bucket)
    )
    assert [(c["coin"], c["fills"]) for c in shown.cascades] == [
        (c["coin"], c["fills"]) for c in expected.cascades
    ]
    assert shown.row_counts == expected.row_counts


@pytest.mark.slow
@pytest.mark.parametrize("table_format", ["delta", "iceberg"])
def test_bucket_tables_merge_to_the_api_rows(
    table_format: str,
    simulator: Simulator,
    make_pipeline: PipelineFactory,
    s3_bucket: Any,
    tmp_path: Path,
):
    duckdb = make_pipeline(name="duckdb")
    lake = make_pipeline(s3_bucket(table_format), name=table_format)
    runs = {
        "duckdb": (duckdb, {}, {}),
        table_format: (lake, {"merge_strategy": "upsert"}, {"table_format": table_format}),
    }
    figures = load_two_versions(simulator, runs)

    bucket = dlt.dataset(s3_bucket(table_format), lake.dataset_name)
    assert_api_rows(bucket, simulator)
    assert_same_rows(duckdb.dataset(), bucket)
    assert [requests for _, requests in figures[table_format]] == [
        requests for _, requests in figures["duckdb"]
    ]
    if table_format == "delta":
        from hypertracker_source.report import stored_dataset, write_report

        page = write_report(
            stored_dataset(s3_bucket(table_format), lake.dataset_name), tmp_path / "lake.html"
        )
        assert "ETH" in page.read_text(encoding="utf-8")


def test_parquet_on_a_bucket_appends_what_each_run_read(
    simulator: Simulator, make_pipeline: PipelineFactory, s3_bucket: Any
):
    duckdb = make_pipeline(name="duckdb")
    lake = make_pipeline(s3_bucket("parquet"), name="parquet")
    first_version = expected_fills(simulator)
    load_two_versions(simulator, {"duckdb": (duckdb, {}, {}), "parquet": (lake, {}, {})})

    bucket = dlt.dataset(s3_bucket("parquet"), lake.dataset_name)
    # The rerun walked each coin down to its newest fill of the first version less `lag`: the
    # fills of the first version in that overlap landed again, beside the new and the late ones;
    # everything else landed once.
    newest: dict[str, int] = {}
    for fill in first_version:
        newest[fill["coin"]] = max(newest.get(fill["coin"], 0), epoch_ms(fill["time"]))
    assert set(newest) == set(SETTINGS["coins"])
    lag_ms = LAG // timedelta(milliseconds=1)
    reread = Counter(
        api_fill_key(fill)
        for fill in first_version
        if epoch_ms(fill["time"]) >= newest[fill["coin"]] - lag_ms
    )
    landed_keys = Counter(landed_fill_key(row) for row in landed(bucket, "liquidation_fills"))
    duplicates = {key for key, count in landed_keys.items() if count > 1}
    assert duplicates
    assert duplicates == set(reread)
    assert max(landed_keys.values()) == 2
    assert set(landed_keys) == {api_fill_key(fill) for fill in expected_fills(simulator)}
    # segments come with every run; heatmap and risk rows of two versions differ by snapshot_at
    assert Counter(row["id"] for row in landed(bucket, "segments")) == {
        segment["id"]: 2 for segment in simulator.segments
    }
    assert comparable(landed(bucket, "liquidation_heatmap")) == comparable(
        landed(duckdb, "liquidation_heatmap")
    )
    assert comparable(landed(bucket, "liquidation_risk")) == comparable(
        landed(duckdb, "liquidation_risk")
    )
    deduplicated = {landed_fill_key(row): row for row in landed(bucket, "liquidation_fills")}
    assert comparable(list(deduplicated.values())) == comparable(
        landed(duckdb, "liquidation_fills")
    )


@pytest.mark.parametrize("destination", ["sqlalchemy", "filesystem"])
def test_load_command_reaches_mariadb_and_a_bucket_by_name(
    destination: str,
    simulator: Simulator,
    make_pipeline: PipelineFactory,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
):
    if destination == "sqlalchemy":
        pipeline = make_pipeline(request.getfixturevalue("mariadb_destination"))
        monkeypatch.setenv("DESTINATION__SQLALCHEMY__CREDENTIALS", MARIADB_URL)
    else:
        pipeline = make_pipeline(request.getfixturevalue("s3_bucket")("cli"))
        bucket = pipeline.destination.config_params["bucket_url"]
        monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", bucket)
        for name, value in request.getfixturevalue("s3_server").items():
            monkeypatch.setenv(f"DESTINATION__FILESYSTEM__CREDENTIALS__{name.upper()}", value)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__BASE_URL", simulator.url)
    monkeypatch.setenv("DLT_DATA_DIR", str(Path(pipeline.pipelines_dir).parent))
    command = [
        *("load", "--destination", destination, "--pipeline-name", pipeline.pipeline_name),
        *("--dataset", pipeline.dataset_name, "--coins", "BTC,HYPE", "--heatmap-coins", "ETH"),
        *("--segments", "4,12"),
    ]
    try:
        assert main(command) == 0
        pipeline.sync_destination()
        assert_fills_equal(pipeline, expected_fills(simulator))
        assert len(landed(pipeline, "liquidation_heatmap")) == len(
            simulator.expected_heatmap("ETH")
        )
        if destination == "sqlalchemy":
            assert set(staging_indexes(f"{pipeline.dataset_name}_staging")) == set(TABLES)
    finally:
        if destination == "sqlalchemy":
            drop_mariadb_datasets(pipeline.dataset_name)


def mariadb_query(sql: str, *params: str) -> list[tuple]:
    """Runs one statement on the local MariaDB server; returns its rows."""
    import pymysql

    with (
        pymysql.connect(host="127.0.0.1", user="root") as connection,
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)
        return list(cursor.fetchall())


def staging_indexes(staging_dataset: str) -> dict[str, tuple[str, ...]]:
    """The tables of a MariaDB staging dataset that have the source's merge key index, and the
    columns it indexes, in order."""
    rows = mariadb_query(
        "SELECT table_name, column_name FROM information_schema.statistics"
        " WHERE table_schema = %s AND index_name = %s ORDER BY table_name, seq_in_index",
        staging_dataset,
        MERGE_KEY_INDEX,
    )
    indexes: dict[str, tuple[str, ...]] = {}
    for table, column in rows:
        indexes[table] = (*indexes.get(table, ()), column)
    return indexes


def drop_mariadb_datasets(dataset_name: str) -> None:
    """Drops a dataset that a command made in MariaDB, and its staging dataset."""
    for database in (dataset_name, f"{dataset_name}_staging"):
        mariadb_query(f"DROP DATABASE IF EXISTS `{database}`")
