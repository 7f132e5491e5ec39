"""The simulator's indexer and clock: fills publish with state updates, stall, then catch up."""

from collections.abc import Iterator
from datetime import timedelta

import pendulum
import pytest
import requests
import time_machine

from hypertracker_simulator import Simulator, start_simulator_process

API_KEY = "sim-key"
FILLS = "/api/external/fills/liquidation"
STATUS = "/api/external/hypertracker/state/status"


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """A small simulator of its own, as tests here change its data."""
    with Simulator(seed=3, fills=400, api_key=API_KEY) as simulator:
        yield simulator


def get(sim: Simulator, path: str, **params: str) -> dict:
    """An authorised GET of an API path, as JSON."""
    headers = {"Authorization": f"Bearer {API_KEY}"}
    answer = requests.get(sim.url + path, params=params, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def visible_times(sim: Simulator) -> list[str]:
    """The times of every fill the API shows, read page by page."""
    times, params = [], {"limit": "1000"}
    while True:
        page = get(sim, FILLS, **params)
        times += [fill["time"] for fill in page["fills"]]
        if not page["nextCursor"]:
            return times
        params["nextCursor"] = page["nextCursor"]


def last_update(sim: Simulator) -> str:
    """The status endpoint's lastUpdate."""
    return get(sim, STATUS)["lastUpdate"]


def test_a_stall_holds_fills_back_and_freezes_the_status(sim: Simulator):
    before, status = sorted(visible_times(sim)), last_update(sim)
    sim.stall_indexing()
    with time_machine.travel(pendulum.now("UTC").add(hours=3)):
        assert sim.advance_state(new_fills=30, spread=timedelta(hours=3)) == 1
        assert sorted(visible_times(sim)) == before
        assert last_update(sim) == status

        assert sim.release_indexing() == 2
        after = sorted(visible_times(sim))
        assert len(after) == len(before) + 30
        assert after[: len(before)] == before
        released = after[len(before) :]
        assert pendulum.parse(released[0]) < pendulum.parse(last_update(sim)).subtract(hours=2)
        assert last_update(sim) > status
        assert len(sim.expected_fills()) == len(after)


def test_a_ticking_status_moves_while_fills_wait(sim: Simulator):
    count, status = len(visible_times(sim)), last_update(sim)
    sim.stall_indexing(ticking_status=True)
    assert sim.advance_state(new_fills=10) == 2
    assert last_update(sim) > status
    assert len(visible_times(sim)) == count
    assert sim.release_indexing() == 3
    assert len(visible_times(sim)) == count + 10


def test_the_api_clock_can_run_apart_from_the_machine(sim: Simulator):
    with Simulator(seed=3, fills=40, api_key=API_KEY, clock_offset=timedelta(hours=-3)) as late:
        status = pendulum.parse(last_update(late))
        assert status < pendulum.now("UTC").subtract(hours=2, minutes=59)
        start = pendulum.now("UTC").subtract(hours=1).format("YYYY-MM-DDTHH:mm:ss.SSS[Z]")
        answer = requests.get(
            late.url + FILLS,
            params={"start": start},
            headers={"Authorization": f"Bearer {API_KEY}"},
            timeout=10,
        )
        assert answer.status_code == 400
        assert "end must be later than start" in answer.text


def test_a_simulator_process_stalls_and_releases_over_http():
    with start_simulator_process(seed=3, fills=100, api_key=API_KEY) as process:
        process.stall_indexing()
        assert process.advance_state(new_fills=5) == 1
        assert process.release_indexing() == 2
