"""Properties, over generated input: the fill key, the windows, and merges of overlapping reads."""

from datetime import timedelta
from typing import Any, NamedTuple

import pendulum
import pytest
from helpers import (
    FILL_KEY,
    PipelineFactory,
    api_fill_key,
    assert_fills_equal,
    epoch_ms,
    source_for,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hypertracker_simulator import Simulator
from hypertracker_source.fills.pages import fills_table
from hypertracker_source.fills.windows import Window, backfill_windows, split_windows

WALLETS = (
    "0x00000000000000000000000000000000000000a1",
    "0x00000000000000000000000000000000000000b2",
)
COINS = ("BTC", "kPEPE", "xyz:MSTR")
FIRST_MS = epoch_ms("2026-05-28T17:27:35.000Z")
OPTIONAL_FIELDS = ("tid", "oid", "crossed", "builder", "builderFee", "feeToken")
ONE_MS = timedelta(milliseconds=1)


class Fill(NamedTuple):
    """A fill as it happened: which one it is (its `tid`), and the API row that reports it."""

    tid: int
    row: dict[str, Any]


@st.composite
def liquidation_orders(draw: st.DrawFn) -> list[dict[str, Any]]:
    """The rows of one liquidation order: one wallet, coin, side and millisecond, in pieces.

    Each piece starts from the position the previous one left, as on Hyperliquid; prices may
    repeat, sizes may be integers.
    """
    side = draw(st.sampled_from("AB"))
    units = draw(st.lists(st.integers(1, 2_000), min_size=1, max_size=4))
    scale = draw(st.sampled_from((1, 10, 1000)))
    sign = 1 if side == "A" else -1
    time_ms = draw(st.integers(FIRST_MS, FIRST_MS + 2))
    order = {
        "address": draw(st.sampled_from(WALLETS)),
        "coin": draw(st.sampled_from(COINS)),
        "time": pendulum.from_timestamp(time_ms / 1000).format("YYYY-MM-DDTHH:mm:ss.SSS[Z]"),
        "side": side,
        "oid": draw(st.integers(10**11, 10**12)),
        "hash": "0x" + "0" * 64,
        "closedPnl": -1.5,
        "fee": 0,
    }
    rows, left = [], sum(units)
    for piece in units:
        price = draw(st.sampled_from((81.697, 81.7, 82.0)))
        position = sign * left / scale
        rows.append({**order, "px": price, "sz": piece / scale, "startPosition": position})
        left -= piece
    return rows


@st.composite
def fills_as_sent(draw: st.DrawFn) -> tuple[list[int], list[dict[str, Any]]]:
    """Distinct fills, each sent one or more times, each time as the API may render it.

    A copy may spell the address in upper case, lack any optional field, or write an integral
    number as an integer; orders of one wallet and coin never share a millisecond.
    """
    orders = draw(
        st.lists(
            liquidation_orders(),
            min_size=1,
            max_size=8,
            unique_by=lambda order: (order[0]["address"], order[0]["coin"], order[0]["time"]),
        )
    )
    rows = [row for order in orders for row in order]
    fills = [Fill(10**14 + number, row) for number, row in enumerate(rows)]
    sent = draw(st.lists(st.sampled_from(fills), min_size=len(fills), max_size=3 * len(fills)))
    sent += fills
    tids, copies = [], []
    for fill in draw(st.permutations(sent)):
        copy = {**fill.row, "tid": fill.tid, "liquidatedUser": fill.row["address"]}
        for field in draw(st.sets(st.sampled_from(OPTIONAL_FIELDS))):
            copy.pop(field, None)
        if draw(st.booleans()):
            copy["address"] = "0x" + copy["address"][2:].upper()
        for field in ("sz", "startPosition", "px"):
            if draw(st.booleans()) and float(copy[field]).is_integer():
                copy[field] = int(copy[field])
        tids.append(fill.tid)
        copies.append(copy)
    return tids, copies


@given(fills_as_sent())
# No deadline per example: a hang is the per-test timeout's to catch, and 200 ms per example
# failed on a machine shared with other runs (435 ms).
@settings(deadline=None)
def test_keys_are_equal_exactly_when_the_fills_are_the_same(sent):
    tids, rows = sent
    table = fills_table(rows).select(list(FILL_KEY))
    keys = [tuple(row.values()) for row in table.to_pylist()]
    assert all(None not in key for key in keys)
    fill_of_key = dict(zip(keys, tids, strict=True))
    assert all(fill_of_key[key] == tid for key, tid in zip(keys, tids, strict=True))
    assert len(fill_of_key) == len(set(tids))


def kept_by(window: Window, moment: pendulum.DateTime) -> bool:
    """Whether a window keeps a fill at this moment."""
    after_start = window.kept_from is None or moment >= window.kept_from
    return after_start and (window.kept_before is None or moment < window.kept_before)


def read_by(window: Window, moment: pendulum.DateTime) -> bool:
    """Whether a window's query returns a fill at this moment, however the API reads its ends."""
    return window.start < moment < window.end


history_instants = st.datetimes(
    min_value=pendulum.datetime(2025, 7, 27).naive(),
    max_value=pendulum.datetime(2027, 1, 1).naive(),
).map(lambda moment: pendulum.instance(moment, tz="UTC"))


def moments_within(start: pendulum.DateTime, windows: list[Window]) -> st.SearchStrategy:
    """Moments after `start`, biased to the windows' edges and a millisecond either side."""
    edges = [edge for w in windows for edge in (w.start, w.end, w.kept_from, w.kept_before) if edge]
    near_edges = [edge + step * ONE_MS for edge in edges for step in (-1, 0, 1)]
    return st.one_of(
        st.sampled_from([edge for edge in near_edges if edge > start]),
        st.timedeltas(ONE_MS, timedelta(days=1500)).map(lambda offset: start + offset),
    )


@given(history_instants, st.timedeltas(timedelta(0), timedelta(days=700)), st.data())
def test_every_moment_is_read_and_kept_by_exactly_one_window(start, length, data):
    start = start.replace(microsecond=start.microsecond // 1000 * 1000)
    end = start + length + ONE_MS
    for windows, half_open in (
        (split_windows(start, end), False),
        (backfill_windows(start, end), True),
    ):
        moment = data.draw(moments_within(start, windows))
        keepers = [window for window in windows if kept_by(window, moment)]
        if moment < end:
            assert len(keepers) == 1
            assert read_by(keepers[0], moment)
        elif half_open:
            assert keepers == []
    backfill = backfill_windows(start, end)
    assert kept_by(backfill[0], start) and read_by(backfill[0], start)
    assert not [window for window in backfill if kept_by(window, start - ONE_MS)]


@pytest.mark.slow
@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.data())
def test_overlapping_backfills_merge_without_duplicates(
    simulator: Simulator, make_pipeline: PipelineFactory, data: st.DataObject
):
    # the examples share the simulator: its data never change
    times = sorted({epoch_ms(fill["time"]) for fill in simulator.expected_fills()})
    boundary = st.one_of(st.sampled_from(times), st.integers(times[0], times[-1]))
    ranges = data.draw(st.lists(st.tuples(boundary, boundary), min_size=2, max_size=3))
    page_size = data.draw(st.sampled_from((200, 1000)))
    pipeline = make_pipeline()
    expected: dict[tuple, dict[str, Any]] = {}
    for first_ms, second_ms in ranges:
        start_ms, end_ms = sorted((first_ms, second_ms + 1 if first_ms == second_ms else second_ms))
        start, end = (pendulum.from_timestamp(ms / 1000) for ms in (start_ms, end_ms))
        source = source_for(simulator, start_date=start, end_date=end, page_size=page_size)
        pipeline.run(source.with_resources("liquidation_fills"))
        for fill in simulator.expected_fills():
            if start_ms <= epoch_ms(fill["time"]) < end_ms:
                expected[api_fill_key(fill)] = fill
    assert_fills_equal(pipeline, list(expected.values()))
