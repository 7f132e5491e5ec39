"""A hostile or broken API: every answer bounded in time and size, cursors that fail or loop,
and a file link that tries to lead elsewhere. New settings go through dlt's environment, as a
user's would."""

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import orjson
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import API_KEY, PipelineFactory, assert_fills_equal, fills_state, landed, source_for

from hypertracker_simulator import Simulator
from hypertracker_simulator.hostile import gzip_bomb
from hypertracker_source import RunStats, load_until_caught_up
from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import HEATMAP_EXPORT, STATUS
from hypertracker_source.config.defaults import MAX_FILE_REDIRECTS, MAX_STALLED_PAGES
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.runs.failures import root_cause
from hypertracker_source.snapshots.heatmap import heatmap_file

DEADLINE_SECONDS = 1.0
ATTEMPTS = 2


@pytest.fixture
def two_attempts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two attempts per request, so that a hostile answer fails the run in seconds."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", str(ATTEMPTS))


def set_body_limits(monkeypatch: pytest.MonkeyPatch, **megabytes: float) -> None:
    """Sets sources.hypertracker.max_body_mb as a user would, in the environment."""
    monkeypatch.setenv("SOURCES__HYPERTRACKER__MAX_BODY_MB", orjson.dumps(megabytes).decode())


def failed_run(pipeline, source) -> BaseException:
    """The error a user reads of a run that must fail."""
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source)
    return root_cause(failure.value)


def test_an_answer_dripped_a_byte_at_a_time_fails_at_its_deadline(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch, two_attempts: None
):
    monkeypatch.setenv("SOURCES__HYPERTRACKER__RESPONSE_DEADLINE", str(DEADLINE_SECONDS))
    stats = RunStats()
    with Simulator(seed=7, fills=300, api_key=API_KEY) as sim:
        sim.faults.drip_seconds = 0.05
        started = time.monotonic()
        source = source_for(sim, segment_ids=[9], heatmap_coins=[], run_stats=stats)
        error = failed_run(make_pipeline(), source)
        elapsed = time.monotonic() - started

    assert stats.requests == {"status": ATTEMPTS}, "an answer cut at its deadline was spent"
    assert "sources.hypertracker.response_deadline" in str(error)
    assert str(error).startswith("HyperTracker gave no whole answer to GET /hypertracker/state")
    # The read timeout (10 s) never trips on a drip; the deadline ends each of both attempts.
    assert elapsed < ATTEMPTS * DEADLINE_SECONDS + 5


