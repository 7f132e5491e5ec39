"""The bundled dbt package, run by dlt's dbt runner on real DuckDB and PostgreSQL datasets."""

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import dlt
import pytest
from helpers import HEATMAP_COINS, PipelineFactory, cohorts, epoch_ms, main_without, source_for
from oracles import expected_cascades, expected_hourly, expected_mark

from hypertracker_simulator import Simulator
from hypertracker_source.commands import main
from hypertracker_source.commands.models import DBT_PACKAGE, adapter_installed, run_models
from hypertracker_source.report.queries import read_report_data

pytestmark = pytest.mark.skipif(
    not adapter_installed("dbt.adapters.duckdb"), reason="dbt is in the models extra"
)
"""Found, not imported: every worker collects this module, and importing dbt takes 1.4 s."""

MODELS = {
    "stg_segments",
    "stg_liquidation_fills",
    "stg_liquidation_heatmap",
    "stg_liquidation_risk",
    "liquidations_hourly",
    "liquidation_cascades",
    "heatmap_history",
    "heatmap_latest",
    "risk_history",
    "risk_latest",
}

MODEL_TESTS = 60
"""The fewest dbt tests the package runs over its models."""

WRITTEN_BY_DBT = {"target", "logs", "dbt_packages", ".user.yml", "package-lock.yml"}
"""What dbt would write into the project or profile folder, inside the installed package."""


