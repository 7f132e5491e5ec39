"""What the speed work must keep: one set of types, the fewest requests, and pacing without 429s.

No timing is asserted here: speed is measured by benchmarks/ as ratios against a baseline.
"""

import json
import math
from itertools import pairwise

import dlt
import orjson
import pendulum
import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    FILL_KEY,
    PAGE_SIZE,
    PipelineFactory,
    assert_fills_equal,
    cohorts,
    fills_requests,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source.schema import (
    FILL_FIELDS,
    column_hints,
    read_page,
    rows_to_arrow,
)

TABLE = "liquidation_fills"
ODD_ROWS = [
    {"time": "2026-05-28T17:27:35.681Z", "px": 81, "sz": 0.5, "builderFee": 0, "oid": 7},
    {"time": "2026-05-28T19:27:35.681+02:00", "builderFee": 0.25, "crossed": None, "builder": ""},
    {"time": "2026-05-28T17:27:36Z", "address": "0xAB", "tid": None, "fee": 1},
    {},
]
"""Rows with the traps of the wire: integers where floats are declared, missing and null
fields, an empty string, time zone offsets."""


def page_body(rows: list[dict], cursor: str | None = "next") -> bytes:
    """A fills page as the API sends it."""
    return orjson.dumps({"fills": rows, "nextCursor": cursor})


