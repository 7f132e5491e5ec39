"""Unit tests: the fill key, the window splitter, the settings checks, the report's imports."""

import dataclasses
import itertools
import subprocess
import sys
from datetime import timedelta

import orjson
import pendulum
import pytest
from helpers import HEATMAP_COINS, PAGE_SIZE
from hypothesis import given
from hypothesis import strategies as st

from hypertracker_source import hypertracker
from hypertracker_source.config.checks import as_list, check_start_date
from hypertracker_source.config.defaults import (
    HISTORY_START,
    MAX_FILLS_PER_RUN,
)
from hypertracker_source.config.resolve import resolve_settings
from hypertracker_source.exceptions import HyperTrackerApiError, HyperTrackerConfigError
from hypertracker_source.fills.pages import fills_page, fills_table
from hypertracker_source.fills.windows import split_windows, window_end
from hypertracker_source.schema import FILL_PRIMARY_KEY

PIECE = {
    "address": "0xAbC0000000000000000000000000000000000001",
    "coin": "xyz:MSTR",
    "time": "2026-05-28T17:27:35.681Z",
    "side": "B",
    "px": 81.697,
    "sz": 10.0,
    "startPosition": -23.103,
    "hash": "0x" + "0" * 64,
    "oid": 446603091844,
    "tid": 1,
    "closedPnl": -1.5,
    "fee": 0,
    "builderFee": 0,
    "liquidatedUser": "0xAbC0000000000000000000000000000000000001",
    "liquidationMarkPx": 81.6,
    "liquidationMethod": "market",
}


def keys(rows: list[dict]) -> list[tuple]:
    """The primary key of each row once converted."""
    table = fills_table(rows).select(list(FILL_PRIMARY_KEY))
    return [tuple(row.values()) for row in table.to_pylist()]


def test_pieces_of_one_order_have_distinct_keys():
    """Two pieces of one order of the same size differ only in where each starts."""
    second = {**PIECE, "tid": 2, "startPosition": -13.103}
    assert len(set(keys([PIECE, second]))) == 2


ONE_COLUMN_CHANGED = {
    "address": {"address": "0xAbC0000000000000000000000000000000000002"},
    "coin": {"coin": "xyz:TSLA"},
    "time": {"time": "2026-05-28T17:27:35.682Z"},
    "start_position": {"startPosition": -13.103},
    "side": {"side": "A"},
    "sz": {"sz": 13.103},
    "px": {"px": 81.698},
}
"""For each key column, a fill that differs from PIECE in that column's API field alone."""


def test_the_key_is_exactly_the_columns_that_tell_fills_apart():
    assert set(FILL_PRIMARY_KEY) == set(ONE_COLUMN_CHANGED)


@pytest.mark.parametrize("column", ONE_COLUMN_CHANGED)
def test_fills_that_differ_in_one_key_column_have_distinct_keys(column: str):
    """Dropping any one column from the key merges two fills that this column alone tells apart."""
    other = {**PIECE, **ONE_COLUMN_CHANGED[column]}
    assert {k for k, v in other.items() if v != PIECE[k]} == set(ONE_COLUMN_CHANGED[column])
    assert len(set(keys([PIECE, other]))) == 2


def test_key_needs_no_tid_and_ignores_address_case():
    without_ids = {k: v for k, v in PIECE.items() if k not in ("tid", "oid")}
    lower = {**PIECE, "address": PIECE["address"].lower()}
    (with_ids, no_ids, lowered) = keys([PIECE, without_ids, lower])
    assert with_ids == no_ids == lowered
    assert None not in with_ids


def test_types_hold_whatever_a_page_holds():
    mixed = [PIECE, {**PIECE, "builderFee": 0.25, "fee": 1}, {"time": PIECE["time"]}]
    table = fills_table(mixed)
    assert table.schema == fills_table([PIECE]).schema
    assert table["builder_fee"].to_pylist() == [0.0, 0.25, None]


def test_new_api_field_is_kept_as_text():
    table = fills_table([{**PIECE, "newField": {"a": 1}}, {**PIECE, "newField": 2}])
    assert table["new_field"].to_pylist() == ['{"a":1}', "2"]


@pytest.mark.parametrize("read", ["arrow", "orjson"])
def test_a_time_that_is_not_a_date_is_named_in_one_line(read: str):
    extra = {"newField": 1} if read == "orjson" else {}
    page = orjson.dumps({"fills": [PIECE, {**PIECE, "time": "yesterday", **extra}]})

    with pytest.raises(HyperTrackerApiError) as error:
        fills_table(fills_page(page)["fills"])

    assert str(error.value) == (
        "The API sent time = 'yesterday', which is not a timestamp[us, tz=UTC]. Nothing of this "
        "run was loaded and the stored cursor has not moved; rerun later, and report it to "
        "HyperTracker if it stays (see docs/data-contract.md)"
    )


def test_window_never_exceeds_three_months_under_either_reading():
    start = pendulum.datetime(2026, 1, 31)
    assert window_end(start) == pendulum.datetime(2026, 4, 30)
    start = pendulum.datetime(2025, 12, 31)
    assert window_end(start) == pendulum.datetime(2026, 3, 31)


moments = st.datetimes(
    min_value=pendulum.datetime(2025, 7, 27).naive(),
    max_value=pendulum.datetime(2030, 1, 1).naive(),
)