def test_a_gzip_bomb_heatmap_file_is_refused_past_its_inflated_limit(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    set_body_limits(monkeypatch, heatmap_inflated=1)
    gzip_bomb(16)  # made before the run, so that the file host answers at once
    with Simulator(seed=7, fills=300, api_key=API_KEY, gzip_files=True) as sim:
        sim.faults.gzip_bomb_mb = 16
        pipeline = make_pipeline()
        error = failed_run(pipeline, source_for(sim, heatmap_coins=["BTC"], segment_ids=[9]))
        downloads = [record for record in sim.requests if record.host == "files"]

    assert str(error).startswith(
        "HyperTracker's heatmap file, once inflated, passed 1 MB, the limit "
        "sources.hypertracker.max_body_mb.heatmap_inflated"
    )
    assert len(downloads) == 1, "a file too large is not worth fetching again"
    assert "liquidation_heatmap" not in pipeline.dataset().schema.tables


def test_a_huge_field_in_a_fills_page_is_refused_while_reading(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    set_body_limits(monkeypatch, fills=1)
    stats = RunStats()
    with Simulator(seed=7, fills=300, api_key=API_KEY) as sim:
        sim.faults.huge_field_mb = 3
        pipeline = make_pipeline()
        source = source_for(sim, heatmap_coins=[], segment_ids=[9], run_stats=stats)
        error = failed_run(pipeline, source)
        asked = [str(r.params) for r in sim.requests if r.endpoint == "fills"]

    assert str(error).startswith(
        "HyperTracker's answer to GET /api/external/fills/liquidation passed 1 MB, the limit "
        "sources.hypertracker.max_body_mb.fills"
    )
    assert len(asked) == len(set(asked)), "a page too large is not worth asking again"
    assert stats.requests["fills"] == len(asked), "a page cut at its size limit was spent"
    assert "liquidation_fills" not in pipeline.dataset().schema.tables


def test_a_stopped_client_cuts_the_answers_it_awaits_at_once():
    # A run that failed (a page too large, a stop signal) leaves no thread awaiting a slow answer,
    # which dlt's pool would wait for, and report, before the run's own error.
    with Simulator(seed=7, fills=300, api_key=API_KEY) as sim:
        sim.faults.drip_seconds = 0.05  # a status answer of ~300 bytes: 15 s
        client = HyperTrackerClient(sim.url, API_KEY)
        with ThreadPoolExecutor(max_workers=1) as pool:
            awaited = pool.submit(client.get_json, STATUS)
            while not sim.requests:
                time.sleep(0.01)
            stop = HyperTrackerApiError("the run failed")
            started = time.monotonic()
            client.gate.stop(stop)
            with pytest.raises(HyperTrackerApiError) as ended:
                awaited.result(timeout=10)
            elapsed = time.monotonic() - started

    assert ended.value is stop
    assert elapsed < 2.0, "cut at once, not at the end of the drip"


@pytest.mark.slow
def test_a_stored_cursor_the_api_refuses_restarts_its_read_losing_nothing(
    make_pipeline: PipelineFactory, caplog: pytest.LogCaptureFixture
):
    with Simulator(seed=7, fills=1000, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        settings = {"page_size": 50, "max_fills_per_run": 150, "heatmap_coins": []}
        pipeline.run(source_for(sim, segment_ids=[9], **settings))
        backlog = fills_state(pipeline)["coin=*|address=*|side=*"]["backlog"]
        stored = [read for read in backlog if read.get("cursor")]
        assert stored, "the first run stores cursors"

        sim.faults.cursor_generation = 1  # an API release: every cursor handed out is refused
        with caplog.at_level(logging.WARNING):
            load_until_caught_up(pipeline, lambda: source_for(sim, segment_ids=[9], **settings))
        refused = [r for r in sim.requests if r.endpoint == "fills" and r.status == 400]

        assert_fills_equal(pipeline, sim.expected_fills())
    assert len(refused) == len(stored), "only stored cursors are refused, once each"
    assert "HyperTracker refused the stored nextCursor of the fills read" in caplog.text


def test_a_cursor_that_never_moves_stops_after_a_bounded_number_of_requests(
    make_pipeline: PipelineFactory,
):
    with Simulator(seed=7, fills=3000, api_key=API_KEY) as sim:
        sim.faults.loop_cursors = True
        pipeline = make_pipeline()
        settings = {"page_size": 100, "max_fills_per_run": 100, "heatmap_coins": []}
        with pytest.raises(PipelineStepFailed) as failure:
            load_until_caught_up(pipeline, lambda: source_for(sim, segment_ids=[9], **settings))
        fills_asked = sim.request_counts()["fills"]
        first_page = landed(pipeline, "liquidation_fills")

    assert str(root_cause(failure.value)).startswith(
        "HyperTracker's fills cursor for coin=*|address=*|side=* makes no progress"
    )
    # One page per run: the first, then the same page again until MAX_STALLED_PAGES in a row.
    assert fills_asked == 1 + MAX_STALLED_PAGES
    assert len(first_page) == len({tuple(sorted(row.items())) for row in first_page})


def test_the_file_link_never_leads_to_another_host():
    with (
        Simulator(seed=7, fills=300, api_key=API_KEY) as sim,
        Simulator(seed=7, fills=300, api_key=API_KEY) as elsewhere,
    ):
        client = HyperTrackerClient(sim.url, API_KEY)
        other_host_url = elsewhere.file_url
        sim.faults.file_redirect = f"{other_host_url}/hypertracker-exports/BTC/x.json"
        with pytest.raises(HyperTrackerApiError) as other_host:
            heatmap_of(client)
        sim.faults.file_redirect = f"{sim.file_url}/again"
        with pytest.raises(HyperTrackerApiError) as loop:
            heatmap_of(client)
        sim.faults.file_redirect = ""
        sim.faults.export_link = "file:///etc/passwd"
        with pytest.raises(HyperTrackerApiError) as not_http:
            heatmap_of(client)
        downloads = [record for record in sim.requests if record.host == "files"]

        assert elsewhere.requests == []
    assert str(other_host.value).startswith(
        f"HyperTracker's heatmap file link was not followed to {other_host_url}: the file "
        "host redirected to another host or scheme"
    )
    assert f"it redirected more than {MAX_FILE_REDIRECTS} times" in str(loop.value)
    assert str(not_http.value).startswith(
        "HyperTracker's heatmap file link was not followed to file://: it is not an http(s) URL"
    )
    # 1 refused redirect, then 1 + MAX_FILE_REDIRECTS on the own host; never with the key.
    assert len(downloads) == 2 + MAX_FILE_REDIRECTS
    assert all("Authorization" not in record.headers for record in downloads)


def heatmap_of(client: HyperTrackerClient) -> None:
    """Fetches BTC's heatmap file through the client."""
    heatmap_file(client, "BTC")


def test_coin_names_are_url_encoded_in_paths_but_the_colon():
    with Simulator(seed=7, fills=300, api_key=API_KEY) as sim:
        client = HyperTrackerClient(sim.url, API_KEY)
        assert client.get(HEATMAP_EXPORT, path_args={"coin": "xyz:MSTR"}).response.status_code
        odd = client.get(HEATMAP_EXPORT, path_args={"coin": "a/b?c#d%e f"})
        paths = [record.path for record in sim.requests]

    assert paths == [
        "/api/external/exports/coins/xyz:MSTR/liquidation-heatmap",
        "/api/external/exports/coins/a%2Fb%3Fc%23d%25e%20f/liquidation-heatmap",
    ]
    assert orjson.loads(odd.response.content)["message"] == "A/B?C#D%E F not found"
