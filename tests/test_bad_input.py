"""Bad input: a clear error naming the setting and the fix, early, and nothing loaded is lost."""

import logging
from collections import Counter
from typing import NamedTuple

import dlt
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    PipelineFactory,
    assert_fills_equal,
    high_water_marks,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.commands.cli import root_cause
from hypertracker_source.config.defaults import TABLE_NAMES
from hypertracker_source.exceptions import (
    HyperTrackerApiError,
    HyperTrackerAuthError,
    HyperTrackerConfigError,
)

HEATMAP_COINS = ["BTC"]
SEGMENT_IDS = [9]
KEY_VARIABLE = "SOURCES__HYPERTRACKER__API_KEY"

SETTING_ERRORS = {
    "no key": (
        {"api_key": None},
        "sources.hypertracker.api_key = None: no API key is set. Put the token from the "
        "HyperTracker API dashboard in .dlt/secrets.toml under [sources.hypertracker] as "
        'api_key = "..."',
    ),
    "side in words": (
        {"side": "sell"},
        "sources.hypertracker.side = 'sell': the API knows only A (ask, sell) and B (bid, buy), "
        "in upper case. Use side='A' or side='B', or leave it unset for both",
    ),
    "day first date": (
        {"start_date": "27/07/2025"},
        "sources.hypertracker.start_date = '27/07/2025': it is not an ISO 8601 date (Unable to "
        "parse string [27/07/2025]). Write it like 2025-07-27 or 2026-01-01T00:00:00Z",
    ),
    "future date": (
        {"start_date": "2999-01-01"},
        "sources.hypertracker.start_date = '2999-01-01': it is in the future. Use a date in "
        "the past",
    ),
    "end before start": (
        {"start_date": "2026-03-01", "end_date": "2026-01-01"},
        "sources.hypertracker.end_date = '2026-01-01': it is not after start_date "
        "(2026-03-01T00:00:00+00:00). Give an end_date later than start_date, or leave it unset "
        "for an incremental load",
    ),
    "url without scheme": (
        {"base_url": "ht-api.coinmarketman.com"},
        "sources.hypertracker.base_url = 'ht-api.coinmarketman.com': it has no scheme. Write "
        "it with http:// or https:// in front, such as https://ht-api.coinmarketman.com",
    ),
    "url of another scheme": (
        {"base_url": "ftp://ht-api.coinmarketman.com"},
        "sources.hypertracker.base_url = 'ftp://ht-api.coinmarketman.com': it is not an http(s) "
        "URL. Use https://ht-api.coinmarketman.com, or leave it unset",
    ),
    "one coin in two cases": (
        {"coins": "BTC,ETH,btc"},
        "sources.hypertracker.coins = 'BTC,ETH,btc': 'BTC' and 'btc' differ only in case. Keep "
        "the one spelled as the API lists it, such as BTC or xyz:MSTR",
    ),
    "page too large": (
        {"page_size": "5000"},
        "sources.hypertracker.page_size = 5000: the API takes 1 to 1000 fills a page. Leave it "
        "unset for 1000, the cheapest in requests",
    ),
    "unknown segment": (
        {"segment_ids": "9,99"},
        "sources.hypertracker.segment_ids = '9,99': '99' is not a segment id. Known: 1 Fish, "
        "2 Dolphin, 3 Apex Predator, 4 Small Whale, 5 Whale, 6 Tidal Whale, 7 Leviathan, "
        "8 Money Printer, 9 Smart Money, 10 Consistent Grinder, 11 Humble Earner, "
        "12 Exit Liquidity, 13 Semi-Rekt, 14 Full Rekt, 15 Giga-Rekt, 16 Shrimp",
    ),
    "infinite lag": (
        {"lag": "inf"},
        "sources.hypertracker.lag = inf: it is not a finite number. Use for example lag=3600",
    ),
    "lag not a number": (
        {"lag": "nan"},
        "sources.hypertracker.lag = nan: it is not a finite number. Use for example lag=3600",
    ),
    "lag beyond any history": (
        {"lag": "1e20"},
        "sources.hypertracker.lag = 1e+20: it must be a number of seconds, 0 to 315360000. Use "
        "for example lag=3600",
    ),
    "infinite request rate": (
        {"requests_per_minute": "inf"},
        "sources.hypertracker.requests_per_minute = 'inf': it is neither a positive number nor "
        "a plan name. Use a number or one of pulse (60), surge (100), flow (200), stream (500)",
    ),
    "unknown plan": (
        {"plan": "gold"},
        "sources.hypertracker.plan = 'gold': it is not a plan of the API. Use one of free, "
        "pulse, surge, flow, stream",
    ),
    "zero daily budget": (
        {"daily_request_budget": "0"},
        "sources.hypertracker.daily_request_budget = '0': it must be a whole number above 0. Use "
        "a whole number of requests such as daily_request_budget=1000, or leave it unset",
    ),
    "monthly budget in words": (
        {"monthly_request_budget": "lots"},
        "sources.hypertracker.monthly_request_budget = 'lots': it is not a number. Use a whole "
        "number of requests such as monthly_request_budget=1000, or leave it unset",
    ),
}
"""Settings given the way a scheduled run gets them (SOURCES__HYPERTRACKER__*), and the error."""


