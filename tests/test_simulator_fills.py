"""The simulator's fills: the documented validation, windows, paging, orders and traps."""

import base64
import itertools
import os
import re
import time
from collections import defaultdict
from datetime import timedelta
from typing import Any

import pytest
import requests
from helpers import (
    API_KEY,
    FILLS,
    all_pages,
    api_fill_key,
    epoch_ms,
    fetch,
)
from oracles import expected_cascades

from hypertracker_simulator import Simulator
from hypertracker_simulator.fills import FillTable
from hypertracker_simulator.hostile import BAD_FILL_KINDS, OVERSIZED_FIELD, break_fill
from hypertracker_source.report.settings import CASCADE_MAX_GAP_SECONDS

OPTIONAL_FIELDS = ("tid", "oid", "crossed", "builder", "builderFee", "feeToken")
ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"limit": "1001"}, "limit must not be greater than 1000"),
        ({"limit": "0"}, "limit must not be less than 1"),
        ({"limit": "ten"}, "limit must be an integer number"),
        ({"limit": "2.5"}, "limit must be an integer number"),
        ({"side": "C"}, "side must be one of the following values: A, B"),
        ({"side": "b"}, "side must be one of the following values: A, B"),
        ({"start": "yesterday"}, "start must be a valid ISO 8601 date string"),
        ({"start": "1779989220762"}, "start must be a valid ISO 8601 date string"),
        ({"start": "2026-02-30T00:00:00Z"}, "start must be a valid ISO 8601 date string"),
        (
            {"start": "2026-01-01T00:00:00Z", "end": "1779989220762"},
            "end must be a valid ISO 8601 date string",
        ),
        ({"end": "2026-01-01T00:00:00Z"}, "end can only be provided together with start"),
        (
            {"start": "2026-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            "end must be later than start",
        ),
        (
            {"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"},
            "end must be later than start",
        ),
        (
            {"start": "2026-01-31T00:00:00Z", "end": "2026-04-30T00:00:00.001Z"},
            "end must be within 3 months of start",
        ),
        ({"nextCursor": "not a cursor"}, "nextCursor is invalid"),
        ({"nextCursor": base64.urlsafe_b64encode(b'{"id": 5}').decode()}, "nextCursor is invalid"),
    ],
)
def test_invalid_fill_queries_are_refused(
    sim: Simulator, client: requests.Session, params: dict[str, str], message: str
) -> None:
    answer = fetch(client, sim, FILLS, **params)
    assert answer.status_code == 400
    assert answer.json() == {"statusCode": 400, "message": message, "error": "Bad Request"}


def test_three_months_are_calendar_months_clamped_to_month_end(
    sim: Simulator, client: requests.Session
) -> None:
    window = {"start": "2026-01-31T00:00:00Z", "end": "2026-04-30T00:00:00Z"}
    assert fetch(client, sim, FILLS, **window).status_code == 200
    answer = fetch(client, sim, FILLS, start="2026-01-31T00:00:00Z", end="2026-05-01T00:00:00Z")
    assert answer.status_code == 400


def test_default_limit_and_ignored_parameters(sim: Simulator, client: requests.Session) -> None:
    first = fetch(client, sim, FILLS).json()
    assert len(first["fills"]) == 500
    again = fetch(client, sim, FILLS, cursor=first["nextCursor"], unknown="x").json()
    assert again == first


def test_window_ends_are_inclusive(sim: Simulator, client: requests.Session) -> None:
    everything = sim.expected_fills()
    times = sorted({fill["time"] for fill in everything})
    start, end = times[100], times[140]
    fills, _ = all_pages(client, sim, start=start, end=end, limit=1000)
    assert fills == [fill for fill in everything if start <= fill["time"] <= end][::-1]
    assert {fill["time"] for fill in fills} == set(times[100:141])
    early, _ = all_pages(client, sim, start="2025-07-01T00:00:00Z", limit=1000)
    assert [fill["time"] for fill in early] == [
        fill["time"] for fill in everything if fill["time"] <= "2025-10-01T00:00:00.000Z"
    ][::-1]
    assert early[-1]["time"] == "2025-07-27T00:00:00.000Z"


