"""Unit tests: the fill key, the window splitter and the settings checks."""

import itertools
from datetime import timedelta

import pendulum
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hypertracker_source import hypertracker
from hypertracker_source.exceptions import HyperTrackerConfigError
from hypertracker_source.fills import fills_table, split_windows, window_end
from hypertracker_source.resolve import as_list, check_start_date
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
    assert check_start_date("2020-01-01") == pendulum.datetime(2025, 7, 27)
    assert check_start_date("2026-02-25") == pendulum.datetime(2026, 2, 25)
