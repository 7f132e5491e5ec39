"""End to end: the source through real dlt pipelines, against the simulator over HTTP."""

import threading
from collections import Counter
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import deltalake
import dlt
import orjson
import pendulum
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    HEATMAP_COINS,
    TABLES,
    PipelineFactory,
    assert_fills_equal,
    cohorts,
    comparable,
    epoch_ms,
    fills_requests,
    high_water_marks,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.commands import main
from hypertracker_source.fills.windows import window_end


def expected_heatmap_rows(sim: Simulator, coins: tuple[str, ...]) -> int:
    """How many heatmap bins the simulator holds for these coins now."""
    return sum(len(sim.expected_heatmap(coin)) for coin in coins)


def test_first_load_lands_everything_once(simulator: Simulator, make_pipeline: PipelineFactory):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator))

    assert_fills_equal(pipeline, simulator.expected_fills())
    heatmap = landed(pipeline, "liquidation_heatmap")
    assert len(heatmap) == expected_heatmap_rows(simulator, HEATMAP_COINS)
    assert {row["coin"] for row in heatmap} == set(HEATMAP_COINS)
    assert {row["snapshot_at"] for row in heatmap} == {simulator.last_update}
    risk = landed(pipeline, "liquidation_risk")
    assert Counter(row["segment_id"] for row in risk) == {
        segment_id: len(simulator.expected_risk(segment_id)) for segment_id in cohorts(simulator)
    }
    segments = landed(pipeline, "segments")
    assert {row["id"]: row["name"] for row in segments} == {
        segment["id"]: segment["name"] for segment in simulator.segments
    }


def test_columns_have_declared_types(simulator: Simulator, make_pipeline: PipelineFactory):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator, heatmap_coins=["BTC"], segment_ids=[9]))

    with pipeline.sql_client() as client:
        types = dict(
            client.execute_sql(
                "SELECT table_name || '.' || column_name, data_type FROM information_schema.columns"
                " WHERE table_schema = %s",
                pipeline.dataset_name,
            )
        )
    expected = {
        "liquidation_fills.time": "TIMESTAMP WITH TIME ZONE",
        "liquidation_fills.tid": "BIGINT",
        "liquidation_fills.oid": "BIGINT",
        "liquidation_fills.px": "DOUBLE",
        "liquidation_fills.builder_fee": "DOUBLE",
        "liquidation_fills.closed_pnl": "DOUBLE",
        "liquidation_fills.liquidation_mark_px": "DOUBLE",
        "liquidation_fills.crossed": "BOOLEAN",
        "liquidation_heatmap.price_bin_index": "BIGINT",
        "liquidation_heatmap.liquidation_value": "DOUBLE",
        "liquidation_heatmap.most_impacted_segment": "BIGINT",
        "liquidation_heatmap.snapshot_at": "TIMESTAMP WITH TIME ZONE",
        "liquidation_risk.segment_id": "BIGINT",
        "liquidation_risk.percent_risk": "DOUBLE",
        "liquidation_risk.snapshot_at": "TIMESTAMP WITH TIME ZONE",
        "segments.id": "BIGINT",
    }
    assert {name: types.get(name) for name in expected} == expected


def test_incremental_reads_only_new_pages(simulator: Simulator, make_pipeline: PipelineFactory):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator))
    first_run = simulator.request_counts()
    windows = len([p for p in fills_requests(simulator) if "nextCursor" not in p])
    assert first_run["fills"] <= windows + len(simulator.expected_fills()) // 1000

    simulator.reset_requests()
    pipeline.run(source_for(simulator))
    assert simulator.request_counts() == {"status": 1, "segments": 1}, "same version: no walk"
    assert_fills_equal(pipeline, simulator.expected_fills())

    simulator.advance_state(new_fills=40, late_fills=7, late_by=timedelta(minutes=20))
    simulator.reset_requests()
    pipeline.run(source_for(simulator))
    counts = simulator.request_counts()
    assert counts["fills"] == 1
    assert counts["export"] == len(HEATMAP_COINS)
    assert counts["risk"] == len(cohorts(simulator))
    (params,) = fills_requests(simulator)
    assert "start" not in params and "end" not in params, "a walk down from the newest fill"
    assert_fills_equal(pipeline, simulator.expected_fills())
    assert len(landed(pipeline, "liquidation_risk")) == 2 * sum(
        len(simulator.expected_risk(segment_id)) for segment_id in cohorts(simulator)
    )


