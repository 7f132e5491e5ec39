"""The simulator's transport: the bearer token, the rate limit, and the faults it injects."""

import pytest
import requests
from helpers import (
    API_KEY,
    FILLS,
    SEGMENTS,
    STATUS,
    fetch,
)

from hypertracker_simulator import Faults, Simulator


def test_requests_need_the_bearer_token(sim: Simulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        answer = requests.get(sim.url + SEGMENTS, headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json() == {"statusCode": 401, "message": "Unauthorized"}


def test_rate_limit_answers_429_with_retry_after_in_the_body(client: requests.Session) -> None:
    for with_header in (False, True):
        with Simulator(
            fills=10, api_key=API_KEY, rate_limit_per_minute=3, retry_after_header=with_header
        ) as sim:
            assert [fetch(client, sim, SEGMENTS).status_code for _ in range(3)] == [200] * 3
            limited = fetch(client, sim, SEGMENTS)
            assert limited.status_code == 429
            body = limited.json()
            assert body["error"] == "rate_limit_exceeded"
            assert 1 <= body["retry_after"] <= 60
            assert ("Retry-After" in limited.headers) == with_header
            assert sim.request_counts() == {"segments": 4}
            assert sim.requests[-1].status == 429


def test_rate_limit_fault(fresh: Simulator, client: requests.Session) -> None:
    fresh.faults = Faults(rate_limit_rate=1.0, retry_after=42)
    limited = fetch(client, fresh, STATUS)
    assert limited.status_code == 429
    assert limited.json()["retry_after"] == 42
    assert "Retry-After" not in limited.headers


def test_reset_fault_raises_connection_error(fresh: Simulator, client: requests.Session) -> None:
    fresh.faults.reset_rate = 1.0
    with pytest.raises(requests.ConnectionError):
        fetch(client, fresh, FILLS)
    fresh.faults.reset_rate = 0.0
    assert fetch(client, fresh, FILLS).status_code == 200
    assert [record.status for record in fresh.requests] == [0, 200]
    assert fresh.request_counts() == {"fills": 2}


def test_error_garbage_truncation_and_slowness(fresh: Simulator, client: requests.Session) -> None:
    fresh.faults = Faults(error_rate=1.0)
    assert {fetch(client, fresh, SEGMENTS).status_code for _ in range(12)} == {500, 502, 503}
    fresh.faults = Faults(garbage_rate=1.0)
    garbage = fetch(client, fresh, SEGMENTS)
    assert garbage.status_code == 200
    assert garbage.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.JSONDecodeError):
        garbage.json()
    fresh.faults = Faults(truncate_rate=1.0)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        fetch(client, fresh, FILLS)
    fresh.faults = Faults(slow_rate=1.0, slow_seconds=0.5)
    with pytest.raises(requests.exceptions.ReadTimeout):
        client.get(fresh.url + SEGMENTS, timeout=0.2)
    fresh.faults = Faults()
    assert fresh.request_counts() == {"segments": 14, "fills": 1}


def test_unknown_paths_are_404(sim: Simulator, client: requests.Session) -> None:
    assert fetch(client, sim, "/api/external/nothing").status_code == 404
