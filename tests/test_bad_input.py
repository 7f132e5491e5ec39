"""Bad input: a clear error naming the setting and the fix, early, and nothing loaded is lost."""

import logging
from collections import Counter
from typing import NamedTuple

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    TABLES,
    PipelineFactory,
    assert_error,
    assert_fills_equal,
    high_water_marks,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.exceptions import (
    HyperTrackerApiError,
    HyperTrackerAuthError,
    HyperTrackerConfigError,
)
from hypertracker_source.runs.failures import root_cause

HEATMAP_COINS = ["BTC"]
SEGMENT_IDS = [9]

SETTING_ERRORS = {
    "no key": ({"api_key": None}, "api_key", "no API key is set"),
    "side in words": ({"side": "sell"}, "side", "the API knows only A (ask, sell) and B"),
    "day first date": ({"start_date": "27/07/2025"}, "start_date", "not an ISO 8601 date"),
    "future date": ({"start_date": "2999-01-01"}, "start_date", "it is in the future"),
    "end before start": (
        {"start_date": "2026-03-01", "end_date": "2026-01-01"},
        "end_date",
        "it is not after start_date",
    ),
    "url without scheme": ({"base_url": "ht-api.coinmarketman.com"}, "base_url", "no scheme"),
    "url of another scheme": (
        {"base_url": "ftp://ht-api.coinmarketman.com"},
        "base_url",
        "not an http(s) URL",
    ),
    "one coin in two cases": ({"coins": "BTC,ETH,btc"}, "coins", "differ only in case"),
    "page too large": ({"page_size": "5000"}, "page_size", "1 to 1000 fills a page"),
    "unknown segment": ({"segment_ids": "9,99"}, "segment_ids", "'99' is not a segment id"),
    "infinite lag": ({"lag": "inf"}, "lag", "not a finite number"),
    "lag not a number": ({"lag": "nan"}, "lag", "not a finite number"),
    "lag beyond any history": ({"lag": "1e20"}, "lag", "a number of seconds, 0 to"),
    "infinite request rate": (
        {"requests_per_minute": "inf"},
        "requests_per_minute",
        "neither a positive number nor a plan name",
    ),
    "unknown plan": ({"plan": "gold"}, "plan", "not a plan of the API"),
    "zero daily budget": (
        {"daily_request_budget": "0"},
        "daily_request_budget",
        "a whole number above 0",
    ),
    "monthly budget in words": (
        {"monthly_request_budget": "lots"},
        "monthly_request_budget",
        "not a number",
    ),
}
"""Settings given the way a scheduled run gets them (SOURCES__HYPERTRACKER__*), the setting the
error names and its key phrase (test_wording.py holds each whole line)."""


def table_rows(pipeline: dlt.Pipeline) -> dict[str, Counter[tuple]]:
    """Every row of every table of the source, each table as a multiset."""
    return {
        table: Counter(tuple(sorted(row.items())) for row in landed(pipeline, table))
        for table in TABLES
    }


class FirstLoad(NamedTuple):
    """A pipeline after a first load of everything: its rows and its marks then."""

    pipeline: dlt.Pipeline
    rows: dict[str, Counter[tuple]]
    marks: dict[str, str]

    def assert_kept(self) -> None:
        """The pipeline still holds every row and mark of the first load, and nothing else."""
        assert table_rows(self.pipeline) == self.rows
        assert high_water_marks(self.pipeline).items() >= self.marks.items()


def first_load(sim: Simulator, pipeline: dlt.Pipeline) -> FirstLoad:
    """A first load of everything, with the simulator's request log emptied after it."""
    pipeline.run(source_for(sim, heatmap_coins=HEATMAP_COINS, segment_ids=SEGMENT_IDS))
    assert_fills_equal(pipeline, sim.expected_fills())
    assert high_water_marks(pipeline)
    sim.reset_requests()
    return FirstLoad(pipeline, table_rows(pipeline), high_water_marks(pipeline))


@pytest.fixture
def loaded(simulator: Simulator, make_pipeline: PipelineFactory) -> FirstLoad:
    """A first load of the test's own, free to change."""
    return first_load(simulator, make_pipeline())


@pytest.fixture(scope="module")
def loaded_once(sim: Simulator, module_pipeline: dlt.Pipeline) -> FirstLoad:
    """A first load made once, for the tests whose runs must change nothing."""
    return first_load(sim, module_pipeline)


def set_environment(monkeypatch: pytest.MonkeyPatch, settings: dict[str, str | None]) -> None:
    """Sets source settings as SOURCES__HYPERTRACKER__* variables; None removes one."""
    for name, value in settings.items():
        variable = f"SOURCES__HYPERTRACKER__{name.upper()}"
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value)