def test_fills_older_than_lag_need_the_backfill_command(
    simulator: Simulator, make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator, lag=600))
    simulator.advance_state(late_fills=5, late_by=timedelta(minutes=30))
    pipeline.run(source_for(simulator, lag=600))
    assert len(landed(pipeline, "liquidation_fills")) == len(simulator.expected_fills()) - 5

    marks = high_water_marks(pipeline)
    late = pendulum.now("UTC").subtract(minutes=30)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", API_KEY)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__BASE_URL", simulator.url)
    monkeypatch.setenv("DLT_DATA_DIR", str(Path(pipeline.pipelines_dir).parent))
    backfill = [
        *("load", "--resources", "liquidation_fills", "--pipeline-name", pipeline.pipeline_name),
        *("--destination", pipeline.destination.config_params["credentials"]),
        *("--dataset", pipeline.dataset_name),
        *("--start-date", late.subtract(hours=1).isoformat(), "--end-date", late.isoformat()),
    ]
    assert main(backfill) == 0
    assert_fills_equal(pipeline, simulator.expected_fills())
    assert high_water_marks(pipeline) == marks


def test_coin_added_later_gets_its_whole_history(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator, coins=["BTC"]).with_resources("liquidation_fills"))
    assert_fills_equal(pipeline, simulator.expected_fills(coin="BTC"))

    simulator.reset_requests()
    pipeline.run(source_for(simulator, coins="BTC,ETH").with_resources("liquidation_fills"))
    eth_starts = [epoch_ms(p["start"]) for p in fills_requests(simulator) if p["coin"] == "ETH"]
    assert min(eth_starts) == epoch_ms("2025-07-27T00:00:00Z")
    assert_fills_equal(
        pipeline, simulator.expected_fills(coin="BTC") + simulator.expected_fills(coin="ETH")
    )


@pytest.mark.parametrize("fill_order", ["newest", "notes"])
def test_history_longer_than_three_months_in_either_order(
    fill_order: str, make_pipeline: PipelineFactory
):
    with Simulator(seed=11, fills=4000, api_key=API_KEY, fill_order=fill_order) as sim:
        pipeline = make_pipeline()
        pipeline.run(source_for(sim, page_size=250).with_resources("liquidation_fills"))
        first_pages = [params for params in fills_requests(sim) if "nextCursor" not in params]
        assert len(first_pages) >= 5
        for params in first_pages:
            if "end" in params:
                start = pendulum.parse(params["start"])
                assert pendulum.parse(params["end"]) <= window_end(start)
        assert_fills_equal(pipeline, sim.expected_fills())


def test_filters_by_address_and_side(simulator: Simulator, make_pipeline: PipelineFactory):
    address = simulator.expected_fills()[0]["address"]
    pipeline = make_pipeline()
    source = source_for(simulator, address=address.upper().replace("0X", "0x"), side="B")
    pipeline.run(source.with_resources("liquidation_fills"))
    expected = simulator.expected_fills(address=address, side="B")
    assert expected
    assert_fills_equal(pipeline, expected)


@pytest.mark.parametrize(
    ("export_mode", "gzip_files"),
    [("redirect", False), ("redirect", True), ("download_url", False), ("inline", True)],
)
def test_heatmap_answers(export_mode: str, gzip_files: bool, make_pipeline: PipelineFactory):
    with Simulator(
        seed=3, fills=10, api_key=API_KEY, export_mode=export_mode, gzip_files=gzip_files
    ) as sim:
        pipeline = make_pipeline()
        pipeline.run(
            source_for(sim, heatmap_coins=["btc", "xyz:MSTR"]).with_resources("liquidation_heatmap")
        )
        rows = landed(pipeline, "liquidation_heatmap")
        for coin in ("BTC", "xyz:MSTR"):
            bins = sorted(
                (row for row in rows if row["coin"] == coin), key=lambda r: r["price_bin_index"]
            )
            assert [
                (b["price_bin_index"], b["liquidation_value"], b["most_impacted_segment"])
                for b in bins
            ] == [
                (b["priceBinIndex"], b["liquidationValue"], b["mostImpactedSegment"])
                for b in sim.expected_heatmap(coin)
            ]
        assert sim.request_counts()["export"] == 2
        assert not [r for r in sim.requests if r.host == "files" and "Authorization" in r.headers]