@pytest.mark.parametrize("fill_order", ["newest", "notes"])
@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"coin": "BTC"},
        {"side": "A"},
        {"coin": "HYPE", "side": "B"},
        {"address": "in window"},
    ],
)
@pytest.mark.parametrize("windowed", [False, True])
def test_paging_returns_every_fill_once(
    sims: dict[str, Simulator],
    client: requests.Session,
    fill_order: str,
    filters: dict[str, str],
    windowed: bool,
) -> None:
    sim = sims[fill_order]
    if filters.get("address") == "in window":
        address = sim.expected_fills()[5000 // 4]["address"]
        filters = {"address": address.upper().replace("0X", "0x")}
    expected = sim.expected_fills(**filters)
    params: dict[str, Any] = {**filters, "limit": 97}
    if windowed:
        times = [fill["time"] for fill in sim.expected_fills()]
        params |= {"start": times[len(times) // 5], "end": times[len(times) // 3]}
        window = (epoch_ms(params["start"]), epoch_ms(params["end"]))
        expected = [f for f in expected if window[0] <= epoch_ms(f["time"]) <= window[1]]
    fills, pages = all_pages(client, sim, **params)
    assert expected
    assert sorted(fills, key=api_fill_key) == sorted(expected, key=api_fill_key)
    assert len(set(map(api_fill_key, fills))) == len(fills)
    assert pages == max(1, -(-len(expected) // 97))
    times = [epoch_ms(fill["time"]) for fill in fills]
    ascending = fill_order == "notes" and windowed
    assert times == sorted(times, reverse=not ascending)


def test_coin_is_case_sensitive_and_address_is_not(
    sim: Simulator, client: requests.Session
) -> None:
    assert fetch(client, sim, FILLS, coin="btc").json() == {"fills": [], "nextCursor": None}
    assert fetch(client, sim, FILLS, coin="BTC").json()["fills"]
    address = sim.expected_fills()[0]["address"]
    upper = fetch(client, sim, FILLS, address=address.upper(), limit=1000).json()["fills"]
    assert upper == sim.expected_fills(address=address)[::-1]


def test_rows_carry_the_documented_traps(sim: Simulator) -> None:
    fills = sim.expected_fills()
    lacking = [fill for fill in fills if "tid" not in fill]
    assert 0.10 < len(lacking) / len(fills) < 0.19
    assert all(not set(OPTIONAL_FIELDS) & fill.keys() for fill in lacking)
    builder_fees = [fill["builderFee"] for fill in fills if "builderFee" in fill]
    assert {type(fee) for fee in builder_fees} == {int, float}
    assert all(fee == 0 for fee in builder_fees if isinstance(fee, int))
    assert any(isinstance(fill["fee"], int) for fill in fills)
    zero_hashes = sum(fill["hash"] == "0x" + "0" * 64 for fill in fills)
    assert 0.01 < zero_hashes / len(fills) < 0.06
    for fill in fills:
        assert fill["liquidatedUser"] == fill["address"]
        assert re.fullmatch(r"0x[0-9a-f]{40}", fill["address"])
        assert ISO_MS.fullmatch(fill["time"])
        assert fill["dir"] == {"A": "Close Long", "B": "Close Short"}[fill["side"]]
        assert (fill["startPosition"] > 0) == (fill["side"] == "A")
        assert fill["fillType"] == "perp" and not fill["coin"].startswith("@")
        assert fill["liquidationMethod"] in ("market", "backstop")
    coins = {fill["coin"] for fill in fills}
    assert {"BTC", "kPEPE", "xyz:MSTR", "cash:HOOD", "flx:GOLD", "hyna:BTC"} <= coins
    assert len({fill["address"] for fill in fills}) > 1000


def test_partial_fills_share_an_order_and_add_up(sim: Simulator) -> None:
    orders = defaultdict(list)
    for fill in sim.expected_fills():
        orders[fill["address"], fill["coin"], fill["time"], fill["side"], fill["hash"]].append(fill)
    partial = [pieces for pieces in orders.values() if len(pieces) > 1]
    assert 0.15 < 4 * len(partial) / 5000 < 0.25
    for pieces in partial:
        assert len(pieces) == 4
        assert len({fill["oid"] for fill in pieces if "oid" in fill}) <= 1
        tids = [fill["tid"] for fill in pieces if "tid" in fill]
        assert len(set(tids)) == len(tids)
        sign = 1 if pieces[0]["side"] == "A" else -1
        assert sum(fill["sz"] for fill in pieces) == pytest.approx(
            sign * pieces[0]["startPosition"]
        )
        for piece, following in itertools.pairwise(pieces):
            expected_start = piece["startPosition"] - sign * piece["sz"]
            assert following["startPosition"] == pytest.approx(expected_start)


def test_fill_identity_is_unique_on_100k_fills() -> None:
    sim = Simulator(seed=42, fills=100_000, api_key=API_KEY)
    sim.advance_state(new_fills=300, late_fills=300)
    sim.advance_state(new_fills=100, late_fills=100, late_by=timedelta(0))
    fills = sim.expected_fills()
    assert len(fills) == 100_800
    assert len({api_fill_key(fill) for fill in fills}) == len(fills)
    shared = len(fills) - len({fill["time"] for fill in fills})
    assert shared > len(fills) / 10, "the pieces of an order share a time"


def resident_mb() -> float:
    """This process's resident memory now, in MB (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def test_a_million_fills(client: requests.Session) -> None:
    started = time.perf_counter()
    sim = Simulator(seed=1, fills=1_000_000, api_key=API_KEY)
    built = time.perf_counter() - started
    resident = resident_mb()
    with sim:
        fetch(client, sim, FILLS, limit=1000)
        started = time.perf_counter()
        pages = [fetch(client, sim, FILLS, limit=1000) for _ in range(5)]
        page_ms = (time.perf_counter() - started) / 5 * 1000
    assert all(len(page.json()["fills"]) == 1000 for page in pages)
    print(
        f"\n1M fills: built in {built:.2f} s, process resident memory then {resident:.0f} MB;"
        f" a 1000-row page over HTTP (client in the same process) took {page_ms:.1f} ms"
    )


def test_hostile_fills_are_opt_in_and_broken_the_same_way_on_every_read(
    fresh: Simulator, client: requests.Session
):
    sound, _ = all_pages(client, fresh, limit=1000)
    fresh.faults.bad_fill_rate = 0.1

    first, _ = all_pages(client, fresh, limit=1000)
    again, _ = all_pages(client, fresh, limit=100)

    assert first == again
    kinds = fresh.bad_fill_kinds()[::-1]
    broken = [
        break_fill(fill, kind, fresh.faults.oversized_field_bytes) if kind else fill
        for fill, kind in zip(sound, kinds, strict=True)
    ]
    assert first == broken
    assert set(kinds) == {None, *BAD_FILL_KINDS}
    assert 0.05 < sum(kind is not None for kind in kinds) / len(kinds) < 0.15
    oversized = [fill for fill, kind in zip(first, kinds, strict=True) if kind == "oversized_field"]
    assert {len(fill[OVERSIZED_FIELD]) for fill in oversized} == {
        2 + fresh.faults.oversized_field_bytes
    }


DEMO_LIKE_HISTORY_MS = (1_753_574_400_000, 1_796_256_000_000)
"""From 2025-07-27 to 2026-12-01: the demo's history, fixed so that two tables are comparable."""


def test_cascades_last_seconds_to_minutes_some_across_coins_deterministically() -> None:
    table = FillTable.generate(7, 20_000, *DEMO_LIKE_HISTORY_MS)
    fills = [table.row(position) for position in range(len(table))]
    cascades = expected_cascades(fills)
    lasted = sorted((c["ended_ms"] - start) / 1000 for (_, start), c in cascades.items())
    spans = sorted((start, c["ended_ms"], coin) for (coin, start), c in cascades.items())
    across = [
        (first[2], second[2])
        for first, second in itertools.pairwise(spans)
        if first[2] != second[2] and second[0] - first[1] <= CASCADE_MAX_GAP_SECONDS * 1000
    ]

    assert len(cascades) >= 100
    assert lasted[0] >= 1 and lasted[-1] >= 120
    assert 10 <= lasted[len(lasted) // 2] <= 90
    assert len(across) >= 5
    assert [epoch_ms(fill["time"]) for fill in fills] == sorted(table.times)
    again = FillTable.generate(7, 20_000, *DEMO_LIKE_HISTORY_MS)
    assert [again.row(position) for position in range(len(again))] == fills