def table_rows(pipeline: dlt.Pipeline) -> dict[str, Counter[tuple]]:
    """Every row of every table of the source, each table as a multiset."""
    return {
        table: Counter(tuple(sorted(row.items())) for row in landed(pipeline, table))
        for table in TABLE_NAMES
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


@pytest.mark.parametrize(("settings", "message"), SETTING_ERRORS.values(), ids=SETTING_ERRORS)
def test_bad_setting_fails_before_any_request(
    settings: dict[str, str | None],
    message: str,
    loaded_once: FirstLoad,
    sim: Simulator,
    monkeypatch: pytest.MonkeyPatch,
):
    sim.reset_requests()
    set_environment(monkeypatch, {"api_key": API_KEY, "base_url": sim.url, **settings})
    with pytest.raises(HyperTrackerConfigError) as error:
        loaded_once.pipeline.run(hypertracker())
    setting = message.split(" = ")[0].removeprefix("sources.hypertracker.")
    assert str(error.value) == (
        f"{message} (set it as an argument of hypertracker(), under [sources.hypertracker] in "
        ".dlt/config.toml or .dlt/secrets.toml, or as "
        f"SOURCES__HYPERTRACKER__{setting.upper()})"
    )
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

    assert str(error.value).startswith(f"sources.hypertracker.{setting} = {value!r}: it ")
    assert f"SOURCES__HYPERTRACKER__{setting.upper()}" in str(error.value)
    assert "\n" not in str(error.value)
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
    assert isinstance(error, HyperTrackerAuthError)
    assert str(error).startswith("HyperTracker rejected the API key (HTTP 401 on /")
    assert str(error).endswith(
        "). Set a valid token from the HyperTracker API dashboard as sources.hypertracker.api_key"
        " in .dlt/secrets.toml or SOURCES__HYPERTRACKER__API_KEY."
    )
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
    assert isinstance(error, HyperTrackerConfigError)
    assert str(error).startswith(
        "sources.hypertracker.heatmap_coins = 'DOGEX': the API has no liquidation heatmap for "
        "this coin (HTTP 404). Use a perp the API lists, such as BTC, ETH, HYPE or xyz:MSTR"
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
    assert [record.getMessage() for record in caplog.records] == [
        "sources.hypertracker.coins: 'btc' returned no fills, but 'BTC' has fills: coin names "
        "are case-sensitive; use --coins BTC on the command line, coins=['BTC'] in Python"
    ]
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
    assert isinstance(error, HyperTrackerApiError)
    assert str(error).startswith("The API sent px = '")
    assert str(error).endswith(
        "' where a double was declared: the field changed type. Nothing of this run was loaded "
        "and the stored cursor has not moved; upgrade hypertracker-source or report the change"
    )
    loaded.assert_kept()