def test_expired_link_is_refreshed(simulator: Simulator, make_pipeline: PipelineFactory):
    simulator.faults.expire_next_links = 2
    pipeline = make_pipeline()
    pipeline.run(
        source_for(simulator, heatmap_coins=["HYPE"]).with_resources("liquidation_heatmap")
    )
    assert len(landed(pipeline, "liquidation_heatmap")) == len(simulator.expected_heatmap("HYPE"))
    assert simulator.request_counts()["export"] == 3
    assert [r.status for r in simulator.requests if r.host == "files"] == [403, 403, 200]


def test_risk_pages_past_one_page_for_every_segment(make_pipeline: PipelineFactory):
    with Simulator(seed=5, fills=10, api_key=API_KEY, risk_coins=1100) as sim:
        pipeline = make_pipeline()
        source = source_for(sim)
        cohorts_risk = [name for name in source.resources if name.startswith("liquidation_risk_")]
        pipeline.run(source.with_resources(*cohorts_risk))
        risk = landed(pipeline, "liquidation_risk")
        for segment_id in cohorts(sim):
            expected = {item["coin"]: item["percentRisk"] for item in sim.expected_risk(segment_id)}
            assert {
                row["coin"]: row["percent_risk"] for row in risk if row["segment_id"] == segment_id
            } == expected
        assert len(risk) == 16 * 1100
        assert sim.request_counts()["risk"] == 16 * 3


def test_one_segment_can_be_picked(simulator: Simulator, make_pipeline: PipelineFactory):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator).with_resources("liquidation_risk_smart_money"))
    assert {row["segment_id"] for row in landed(pipeline, "liquidation_risk")} == {9}
    assert simulator.request_counts()["risk"] == 1


SNAPSHOTS = ("liquidation_heatmap", "liquidation_risk_fish")
"""The heatmaps and one cohort's risk: the snapshot resources, small."""


def snapshot_rows(pipeline: dlt.Pipeline) -> list[Counter[tuple]]:
    """The landed heatmap and risk rows, each table as a multiset."""
    return [
        Counter(tuple(sorted(row.items())) for row in landed(pipeline, table))
        for table in ("liquidation_heatmap", "liquidation_risk")
    ]


def test_snapshot_rerun_in_same_version_adds_nothing(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator).with_resources(*SNAPSHOTS))
    before = snapshot_rows(pipeline)
    assert all(before)
    simulator.reset_requests()
    pipeline.run(source_for(simulator).with_resources(*SNAPSHOTS))
    assert simulator.request_counts() == {"status": 1}
    assert snapshot_rows(pipeline) == before


