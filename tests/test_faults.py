"""Bad days at the API: every fault at once still lands exactly its data; retries are bounded."""

import re
from collections import Counter
from dataclasses import replace
from itertools import pairwise

import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    HEATMAP_COINS,
    SEGMENTS,
    PipelineFactory,
    assert_fills_equal,
    assert_snapshots_equal,
    cohorts,
    high_water_marks,
    landed,
    source_for,
)

from hypertracker_simulator import Faults, RequestRecord, Simulator
from hypertracker_source import RunStats
from hypertracker_source.api.client import RetryingClient
from hypertracker_source.api.endpoints import ENDPOINTS
from hypertracker_source.api.errors import RERUN_ADVICE
from hypertracker_source.api.request_flow import GatedAdapter, RequestGate
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.runs.failures import root_cause

STORM = Faults(
    error_rate=0.15,
    reset_rate=0.03,
    rate_limit_rate=0.05,
    retry_after=1,
    truncate_rate=0.03,
    garbage_rate=0.03,
    slow_rate=0.02,
    slow_seconds=2.0,
    expire_next_links=1,
)
FAULT_KINDS = ("error", "reset", "rate_limit", "truncate", "garbage", "slow")

# Each attempt fails with probability q = 0.15 + 0.03 + 0.05 + 0.03 + 0.03 + 0.02 = 0.31 (a slow
# answer outlasts the 1 s timeout). A request fails for good only if all 15 attempts fail:
# q^15 = 2.3e-8. The storm run makes 55 requests that succeed in the end (84 with the faulted
# ones), so the odds that it fails are 55 * 2.3e-8 = 1.3e-6, one run in 770,000. The fault dice
# are seeded, so the faults that come are fixed; only which request gets each varies with timing.
STORM_ATTEMPTS = 15


def retries_of(records: list[RequestRecord], index: int) -> RequestRecord | None:
    """The next request for the same path and parameters after the one at index: its retry."""
    first = records[index]
    return next(
        (r for r in records[index + 1 :] if (r.path, r.params) == (first.path, first.params)),
        None,
    )


@pytest.mark.slow
def test_fault_storm_lands_exactly_the_api_data(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", str(STORM_ATTEMPTS))
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "1")
    with Simulator(seed=7, fills=3000, api_key=API_KEY, gzip_files=True) as sim:
        sim.faults = replace(STORM)
        pipeline = make_pipeline()
        pipeline.run(source_for(sim, page_size=100))

        assert_fills_equal(pipeline, sim.expected_fills())
        assert [fill for fill in sim.expected_fills() if "tid" not in fill and "oid" not in fill]
        assert_snapshots_equal(pipeline, sim, HEATMAP_COINS, list(cohorts(sim)))
        assert len(landed(pipeline, "segments")) == len(sim.segments)

        records = list(sim.requests)
        assert {record.fault for record in records}.issuperset(FAULT_KINDS)
        # The expired link goes out with the first export answer, which a fault may cut or delay
        # past the timeout: then the client never uses it, and no file request is refused. It is
        # never used twice: the next attempt asks for a new link.
        assert [r.status for r in records if r.host == "files"].count(403) <= 1
        rate_limited = [i for i, record in enumerate(records) if record.fault == "rate_limit"]
        assert rate_limited
        for index in rate_limited:
            retry = retries_of(records, index)
            assert retry is not None
            assert retry.time - records[index].time >= STORM.retry_after