def simulator_page(sim: Simulator) -> bytes:
    """A full page of the simulator's fills, as sent over HTTP."""
    answer = requests.get(
        f"{sim.url}/api/external/fills/liquidation",
        params={"limit": PAGE_SIZE},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    return answer.content


@pytest.mark.parametrize("source", ["odd rows", "simulator page"])
def test_arrow_reader_gives_the_table_orjson_gives(source: str, simulator: Simulator):
    body = page_body(ODD_ROWS) if source == "odd rows" else simulator_page(simulator)
    page = read_page(body, "fills", FILL_FIELDS)
    assert page is not None
    expected = rows_to_arrow(orjson.loads(body)["fills"], FILL_FIELDS)
    assert page["fills"].schema == expected.schema
    assert page["fills"].equals(expected)
    assert page["nextCursor"] == orjson.loads(body)["nextCursor"]


@pytest.mark.parametrize(
    "body",
    [
        page_body([{"time": "2026-05-28T17:27:35.681Z", "newField": 1}]),
        page_body([{"px": "81.5"}]),
        page_body([{"oid": 1.5}]),
        b'{"fills": [{"px": 1}',
        b"<html>Just a moment...</html>",
        page_body([]) + b"\n" + page_body([]),
    ],
    ids=["new field", "number as text", "float id", "cut short", "html", "two objects"],
)
def test_pages_that_do_not_fit_are_left_to_orjson(body: bytes):
    assert read_page(body, "fills", FILL_FIELDS) is None


def column_types(pipeline: dlt.Pipeline) -> dict[str, tuple[str, bool, bool]]:
    """The fills table's columns in the pipeline's dlt schema: type, nullable, in the key."""
    columns = pipeline.default_schema.get_table_columns("liquidation_fills")
    return {
        name: (column["data_type"], column.get("nullable", True), column.get("primary_key", False))
        for name, column in columns.items()
        if not name.startswith("_dlt")
    }


def test_every_page_gets_the_declared_types(make_pipeline: PipelineFactory):
    """Pages of 7 fills differ in what they hold; one run also gets a field the API added."""
    pipelines = {}
    for seed, new_field in ((13, "rebateTier"), (14, "")):
        with Simulator(seed=seed, fills=700, api_key=API_KEY) as sim:
            fills = sim.expected_fills()
            assert {type(fill["builderFee"]) for fill in fills if "builderFee" in fill} == {
                int,
                float,
            }
            assert any("tid" not in fill for fill in fills)
            assert any(fill.get("builder") == "" for fill in fills)
            sim.faults.new_field = new_field
            pipelines[new_field] = make_pipeline(name=f"seed{seed}")
            source = source_for(sim, page_size=7).with_resources("liquidation_fills")
            pipelines[new_field].run(source)
            assert_fills_equal(pipelines[new_field], fills)

    declared = {
        name: (hint["data_type"], hint.get("nullable", True), name in FILL_KEY)
        for name, hint in column_hints(FILL_FIELDS).items()
    }
    assert column_types(pipelines[""]) == declared
    assert column_types(pipelines["rebateTier"]) == {
        **declared,
        "rebate_tier": ("text", True, False),
    }
    values = [json.loads(row["rebate_tier"]) for row in landed(pipelines["rebateTier"], TABLE)]
    assert {type(value) for value in values} == {int, dict}


def test_backfill_spends_one_request_per_full_page_and_window(make_pipeline: PipelineFactory):
    with Simulator(seed=21, fills=25_000, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        source = source_for(sim, end_date=pendulum.now("UTC"))
        pipeline.run(source.with_resources(TABLE))
        windows = len([params for params in fills_requests(sim) if "nextCursor" not in params])
        pages = math.ceil(25_000 / PAGE_SIZE)
        assert windows >= 5
        assert set(sim.request_counts()) == {"fills", "status"}
        assert sim.request_counts()["status"] == 1, "an end this close to now stops at lastUpdate"
        assert sim.request_counts()["fills"] <= 1.01 * pages + windows
        assert_fills_equal(pipeline, sim.expected_fills())


def test_history_windows_are_read_side_by_side(make_pipeline: PipelineFactory):
    """One window's pages follow each other: each is asked for after the last one's answer, which
    the simulator holds back `latency` seconds. Two windows' requests arriving closer together
    than that were in flight at once."""
    latency = 0.3
    with Simulator(seed=21, fills=3000, api_key=API_KEY) as sim:
        sim.faults.latency = latency
        pipeline = make_pipeline()
        pipeline.run(source_for(sim).with_resources(TABLE))
        arrivals = sorted(
            (record.time, record.params["start"])
            for record in sim.requests
            if record.endpoint == "fills"
        )
        assert len({start for _, start in arrivals}) >= 5
        overlapping = [
            (first, second)
            for (first, start), (second, other_start) in pairwise(arrivals)
            if start != other_start and second - first < latency
        ]
        assert overlapping
        assert_fills_equal(pipeline, sim.expected_fills())


def test_rerun_without_new_data_spends_one_fills_request_per_filter(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    coins = ["BTC", "ETH", "HYPE"]
    pipeline = make_pipeline()
    pipeline.run(source_for(simulator, coins=coins, side="B"))
    simulator.reset_requests()
    pipeline.run(source_for(simulator, coins=coins, side="B"))
    assert simulator.request_counts() == {"status": 1, "segments": 1}, "same version: no walk"
    simulator.advance_state()
    simulator.reset_requests()
    pipeline.run(source_for(simulator, coins=coins, side="B"))
    assert simulator.request_counts()["fills"] == len(coins), "a new version: one walk a filter"
    assert all(params["side"] == "B" for params in fills_requests(simulator))


PACING_SETTINGS = {"heatmap_coins": ["BTC", "ETH"], "page_size": 100}
"""About 28 requests from parallel resources: 16 risk, 2 exports, 8 fills, status, segments."""


def statuses_of_a_run(make_pipeline: PipelineFactory, requests_per_minute: int | None) -> list[int]:
    """Loads everything, paced or not, from a simulator that allows 120 requests a minute counted
    over 10 s (20 requests); returns the statuses the API host answered."""
    with Simulator(
        seed=5, fills=200, api_key=API_KEY, rate_limit_per_minute=120, rate_limit_window=10
    ) as sim:
        pipeline = make_pipeline()
        source = source_for(sim, requests_per_minute=requests_per_minute, **PACING_SETTINGS)
        try:
            pipeline.run(source)
        except PipelineStepFailed:
            assert requests_per_minute is None, "the paced run failed"
        else:
            assert_fills_equal(pipeline, sim.expected_fills())
            risk = landed(pipeline, "liquidation_risk")
            assert {row["segment_id"] for row in risk} == set(cohorts(sim))
        return [record.status for record in sim.requests if record.host == "api"]


@pytest.mark.slow
def test_pacing_keeps_parallel_resources_under_the_rate_limit(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    """Unpaced, the ~28 requests come within seconds: more than the 20 a 10 s window holds.

    Paced at 100 a minute (one start every 0.61 s), no 10 s window holds more than 17 of them,
    whichever thread sends them: a margin of 3 requests, ~1.8 s of scheduling delay. One attempt
    per request, so that a single 429 fails the run instead of being retried away.
    """
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "1")
    unpaced = statuses_of_a_run(make_pipeline, None)
    assert unpaced.count(429) > 0
    paced = statuses_of_a_run(make_pipeline, 100)
    assert paced.count(429) == 0
    assert len(paced) >= 25