def rows(pipeline: dlt.Pipeline, sql: str) -> list[dict]:
    """A query's rows; {d} stands for the dataset, whose models dlt's own schema does not know."""
    with (
        pipeline.sql_client() as client,
        client.execute_query(sql.format(d=pipeline.dataset_name)) as cursor,
    ):
        names = [column[0] for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def assert_hourly_matches(pipeline: dlt.Pipeline, sim: Simulator) -> None:
    """liquidations_hourly holds each coin, side and hour of the simulator's fills, summed."""
    landed = {
        (
            row["coin"],
            row["side"],
            epoch_ms(row["hour"].replace(tzinfo=None).isoformat() + "Z") // 3_600_000,
        ): (row["fills"], row["notional_usd"])
        for row in rows(pipeline, "SELECT * FROM {d}.liquidations_hourly")
    }
    expected = expected_hourly(sim.expected_fills())
    assert landed.keys() == expected.keys()
    for key, (fills, notional) in expected.items():
        assert landed[key][0] == fills
        assert landed[key][1] == pytest.approx(notional, rel=1e-9)


def utc_wall_time(moment: datetime) -> datetime:
    """An instant as its naive UTC wall time, as the models store it."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def assert_report_finds_the_models_cascades(pipeline: dlt.Pipeline) -> None:
    """The report's cascades are the liquidation_cascades model's, on the same loaded data."""
    modelled = {
        (row["coin"], utc_wall_time(row["started_at"])): row
        for row in rows(pipeline, "SELECT * FROM {d}.liquidation_cascades")
    }
    reported = {
        (row["coin"], utc_wall_time(row["started_at"])): row
        for row in read_report_data(pipeline.dataset()).cascades
    }
    assert reported.keys() == modelled.keys()
    for key, cascade in reported.items():
        model = modelled[key]
        assert utc_wall_time(cascade["ended_at"]) == utc_wall_time(model["ended_at"])
        assert (cascade["fills"], cascade["wallets"]) == (model["fills"], model["wallets"])
        assert (cascade["first_price"], cascade["last_price"]) == (
            model["first_price"],
            model["last_price"],
        )
        assert cascade["notional"] == pytest.approx(model["notional_usd"], rel=1e-9)
        assert cascade["longs_notional"] == pytest.approx(model["longs_notional_usd"], rel=1e-9)


def assert_models_match(pipeline: dlt.Pipeline, sim: Simulator) -> None:
    """The marts hold the simulator's hours, cascades, latest heatmaps and latest risk; the
    report finds the same cascades."""
    assert_hourly_matches(pipeline, sim)
    assert_report_finds_the_models_cascades(pipeline)
    fills = sim.expected_fills()
    cascades = {
        (row["coin"], epoch_ms(row["started_at"].isoformat() + "Z")): row
        for row in rows(pipeline, "SELECT * FROM {d}.liquidation_cascades")
    }
    expected = expected_cascades(fills)
    assert cascades.keys() == expected.keys()
    assert len(cascades) >= 5
    for key, cascade in expected.items():
        landed = cascades[key]
        assert landed["cascade_id"] == f"{key[0]}@{key[1]}"
        assert (landed["fills"], landed["wallets"]) == (cascade["fills"], cascade["wallets"])
        assert landed["notional_usd"] == pytest.approx(cascade["notional"], rel=1e-9)
        assert landed["price_move_pct"] == pytest.approx(
            (cascade["last_price"] - cascade["first_price"]) / cascade["first_price"] * 100
        )

    latest = rows(pipeline, "SELECT * FROM {d}.heatmap_latest ORDER BY coin, price_bin_index")
    for coin in HEATMAP_COINS:
        bins = [row for row in latest if row["coin"] == coin]
        assert len(bins) == len(sim.expected_heatmap(coin))
        mark = expected_mark(fills, coin)
        assert {row["mark_price"] for row in bins} == {mark}
        for row in bins:
            middle = (row["price_bin_start"] + row["price_bin_end"]) / 2
            assert row["distance_pct"] == pytest.approx((middle - mark) / mark * 100)
        assert {row["side_of_mark"] for row in bins} == {"below", "at", "above"}

    risk = rows(pipeline, "SELECT * FROM {d}.risk_latest")
    assert len(risk) == sum(len(sim.expected_risk(s)) for s in cohorts(sim))
    assert {(row["segment_id"], row["segment_name"]) for row in risk} == set(cohorts(sim).items())
    smart = {r["coin"]: r for r in risk if r["segment_id"] == 9}
    for item in sim.expected_risk(9):
        assert smart[item["coin"]]["risk_value_usd"] == item["riskValue"]
        assert smart[item["coin"]]["segment_category"] == "pnl"


@pytest.mark.slow
def test_models_build_and_pass_their_tests_on_postgres(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination: Any
):
    pipeline = make_pipeline(postgres_destination)
    pipeline.run(source_for(simulator))

    results = run_models(pipeline)

    built = {result.model_name for result in results if result.status == "success"}
    tests = [result for result in results if result.status not in ("success",)]
    assert built == MODELS
    assert len(tests) >= MODEL_TESTS
    assert {result.status for result in tests} == {"pass"}
    assert_models_match(pipeline, simulator)


@pytest.mark.slow
def test_models_command_builds_passes_and_rebuilds_the_hours_new_fills_touch(
    simulator: Simulator,
    make_pipeline: PipelineFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    """On DuckDB, through the command: one run with dbt's tests, then an incremental one."""
    monkeypatch.chdir(tmp_path)
    pipeline = make_pipeline(dlt.destinations.duckdb(str(tmp_path / "models.duckdb")))
    pipeline.run(source_for(simulator))
    command = ["models", "--destination", "models.duckdb", "--dataset", pipeline.dataset_name]
    command += ["--pipeline-name", pipeline.pipeline_name]
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "pipelines"))
    done = main_without("dbt", command)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0].startswith(
        "hypertracker: error: HyperTrackerError: hypertracker models needs dbt and "
        "dbt.adapters.duckdb, which are not installed: install them with "
        'pip install -e ".[models]" in the project\'s clone'
    )
    assert main(command) == 0
    built = capsys.readouterr().out
    summary = re.search(r"Models: (\d+) built in dataset \S+, (\d+) tests passed", built)
    assert summary, built
    assert int(summary[1]) == len(MODELS)
    assert int(summary[2]) >= MODEL_TESTS
    assert_models_match(pipeline, simulator)
    first = rows(pipeline, "SELECT COUNT(*) AS n FROM {d}.liquidations_hourly")[0]["n"]

    simulator.advance_state(new_fills=30, late_fills=6)
    pipeline.run(source_for(simulator))
    assert main([*command, "--skip-tests"]) == 0

    assert f"Models: {len(MODELS)} built in dataset {pipeline.dataset_name}\n" in (
        capsys.readouterr().out
    )
    assert rows(pipeline, "SELECT COUNT(*) AS n FROM {d}.liquidations_hourly")[0]["n"] > first
    assert_models_match(pipeline, simulator)
    snapshots = rows(pipeline, "SELECT DISTINCT snapshot_at FROM {d}.heatmap_history")
    assert len(snapshots) == 2
    assert not [path.name for path in DBT_PACKAGE.iterdir() if path.name in WRITTEN_BY_DBT]
