"""The settings' one declaration, and what is derived from it: the source's signature, the README's
table, the `init` template, the command line's options and `check`'s client."""

import argparse
import inspect
import re
from pathlib import Path

import pytest
import tomlkit

from hypertracker_source import hypertracker
from hypertracker_source.commands.check import configured_client, configured_settings
from hypertracker_source.commands.init import CONFIG_TEMPLATE
from hypertracker_source.config.documents import settings_table
from hypertracker_source.config.flags import add_setting_flags, flags_to_settings
from hypertracker_source.config.resolve import resolve_settings, uncoerced_setting_error
from hypertracker_source.config.settings import SETTINGS
from hypertracker_source.exceptions import HyperTrackerConfigError

README = Path(__file__).parent.parent / "README.md"
COMMENTED_SETTING = re.compile(r"^# ([a-z_]+) = (.*)$", re.MULTILINE)
"""A commented setting's line in the `init` template."""


@pytest.mark.fast
def test_the_sources_signature_is_the_declared_settings():
    parameters = dict(inspect.signature(hypertracker).parameters)
    parameters.pop("run_stats")
    declared = {setting.name: (setting.annotation, setting.default) for setting in SETTINGS}
    assert {
        name: (parameter.annotation, parameter.default) for name, parameter in parameters.items()
    } == declared


@pytest.mark.fast
def test_the_readme_shows_the_generated_settings_table():
    assert settings_table() in README.read_text(encoding="utf-8")


@pytest.mark.fast
def test_the_init_template_shows_every_setting_but_the_key_with_a_value_that_resolves():
    shown = dict(COMMENTED_SETTING.findall(CONFIG_TEMPLATE))
    assert list(shown) == [setting.name for setting in SETTINGS if setting.name != "api_key"]
    uncommented = tomlkit.parse("\n".join(f"{name} = {value}" for name, value in shown.items()))
    settings = resolve_settings(api_key="k", **uncommented.unwrap())
    assert settings.fills.filters[0].params() == {"coin": "BTC", "address": "0x...", "side": "A"}
    assert settings.budget.plan == "pulse"
    assert settings.max_body_bytes["fills"] == 16_000_000


@pytest.mark.fast
def test_the_options_set_the_settings_they_name():
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    add_setting_flags(parser, load_only=True)
    args = parser.parse_args(["--segments", "9,10", "--coins", "BTC", "--end-date", "2026-01-01"])
    assert flags_to_settings(args) == {
        "end_date": "2026-01-01",
        "coins": "BTC",
        "segment_ids": "9,10",
    }
    assert flags_to_settings(parser.parse_args([])) == {}


@pytest.mark.fast
def test_the_loading_commands_take_no_back_fill_option():
    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--end-date", "2026-01-01"])


@pytest.fixture
def key_in_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An API key in the environment, as a scheduled run has it; more settings to set there."""
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", "env-key")
    return monkeypatch


@pytest.mark.fast
def test_checks_client_resolves_the_clients_settings_from_dlt_config(
    key_in_env: pytest.MonkeyPatch,
):
    key_in_env.setenv("SOURCES__HYPERTRACKER__BASE_URL", "http://127.0.0.1:9/")
    key_in_env.setenv("SOURCES__HYPERTRACKER__MAX_BODY_MB", '{"status": 2}')
    key_in_env.setenv("SOURCES__HYPERTRACKER__RESPONSE_DEADLINE", "30")
    client = configured_client()
    assert client.base_url == "http://127.0.0.1:9"
    assert client.body_limit("status").max_bytes == 2_000_000
    assert client.response_deadline == 30


@pytest.mark.fast
def test_checks_client_refuses_a_bad_client_setting_and_ignores_the_others(
    key_in_env: pytest.MonkeyPatch,
):
    key_in_env.setenv("SOURCES__HYPERTRACKER__COINS", "BAD COIN")
    assert configured_client().base_url == "https://ht-api.coinmarketman.com"
    key_in_env.setenv("SOURCES__HYPERTRACKER__DAILY_REQUEST_BUDGET", "0")
    with pytest.raises(HyperTrackerConfigError, match="daily_request_budget"):
        configured_client()


@pytest.mark.fast
def test_planned_settings_resolve_from_dlt_config_given_ones_first(
    key_in_env: pytest.MonkeyPatch,
):
    key_in_env.setenv("SOURCES__HYPERTRACKER__SEGMENT_IDS", "9")
    key_in_env.setenv("SOURCES__HYPERTRACKER__HEATMAP_COINS", "BTC")
    settings = configured_settings(segment_ids="1,2")
    assert settings.segment_ids == (1, 2)
    assert settings.heatmap_coins == ("BTC",)


@pytest.mark.fast
def test_a_value_dlt_cannot_coerce_gets_its_settings_own_error():
    error = uncoerced_setting_error("max_body_mb", "abc")
    assert error is not None
    assert (error.setting, error.problem) == ("max_body_mb", "it is not a table")
    assert uncoerced_setting_error("page_size", "7") is None
    assert uncoerced_setting_error("run_stats", "abc") is None