def test_forced_snapshot_refresh_in_same_version_refetches_and_adds_nothing(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    source = source_for(simulator, segment_ids=[1, 2])
    pipeline.run(source.with_resources(*SNAPSHOTS))
    rows = snapshot_rows(pipeline)
    before = len(landed(pipeline, "liquidation_heatmap")), len(landed(pipeline, "liquidation_risk"))
    simulator.reset_requests()
    forced = source_for(simulator, segment_ids=[1, 2], refresh_snapshots=True)
    pipeline.run(forced.with_resources(*SNAPSHOTS))
    assert simulator.request_counts()["export"] == len(HEATMAP_COINS)
    assert simulator.request_counts()["risk"] == 1
    after = len(landed(pipeline, "liquidation_heatmap")), len(landed(pipeline, "liquidation_risk"))
    assert after == before
    assert snapshot_rows(pipeline) == rows


def landed_anywhere(pipeline: dlt.Pipeline, table: str) -> list[dict]:
    """A table's rows from a SQL destination, or from the delta table on the bucket."""
    if pipeline.destination.destination_name != "filesystem":
        return landed(pipeline, table)
    bucket = pipeline.destination.config_params["bucket_url"]
    path = f"{bucket}/{pipeline.dataset_name}/{table}"
    rows = deltalake.DeltaTable(path).to_pyarrow_table().to_pylist()
    return [{k: v for k, v in row.items() if not k.startswith("_dlt")} for row in rows]


def test_destinations_land_the_same_rows(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination, tmp_path
):
    settings = {"coins": ["BTC", "HYPE"], "heatmap_coins": ["ETH"], "segment_ids": [4, 12]}
    runs = {
        "duckdb": ({}, {}),
        "postgres": ({}, {}),
        "delta": ({"merge_strategy": "upsert"}, {"table_format": "delta"}),
    }
    pipelines = {
        "duckdb": make_pipeline(name="duckdb"),
        "postgres": make_pipeline(postgres_destination, name="postgres"),
        "delta": make_pipeline(dlt.destinations.filesystem(str(tmp_path / "bucket")), "delta"),
    }
    for version in (1, 2):
        for name, pipeline in pipelines.items():
            source_settings, run_settings = runs[name]
            pipeline.run(source_for(simulator, **settings, **source_settings), **run_settings)
        if version == 1:
            simulator.advance_state(new_fills=30, late_fills=5)

    landed_by_destination = {
        name: {table: comparable(landed_anywhere(pipeline, table)) for table in TABLES}
        for name, pipeline in pipelines.items()
    }
    assert landed_by_destination["duckdb"] == landed_by_destination["postgres"]
    assert landed_by_destination["duckdb"] == landed_by_destination["delta"]
    expected = simulator.expected_fills(coin="BTC") + simulator.expected_fills(coin="HYPE")
    assert len(landed_by_destination["delta"]["liquidation_fills"]) == len(expected)
    assert len(landed_by_destination["delta"]["liquidation_heatmap"]) == 2 * len(
        simulator.expected_heatmap("ETH")
    )


STUCK_PAGES = 50
"""Pages the stuck API hands out with the same cursor before it ends the query: a client that
follows the cursor blindly ends too, instead of hanging, and its test fails fast."""


class StuckCursorServer(ThreadingHTTPServer):
    """An API whose fills pages hand back the same nextCursor (the trap of `cursor=`)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), StuckCursorHandler)
        self.pages = 0
        self.lock = threading.Lock()

    def next_cursor(self) -> str | None:
        """The same cursor for the first STUCK_PAGES pages, then none."""
        with self.lock:
            self.pages += 1
            return "c2FtZQ==" if self.pages < STUCK_PAGES else None


class StuckCursorHandler(BaseHTTPRequestHandler):
    """Answers every request with one fill and the stuck server's cursor."""

    server: StuckCursorServer

    def do_GET(self) -> None:
        """Answers the status, and to fills one fill and the stuck server's cursor."""
        if self.path.endswith("/hypertracker/state/status"):
            answer = {"lastUpdate": "2026-11-02T00:00:00.000Z", "nextUpdate": None}
        else:
            answer = {"fills": [STUCK_FILL], "nextCursor": self.server.next_cursor()}
        body = orjson.dumps(answer)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        """Stays quiet."""


STUCK_FILL = {"time": "2026-05-28T17:27:35.681Z", "address": "0xab", "coin": "BTC", "side": "A"}


@pytest.mark.timeout(60)
def test_repeated_cursor_is_an_error_not_a_loop(make_pipeline: PipelineFactory):
    server = StuckCursorServer()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        source = hypertracker(
            api_key=API_KEY,
            base_url=f"http://127.0.0.1:{server.server_port}",
            start_date="2026-11-01",
        )
        pipeline = make_pipeline()
        with pytest.raises(PipelineStepFailed, match="same nextCursor twice"):
            pipeline.run(source.with_resources("liquidation_fills"))
        assert pipeline.state.get("sources", {}).get("hypertracker") is None
        assert server.pages < STUCK_PAGES
    finally:
        server.shutdown()
        server.server_close()


def test_a_quiet_rightly_spelled_coin_spends_no_spelling_probe(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    assert simulator.expected_fills(coin="kPEPE")
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator, coins=["kPEPE"], lag=0).with_resources("liquidation_fills"))
    simulator.advance_state(new_fills=0)
    simulator.reset_requests()
    pipeline.run(source_for(simulator, coins=["kPEPE"], lag=0).with_resources("liquidation_fills"))
    fills = [record for record in simulator.requests if record.endpoint == "fills"]
    assert [record.params.get("coin") for record in fills] == ["kPEPE"]