@given(moments, st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=1500)))
def test_windows_cover_the_range_and_respect_the_limit(start, length):
    start = pendulum.instance(start, tz="UTC")
    now = start + length
    windows = split_windows(start, now)
    assert start - timedelta(milliseconds=1) < windows[0].start <= start
    assert windows[0].start.microsecond % 1000 == 0
    assert windows[-1].end == now
    assert now - windows[-1].start <= window_end(windows[-1].start) - windows[-1].start
    assert windows[0].kept_from is None
    assert windows[-1].kept_before is None
    for window, following in itertools.pairwise(windows):
        assert window.end <= window_end(window.start)
        assert following.start == window.end - timedelta(milliseconds=1)
        assert window.start < window.end
        assert window.kept_before == following.kept_from == window.end


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("side", "sell"),
        ("page_size", 1001),
        ("page_size", 0),
        ("base_url", "ftp://example.com"),
        ("start_date", "yesterday-ish"),
        ("start_date", "2999-01-01"),
        ("segment_ids", [9, 99]),
        ("lag", -1),
        ("requests_per_minute", "platinum"),
        ("heatmap_coins", ["BTC", "BAD COIN"]),
    ],
)
def test_bad_settings_fail_before_any_request_naming_the_setting(setting, value):
    with pytest.raises(HyperTrackerConfigError, match=f"sources.hypertracker.{setting}"):
        hypertracker(**{"api_key": "k", "base_url": "http://127.0.0.1:9", setting: value})


def test_list_settings_accept_lists_json_and_commas():
    assert (
        as_list("coins", ["BTC", " ETH "])
        == as_list("coins", '["BTC","ETH"]')
        == as_list("coins", "BTC, ETH")
    )
    assert as_list("coins", None) == as_list("coins", "") == []


def test_start_date_before_history_is_clamped_to_its_first_day():
    assert check_start_date("start_date", "2020-01-01") == pendulum.datetime(2025, 7, 27)
    assert check_start_date("start_date", "2026-02-25") == pendulum.datetime(2026, 2, 25)


SECRET = "a-secret-key-1234"

GOOD_SETTINGS = {
    "api_key": f" {SECRET} ",
    "base_url": "https://example.com/",
    "start_date": HISTORY_START,
    "end_date": None,
    "coins": None,
    "address": None,
    "side": None,
    "heatmap_coins": HEATMAP_COINS,
    "segment_ids": None,
    "page_size": PAGE_SIZE,
    "lag": 3600,
    "max_fills_per_run": MAX_FILLS_PER_RUN,
    "requests_per_minute": None,
    "refresh_snapshots": False,
    "merge_strategy": "delete-insert",
}
"""Settings as the source's defaults hand them over, with a key: resolve_settings accepts them."""

BAD_SETTINGS = {
    "base_url": "ftp://example.com",
    "api_key": " ",
    "requests_per_minute": "platinum",
    "start_date": "2999-01-01",
    "coins": ["BAD COIN"],
    "address": " ",
    "side": "sell",
    "end_date": "2020-01-01",
    "lag": -1,
    "page_size": 5000,
    "max_fills_per_run": -1,
    "heatmap_coins": ["BAD COIN"],
    "refresh_snapshots": "maybe",
    "segment_ids": [99],
    "merge_strategy": "replace",
    "response_deadline": float("inf"),
    "max_body_mb": {"fills": -1},
}
"""One bad value of each setting, in the order resolve_settings checks them."""


def test_resolve_settings_normalises_every_setting():
    settings = resolve_settings(
        **{
            **GOOD_SETTINGS,
            "requests_per_minute": "flow",
            "heatmap_coins": "BTC, eth",
            "segment_ids": "9,9,1",
            "refresh_snapshots": "yes",
        }
    )
    assert settings.base_url == "https://example.com"
    assert settings.api_key == SECRET
    assert settings.requests_per_minute == 200
    assert settings.heatmap_coins == ("BTC", "eth")
    assert settings.segment_ids == (9, 1)
    assert settings.refresh_snapshots is True
    assert settings.fills.page_size == PAGE_SIZE
    assert settings.fills.lag == timedelta(hours=1)


def test_resolved_settings_are_frozen():
    settings = resolve_settings(**GOOD_SETTINGS)
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.base_url = "https://elsewhere.example.com"


def test_resolved_settings_never_show_the_key():
    settings = resolve_settings(**GOOD_SETTINGS)
    assert "base_url='https://example.com'" in repr(settings)
    assert SECRET not in repr(settings)
    assert SECRET not in str(settings)


@pytest.mark.parametrize(("setting", "value"), BAD_SETTINGS.items(), ids=BAD_SETTINGS)
def test_each_bad_setting_is_named(setting, value):
    with pytest.raises(HyperTrackerConfigError) as error:
        resolve_settings(**{**GOOD_SETTINGS, setting: value})
    assert error.value.setting == setting


BAD_PAIRS = list(itertools.combinations(BAD_SETTINGS, 2))
"""Every two bad settings, the one checked first first."""


@pytest.mark.parametrize(
    ("first", "second"), BAD_PAIRS, ids=[f"{first}-before-{second}" for first, second in BAD_PAIRS]
)
def test_of_two_bad_settings_the_one_checked_first_is_named(first, second):
    with pytest.raises(HyperTrackerConfigError) as error:
        resolve_settings(
            **{**GOOD_SETTINGS, first: BAD_SETTINGS[first], second: BAD_SETTINGS[second]}
        )
    assert error.value.setting == first


def test_report_package_and_its_constants_import_without_plotly():
    blocked = "import sys; sys.modules['plotly'] = None; "
    for module in ("hypertracker_source.report", "hypertracker_source.report.settings"):
        subprocess.run([sys.executable, "-c", f"{blocked}import {module}"], check=True)