def test_run_stats_count_each_answered_attempt_under_its_endpoint(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    """Server errors and HTML pages are answered, retried and counted: the client's counts by
    endpoint are the API's own log of what it answered, for every endpoint."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "12")
    with Simulator(seed=11, fills=1500, api_key=API_KEY) as sim:
        sim.faults = Faults(error_rate=0.2, garbage_rate=0.1)
        stats, pipeline = RunStats(), make_pipeline()
        pipeline.run(source_for(sim, page_size=100, run_stats=stats))
        assert_fills_equal(pipeline, sim.expected_fills())
        answered = Counter(record.endpoint for record in sim.requests if record.host == "api")
        assert stats.requests == answered
        assert set(answered) == {endpoint.name for endpoint in ENDPOINTS}
        assert sum(record.fault is not None for record in sim.requests) >= 5


def test_every_attempt_goes_through_the_gated_pool_dlt_sessions_mount():
    """RetryingClient overrides dlt's private `Client._make_session` to mount the gated pool on
    the API's host: this pins that dlt still makes each thread's session there, and sends every
    retry through that session's pools; and that the session has no response hooks of its own,
    which the client's per-request hooks would replace."""
    sent: list[str] = []

    class LoggingAdapter(GatedAdapter):
        """The gated pool, logging each request it sends."""

        def send(self, request, *args, **kwargs):  # type: ignore[no-untyped-def]
            sent.append(request.url)
            return super().send(request, *args, **kwargs)

    with Simulator(seed=5, fills=10, api_key=API_KEY) as sim:
        sim.faults = Faults(error_rate=1.0)
        adapter = LoggingAdapter(RequestGate(), None, pool_maxsize=1)
        client = RetryingClient(
            sim.url,
            adapter,
            raise_for_status=False,
            request_max_attempts=3,
            request_backoff_factor=0,
        )
        assert client.session.hooks["response"] == [], "a request's hooks would replace dlt's"
        answer = client.get(sim.url + SEGMENTS, headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.status_code >= 500
        assert sent == [sim.url + SEGMENTS] * 3
        assert [record.endpoint for record in sim.requests] == ["segments"] * 3


RETRY_AFTER = 3
"""Seconds a 429's body asks to wait: far beyond the tests' backoff (under half a second), so
only the body's value explains the waits."""


def test_retries_wait_the_retry_after_a_429_body_gives(
    make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    """The waits are read off the simulator's request log: the arrival of each attempt. dlt caps
    a Retry-After at the longest retry delay, which the test lifts above RETRY_AFTER."""
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_RETRY_DELAY", str(RETRY_AFTER * 3))
    with Simulator(seed=5, fills=10, api_key=API_KEY) as sim:
        sim.faults = Faults(rate_limit_rate=1.0, retry_after=RETRY_AFTER)
        with pytest.raises(PipelineStepFailed):
            make_pipeline().run(source_for(sim).with_resources("segments"))
        attempts = list(sim.requests)
        assert [(r.endpoint, r.status) for r in attempts] == [("segments", 429)] * 3
        waits = [later.time - earlier.time for earlier, later in pairwise(attempts)]
        assert all(RETRY_AFTER <= wait < RETRY_AFTER + 1.5 for wait in waits), waits


LASTING_FAULT_ERRORS = {
    "error": r"answered HTTP 50[023] on GET /\S+/status: .+, on all 3 attempts\.",
    "rate_limit": r"answered HTTP 429 on GET /\S+/status: Too many requests, on all 3",
    "reset": r"no whole answer to GET /\S+/status in 3 attempts \(the last: ConnectionError",
    "truncate": r"no whole answer to .+ in 3 attempts \(the last: ChunkedEncodingError",
    "slow": r"no whole answer to .+ in 3 attempts \(the last: ReadTimeout",
    "garbage": r"a body that is not JSON \(text/html; charset=UTF-8\) on all 3 attempts\.",
}
"""What a user reads when a fault lasts through every attempt, by fault."""


@pytest.mark.parametrize("fault", LASTING_FAULT_ERRORS)
def test_lasting_fault_stops_after_the_set_attempts_and_keeps_the_load(
    fault: str, make_pipeline: PipelineFactory, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "3")
    monkeypatch.setenv("RUNTIME__REQUEST_TIMEOUT", "0.5")
    with Simulator(seed=5, fills=400, api_key=API_KEY) as sim:
        pipeline = make_pipeline()
        pipeline.run(source_for(sim).with_resources("liquidation_fills"))
        marks, first_load = high_water_marks(pipeline), sim.expected_fills()
        assert marks
        sim.advance_state(new_fills=20)
        sim.faults = Faults(**{f"{fault}_rate": 1.0}, slow_seconds=1.0)
        sim.reset_requests()

        with pytest.raises(PipelineStepFailed) as failure:
            pipeline.run(source_for(sim).with_resources("liquidation_fills"))
        error = root_cause(failure.value)
        assert isinstance(error, HyperTrackerApiError)
        assert re.search(LASTING_FAULT_ERRORS[fault], str(error))
        assert RERUN_ADVICE in str(error)
        assert sim.request_counts() == {"status": 3}, "the version a walk needs comes first"
        assert high_water_marks(pipeline) == marks
        assert_fills_equal(pipeline, first_load)

        sim.faults = Faults()
        pipeline.run(source_for(sim).with_resources("liquidation_fills"))
        assert_fills_equal(pipeline, sim.expected_fills())
