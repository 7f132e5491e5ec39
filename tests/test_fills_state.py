"""Fills marks follow what the API has shown: late indexers, wrong clocks, quiet coins, chunks."""

from datetime import timedelta
from typing import Any

import dlt
import pendulum
import pytest
import requests
import time_machine
from dlt.sources.rest_api import rest_api_source
from helpers import (
    API_KEY,
    FILLS,
    PipelineFactory,
    assert_fills_equal,
    fills_state,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source import RunStats, load_until_caught_up, pending_fill_reads
from hypertracker_source.config.defaults import HISTORY_START
from hypertracker_source.fills.windows import iso, split_windows
from hypertracker_source.schema import FILL_PRIMARY_KEY

QUIET_COIN = "xyz:MSTR"
"""A market of the seed-7 history that the fills appended below never touch."""


def fills_only(sim: Simulator, **settings: Any) -> Any:
    """The source's fills resource alone, pointed at a simulator."""
    return source_for(sim, **settings).with_resources("liquidation_fills")


def fills_requests(sim: Simulator) -> int:
    """How many fills requests the simulator answered since its log was emptied."""
    return sim.request_counts()["fills"]


def run_counted(pipeline: Any, sim: Simulator, **settings: Any) -> int:
    """Runs the fills resource once and returns the fills requests it spent."""
    sim.reset_requests()
    pipeline.run(fills_only(sim, **settings))
    return fills_requests(sim)


@pytest.mark.parametrize("ticking_status", [False, True], ids=["status frozen", "status ticks"])
@pytest.mark.parametrize("stall", [timedelta(hours=3), timedelta(days=2)], ids=["3 h", "2 days"])
def test_a_late_indexer_loses_no_fill(
    simulator: Simulator,
    make_pipeline: PipelineFactory,
    stall: timedelta,
    ticking_status: bool,
):
    pipeline = make_pipeline()
    pipeline.run(fills_only(simulator))
    simulator.stall_indexing(ticking_status=ticking_status)
    with time_machine.travel(pendulum.now("UTC") + stall):
        simulator.advance_state(new_fills=100, spread=stall)
        during = run_counted(pipeline, simulator)
        assert during == (1 if ticking_status else 0), "the stall's run walks at a new version only"
        assert_fills_equal(pipeline, simulator.expected_fills())

        simulator.release_indexing()
        assert run_counted(pipeline, simulator) == 1, "the run after the catch-up"
    assert_fills_equal(pipeline, simulator.expected_fills())
    assert len(landed(pipeline, "liquidation_fills")) == 3000 + 100


@pytest.mark.parametrize("skew", [timedelta(hours=3), timedelta(hours=-3)], ids=["ahead", "behind"])
def test_a_wrong_worker_clock_loses_nothing_and_fails_nothing(
    make_pipeline: PipelineFactory, skew: timedelta
):
    with Simulator(seed=7, fills=3000, api_key=API_KEY, clock_offset=-skew) as sim:
        pipeline = make_pipeline()
        pipeline.run(fills_only(sim))
        for _ in range(2):
            sim.advance_state(new_fills=60, late_fills=5, late_by=timedelta(minutes=20))
            assert run_counted(pipeline, sim) == 1
        assert_fills_equal(pipeline, sim.expected_fills())


def test_a_quiet_coin_costs_one_request_a_run(simulator: Simulator, make_pipeline: PipelineFactory):
    history = simulator.expected_fills(coin=QUIET_COIN)
    assert history
    pipeline = make_pipeline()
    pipeline.run(fills_only(simulator, coins=[QUIET_COIN]))
    for months in (4, 5):
        with time_machine.travel(pendulum.now("UTC").add(months=months)):
            simulator.advance_state(new_fills=50)
            assert run_counted(pipeline, simulator, coins=[QUIET_COIN]) == 1
    assert simulator.expected_fills(coin=QUIET_COIN) == history, "the coin stayed quiet"
    assert_fills_equal(pipeline, history)


def test_late_fills_within_lag_merge_once(simulator: Simulator, make_pipeline: PipelineFactory):
    pipeline = make_pipeline()
    pipeline.run(fills_only(simulator))
    simulator.advance_state(new_fills=30, late_fills=12, late_by=timedelta(minutes=40))
    assert run_counted(pipeline, simulator) == 1
    simulator.advance_state(late_fills=3, late_by=timedelta(minutes=50))
    assert run_counted(pipeline, simulator) == 1
    assert_fills_equal(pipeline, simulator.expected_fills())


def test_an_earlier_start_date_loads_the_history_it_adds_once(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    first_day = pendulum.parse(simulator.expected_fills()[1500]["time"])
    pipeline = make_pipeline()
    pipeline.run(fills_only(simulator, start_date=first_day))
    newer = [f for f in simulator.expected_fills() if pendulum.parse(f["time"]) >= first_day]
    assert_fills_equal(pipeline, newer)

    earlier = first_day.subtract(days=200)
    pipeline.run(fills_only(simulator, start_date=earlier))
    expected = [f for f in simulator.expected_fills() if pendulum.parse(f["time"]) >= earlier]
    assert len(expected) > len(newer)
    assert_fills_equal(pipeline, expected)
    assert run_counted(pipeline, simulator, start_date=earlier) == 0, "loaded once"
    assert_fills_equal(pipeline, expected)


def test_a_long_history_loads_in_checkpointed_chunks(make_pipeline: PipelineFactory):
    with Simulator(seed=5, fills=6000, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        settings = {"page_size": 200, "max_fills_per_run": 1500, "run_stats": RunStats()}
        chunks: list[int] = []
        loads = load_until_caught_up(
            pipeline,
            lambda: fills_only(sim, **settings),
            lambda number, info: chunks.append(
                pipeline.last_trace.last_normalize_info.row_counts.get("liquidation_fills", 0)
            ),
        )
        assert len(loads) == len(chunks) >= 4
        assert max(chunks) <= 1500 + 200 * 6, "a chunk holds its budget and the pages in flight"
        assert sum(chunks) == 6000
        assert pending_fill_reads(pipeline) == 0
        assert_fills_equal(pipeline, sim.expected_fills())
        requests = sim.request_counts()
        assert requests["fills"] <= 6000 / 200 + 7, "one per page and per window"
        assert requests["status"] == 1, "the first chunk's status serves every chunk of the load"
        assert all(not marks["backlog"] for marks in fills_state(pipeline).values())


def test_a_scheduled_run_loads_one_chunk_and_the_next_resumes(make_pipeline: PipelineFactory):
    with Simulator(seed=5, fills=3000, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        pipeline.run(fills_only(sim, page_size=100, max_fills_per_run=1000))
        first = len(landed(pipeline, "liquidation_fills"))
        assert 1000 <= first <= 1000 + 100 * 6
        assert pending_fill_reads(pipeline) > 0
        requests = sim.request_counts()["fills"]
        while pending_fill_reads(pipeline):
            pipeline.run(fills_only(sim, page_size=100, max_fills_per_run=1000))
        assert_fills_equal(pipeline, sim.expected_fills())
        assert sim.request_counts()["fills"] - requests <= (3000 - first) / 100 + 6


def test_a_history_resumed_under_a_newer_version_loads_the_fills_since(
    make_pipeline: PipelineFactory,
):
    """A history left unfinished (a killed `follow`), resumed once the API has a newer version:
    "caught up" holds the fills that version added, though the windows end at the older one."""
    with Simulator(seed=5, fills=3000, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        settings = {"page_size": 100, "max_fills_per_run": 1000}
        pipeline.run(fills_only(sim, **settings))
        assert pending_fill_reads(pipeline) > 0
        sim.advance_state(new_fills=20)
        load_until_caught_up(pipeline, lambda: fills_only(sim, **settings))
        assert pending_fill_reads(pipeline) == 0
        assert_fills_equal(pipeline, sim.expected_fills())
        assert len(landed(pipeline, "liquidation_fills")) == 3000 + 20


def generic_incremental_source(sim: Simulator, initial_value: str) -> Any:
    """dlt's generic way to load this endpoint: rest_api with an incremental cursor as `start`."""
    endpoint = {
        "path": "fills/liquidation",
        "params": {
            "limit": 1000,
            "start": {
                "type": "incremental",
                "cursor_path": "time",
                "initial_value": initial_value,
                "lag": 3600,
            },
        },
        "data_selector": "fills",
        "paginator": {"type": "cursor", "cursor_path": "nextCursor", "cursor_param": "nextCursor"},
    }
    client = {"base_url": f"{sim.url}/api/external/", "auth": {"type": "bearer", "token": API_KEY}}
    resource = {
        "name": "liquidation_fills",
        "endpoint": endpoint,
        "primary_key": list(FILL_PRIMARY_KEY),
        "write_disposition": "merge",
    }
    return rest_api_source({"client": client, "resources": [resource]})


def test_a_generic_incremental_cursor_never_gets_past_a_pause_of_three_months(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    """Why the marks are hand-written: dlt's incremental cursor, sent as `start`, asks for the
    3 months after its last fill (the API's default `end`), so after a pause longer than that
    it finds nothing, keeps its cursor, and never loads a new fill. Ours walks down to its mark."""
    recent = pendulum.parse(simulator.expected_fills()[-200]["time"])
    generic, ours = make_pipeline(name="generic"), make_pipeline(name="ours")
    generic.run(generic_incremental_source(simulator, iso(recent)))
    ours.run(fills_only(simulator, start_date=recent))
    assert len(landed(generic, "liquidation_fills")) == len(landed(ours, "liquidation_fills"))
    with time_machine.travel(pendulum.now("UTC").add(months=4)):
        simulator.advance_state(new_fills=50)
        for _ in range(2):
            generic.run(generic_incremental_source(simulator, iso(recent)))
            ours.run(fills_only(simulator, start_date=recent))
    assert len(landed(ours, "liquidation_fills")) == len(landed(generic, "liquidation_fills")) + 50


def stored_state_source(resource_state: dict[str, Any]) -> Any:
    """A source of this one's name whose fills resource only stores this state, as an older
    version of it left it."""

    @dlt.source(name="hypertracker")
    def hypertracker() -> Any:
        @dlt.resource(name="liquidation_fills")
        def liquidation_fills() -> Any:
            dlt.current.resource_state().update(resource_state)
            yield from ()

        return liquidation_fills

    return hypertracker()


def test_a_state_written_before_the_marks_object_is_resumed_exactly(
    make_pipeline: PipelineFactory,
):
    """The fills state of a first run cut short after one page, in the JSON shape of 0.4 (the
    reads' dicts in the backlog): the next runs resume the cut window at its stored cursor, read
    the windows left, and load every other fill once."""
    with Simulator(seed=5, fills=3000, api_key=API_KEY) as sim:
        start, last_update = pendulum.parse(HISTORY_START), pendulum.instance(sim.last_update)
        first, *others = split_windows(start, last_update)
        page = requests.get(
            f"{sim.url}{FILLS}",
            {"start": iso(first.start), "end": iso(first.end), "limit": 100},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        ).json()
        assert page["nextCursor"] and len(page["fills"]) == 100
        windows = [
            {
                "start": iso(window.start),
                "end": iso(window.end),
                "kept_from": window.kept_from and iso(window.kept_from),
                "kept_before": window.kept_before and iso(window.kept_before),
            }
            for window in (first, *others)
        ]
        windows[0].update(
            cursor=page["nextCursor"],
            newest=max(fill["time"] for fill in page["fills"]),
            page="0123456789abcdef",
            stalled=0,
        )
        windows[-1]["probe"] = True
        stored = {
            "filters": {
                "coin=*|address=*|side=*": {
                    "loaded_from": iso(start),
                    "history_until": iso(last_update),
                    "backlog": windows,
                }
            }
        }
        pipeline = make_pipeline()
        pipeline.run(stored_state_source(stored))
        assert fills_state(pipeline) == stored["filters"]

        sim.reset_requests()
        load_until_caught_up(pipeline, lambda: fills_only(sim, page_size=100))
        unread = [fill for fill in sim.expected_fills() if fill not in page["fills"]]
        assert_fills_equal(pipeline, unread)
        assert len(unread) == 3000 - 100
        assert pending_fill_reads(pipeline) == 0
        marks = fills_state(pipeline)["coin=*|address=*|side=*"]
        assert marks["loaded_from"] == iso(start) and marks["history_until"] == iso(last_update)
        assert marks["newest"] == sim.expected_fills()[-1]["time"]
        assert sim.request_counts()["fills"] <= (3000 - 100) / 100 + len(windows) + 1


def test_a_one_page_budget_loads_every_coin_once_and_ends_caught_up(
    make_pipeline: PipelineFactory,
):
    """The stuck pipeline: one page a run, two coins. A caught-up coin's walk took every run's
    page and the other coin's history never loaded; "until caught up" stopped with reads left."""
    with Simulator(seed=7, fills=3000, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        settings = {"coins": ["BTC", "HYPE"], "page_size": 500, "max_fills_per_run": 500}
        expected = sim.expected_fills(coin="BTC") + sim.expected_fills(coin="HYPE")
        loads = load_until_caught_up(pipeline, lambda: fills_only(sim, **settings))
        assert len(loads) > 2, "the budget cut the history into chunks"
        assert pending_fill_reads(pipeline) == 0
        assert_fills_equal(pipeline, expected)

        caught_up = fills_state(pipeline)
        for _ in range(3):
            assert run_counted(pipeline, sim, **settings) == 0, "no walk at the same version"
        assert fills_state(pipeline) == caught_up

        sim.advance_state(new_fills=300)
        runs = 0
        while (runs := runs + 1) == 1 or pending_fill_reads(pipeline):
            assert run_counted(pipeline, sim, **settings) == 1, "one page a run, each moving on"
            assert runs <= 4, "a coin's walk waits for no other forever"
        expected = sim.expected_fills(coin="BTC") + sim.expected_fills(coin="HYPE")
        assert_fills_equal(pipeline, expected)