@pytest.fixture
def environment(simulator: Simulator, monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """Points the source at the simulator through the environment, key included."""
    set_environment(monkeypatch, {"api_key": API_KEY, "base_url": simulator.url})
    return monkeypatch


@pytest.mark.parametrize(
    ("settings", "setting", "phrase"), SETTING_ERRORS.values(), ids=SETTING_ERRORS
)
def test_bad_setting_fails_before_any_request(
    settings: dict[str, str | None],
    setting: str,
    phrase: str,
    loaded_once: FirstLoad,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
):
    sim.reset_requests()
    set_environment(monkeypatch, {"api_key": API_KEY, "base_url": sim.url, **settings})
    with pytest.raises(HyperTrackerConfigError) as error:
        loaded_once.pipeline.run(hypertracker())
    text = assert_error(error.value, HyperTrackerConfigError, setting, phrase)
    assert f"SOURCES__HYPERTRACKER__{setting.upper()}" in text
    assert sim.request_counts() == {}
    loaded_once.assert_kept()


@pytest.mark.parametrize(
    "setting", ["page_size", "max_fills_per_run", "lag", "requests_per_minute"]
)
@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_numeric_setting_that_is_not_finite_is_named_before_any_request(
    setting: str, value: float, simulator: Simulator
):
    with pytest.raises(HyperTrackerConfigError) as error:
        source_for(simulator, **{setting: value})

    text = assert_error(error.value, HyperTrackerConfigError, setting, f" = {value!r}: ")
    assert f"SOURCES__HYPERTRACKER__{setting.upper()}" in text
    assert "\n" not in text
    assert simulator.request_counts() == {}


def failed_run_error(pipeline: dlt.Pipeline) -> BaseException:
    """What a user reads when a run of the environment's settings fails: the root cause."""
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(hypertracker(heatmap_coins=HEATMAP_COINS, segment_ids=SEGMENT_IDS))
    return root_cause(failure.value)


def test_rejected_key_stops_at_its_first_answer(
    loaded: FirstLoad, simulator: Simulator, environment: pytest.MonkeyPatch
):
    set_environment(environment, {"api_key": "revoked-key"})
    simulator.advance_state(new_fills=10)
    error = failed_run_error(loaded.pipeline)
    assert_error(error, HyperTrackerAuthError, "api_key", "rejected the API key (HTTP 401 on /")
    asked = [(record.path, tuple(record.params.items())) for record in simulator.requests]
    assert {record.status for record in simulator.requests} == {401}
    assert len(asked) == len(set(asked)), "a rejected request was retried"
    loaded.assert_kept()


def test_unknown_heatmap_coin_names_the_setting(
    loaded: FirstLoad, simulator: Simulator, environment: pytest.MonkeyPatch
):
    set_environment(environment, {"heatmap_coins": "BTC,DOGEX"})
    simulator.advance_state(new_fills=10)
    with pytest.raises(PipelineStepFailed) as failure:
        loaded.pipeline.run(hypertracker(segment_ids=SEGMENT_IDS))
    error = root_cause(failure.value)
    assert_error(
        error, HyperTrackerConfigError, "heatmap_coins", "the API has no liquidation heatmap"
    )
    unknown = [r.status for r in simulator.requests if "/DOGEX/" in r.path]
    assert unknown == [404]
    loaded.assert_kept()


def test_coin_in_the_wrong_case_warns_with_the_spelling_that_has_data(
    loaded: FirstLoad,
    simulator: Simulator,
    environment: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    set_environment(environment, {"coins": "btc"})
    with caplog.at_level(logging.WARNING, logger="hypertracker_source.fills.reads"):
        loaded.pipeline.run(hypertracker().with_resources("liquidation_fills"))
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith("sources.hypertracker.coins: ")
    assert "'btc' returned no fills, but 'BTC' has fills" in warning
    spellings = [
        r.params
        for r in simulator.requests
        if r.endpoint == "fills" and r.params.get("coin") != "btc"
    ]
    assert spellings == [{"coin": "BTC", "limit": "1"}]
    assert simulator.expected_fills(coin="BTC")
    loaded.assert_kept()


def test_field_that_changed_type_is_named_and_nothing_is_loaded(
    loaded: FirstLoad, simulator: Simulator, environment: pytest.MonkeyPatch
):
    simulator.advance_state(new_fills=10)
    simulator.faults.string_field = "px"
    error = failed_run_error(loaded.pipeline)
    assert "px = '" in assert_error(error, HyperTrackerApiError, phrase="the field changed type")
    loaded.assert_kept()
