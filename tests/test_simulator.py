"""The simulator keeps the documented API's promises and traps, checked over real HTTP."""

import base64
import gzip
import itertools
import os
import re
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
import requests
from helpers import api_fill_key

from hypertracker_source.simulator import Faults, Simulator, start_simulator_process

API_KEY = "sim-key"
FILLS = "/api/external/fills/liquidation"
SEGMENTS = "/api/external/segments"
STATUS = "/api/external/hypertracker/state/status"
OPTIONAL_FIELDS = ("tid", "oid", "crossed", "builder", "builderFee", "feeToken")
ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


def heatmap_path(coin: str) -> str:
    """The API path of a coin's heatmap export."""
    return f"/api/external/exports/coins/{coin}/liquidation-heatmap"


def risk_path(segment_id: int | str) -> str:
    """The API path of a cohort's liquidation risk."""
    return f"/api/external/{segment_id}/assets/liquidation-risk"


def epoch_ms(text: str) -> int:
    """An API instant as epoch milliseconds."""
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def iso(value_ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 string."""
    moment = datetime.fromtimestamp(value_ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture(scope="module")
def sims() -> Iterator[dict[str, Simulator]]:
    """Read-only simulators with the same data, one per documented fill order."""
    with (
        Simulator(seed=7, fills=5000, api_key=API_KEY) as newest,
        Simulator(seed=7, fills=5000, api_key=API_KEY, fill_order="notes") as notes,
    ):
        yield {"newest": newest, "notes": notes}


@pytest.fixture(scope="module")
def sim(sims: dict[str, Simulator]) -> Simulator:
    """The read-only simulator whose fills come newest first."""
    return sims["newest"]


@pytest.fixture
def fresh() -> Iterator[Simulator]:
    """A small simulator of the test's own, free to change."""
    with Simulator(seed=3, fills=400, api_key=API_KEY) as sim:
        yield sim


@pytest.fixture(scope="module")
def client() -> Iterator[requests.Session]:
    """An HTTP session that sends the API key."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {API_KEY}"
        yield session


def fetch(
    client: requests.Session,
    sim: Simulator,
    path: str,
    allow_redirects: bool = True,
    **params: Any,
) -> requests.Response:
    """A GET of an API path."""
    return client.get(sim.url + path, params=params, allow_redirects=allow_redirects, timeout=10)


def all_pages(
    client: requests.Session, sim: Simulator, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every fill of a query, following nextCursor, and how many pages it took."""
    fills: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        page_params = params if cursor is None else {**params, "nextCursor": cursor}
        answer = fetch(client, sim, FILLS, **page_params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        assert body["fills"] or pages == 1, "a cursor led to an empty page"
        fills += body["fills"]
        cursor = body["nextCursor"]
        if cursor is None:
            return fills, pages


def test_requests_need_the_bearer_token(sim: Simulator) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}):
        answer = requests.get(sim.url + SEGMENTS, headers=headers, timeout=10)
        assert answer.status_code == 401
        assert answer.json() == {"statusCode": 401, "message": "Unauthorized"}


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
    assert len({fill["time"] for fill in fills}) < len(fills) / 3, "fills share block times"


@pytest.mark.parametrize("export_mode", ["redirect", "download_url", "inline"])
def test_export_modes(export_mode: str, client: requests.Session) -> None:
    with Simulator(seed=5, fills=10, api_key=API_KEY, export_mode=export_mode) as sim:
        answer = fetch(client, sim, heatmap_path("btc"))
        assert answer.status_code == 200
        if export_mode == "download_url":
            link = answer.json()["downloadUrl"]
            assert link.startswith(sim.file_url + "/hypertracker-exports/BTC/")
            answer = requests.get(link, timeout=10)
        if export_mode == "redirect":
            assert answer.history[0].status_code == 302
            assert answer.history[0].headers["Location"].startswith(sim.file_url)
        assert answer.headers["Content-Type"] == "application/json"
        assert answer.json() == {"coin": "BTC", "heatmap": sim.expected_heatmap("BTC")}
        assert 200 <= len(answer.json()["heatmap"]) <= 400
        downloads = [record for record in sim.requests if record.host == "files"]
        assert len(downloads) == (export_mode != "inline")
        assert all("Authorization" not in record.headers for record in downloads)
        assert sim.request_counts()["export"] == 1


def test_heatmap_coin_is_case_insensitive_and_unknown_coins_are_404(
    sim: Simulator, client: requests.Session
) -> None:
    answer = fetch(client, sim, heatmap_path("XYZ:MSTR"))
    assert answer.json()["coin"] == "xyz:MSTR"
    missing = fetch(client, sim, heatmap_path("XYZ:GOLD"))
    assert missing.status_code == 404
    assert missing.json() == {
        "statusCode": 404,
        "message": "XYZ:GOLD not found",
        "error": "Not Found",
    }


def test_presigned_link_refuses_credentials_and_tampering(
    sim: Simulator, client: requests.Session
) -> None:
    link = fetch(client, sim, heatmap_path("HYPE"), allow_redirects=False)
    location = link.headers["Location"]
    assert "X-Amz-Expires=30&" in location
    refused = client.get(location, timeout=10)
    assert refused.status_code == 400
    assert refused.headers["Content-Type"] == "application/xml"
    assert "<Code>InvalidArgument</Code>" in refused.text
    assert "Only one auth mechanism allowed" in refused.text
    tampered = requests.get(location.replace("-v1.json", "-v2.json"), timeout=10)
    assert tampered.status_code == 403
    assert "<Code>SignatureDoesNotMatch</Code>" in tampered.text
    assert requests.get(location, timeout=10).status_code == 200


def test_links_expire(fresh: Simulator, client: requests.Session) -> None:
    fresh.faults.expire_next_links = 1
    expired = fetch(client, fresh, heatmap_path("SOL"))
    assert expired.status_code == 403
    assert "<Code>AccessDenied</Code><Message>Request has expired</Message>" in expired.text
    assert fresh.faults.expire_next_links == 0
    assert fetch(client, fresh, heatmap_path("SOL")).status_code == 200
    assert [record.status for record in fresh.requests if record.host == "files"] == [403, 200]


def test_short_lived_links_expire(client: requests.Session) -> None:
    with Simulator(seed=5, fills=10, api_key=API_KEY, link_ttl=1) as sim:
        location = fetch(client, sim, heatmap_path("ETH"), allow_redirects=False).headers[
            "Location"
        ]
        time.sleep(2.05)
        assert requests.get(location, timeout=10).status_code == 403


def test_gzip_files_come_without_content_encoding(client: requests.Session) -> None:
    for export_mode in ("redirect", "inline"):
        with Simulator(
            seed=5, fills=10, api_key=API_KEY, export_mode=export_mode, gzip_files=True
        ) as sim:
            answer = fetch(client, sim, heatmap_path("kpepe"))
            assert answer.headers["Content-Type"] == "application/gzip"
            assert "Content-Encoding" not in answer.headers
            content = orjson.loads(gzip.decompress(answer.content))
            assert content == {"coin": "kPEPE", "heatmap": sim.expected_heatmap("kPEPE")}


def test_a_link_serves_the_version_it_was_made_in(
    fresh: Simulator, client: requests.Session
) -> None:
    before = fresh.expected_heatmap("BTC")
    location = fetch(client, fresh, heatmap_path("BTC"), allow_redirects=False).headers["Location"]
    fresh.advance_state()
    assert requests.get(location, timeout=10).json()["heatmap"] == before
    after = fetch(client, fresh, heatmap_path("BTC")).json()["heatmap"]
    assert after == fresh.expected_heatmap("BTC") != before


def test_risk_pages_cover_the_total_count(sim: Simulator, client: requests.Session) -> None:
    items: list[dict[str, Any]] = []
    while True:
        page = fetch(client, sim, risk_path(9), offset=len(items)).json()
        assert page["totalCount"] == 294
        if not page["items"]:
            break
        items += page["items"]
    assert items == sim.expected_risk(9)
    assert len({item["coin"] for item in items}) == 294
    percents = [item["percentRisk"] for item in items]
    assert percents == sorted(percents, reverse=True)
    zero = [item for item in items if item["percentRisk"] == 0]
    assert 0.35 < len(zero) / len(items) < 0.65
    assert all(item["riskValue"] == 0 for item in zero)
    assert len(fetch(client, sim, risk_path(9), limit=500).json()["items"]) == 294
    assert fetch(client, sim, risk_path(9), limit=501).json()["message"] == (
        "limit must not be greater than 500"
    )
    assert fetch(client, sim, risk_path(9), offset=-1).status_code == 400
    missing = fetch(client, sim, risk_path(17))
    assert (missing.status_code, missing.json()["message"]) == (404, "Segment 17 not found")
    assert fetch(client, sim, risk_path("x")).status_code == 404


def test_segments_are_the_16_cohorts(sim: Simulator, client: requests.Session) -> None:
    segments = fetch(client, sim, SEGMENTS).json()
    assert segments == sim.segments
    by_id = {segment["id"]: segment for segment in segments}
    assert sorted(by_id) == list(range(1, 17))
    assert by_id[9] | {"emoji": ""} == {
        "id": 9,
        "name": "Smart Money",
        "category": "pnl",
        "criteria": {"minPnl": 100000, "maxPnl": 1000000},
        "emoji": "",
    }
    assert by_id[7]["criteria"] == {"minEquity": 5000000}
    assert by_id[15]["criteria"] == {"maxPnl": -1000000}
    assert by_id[16]["criteria"] == {"minEquity": 0, "maxEquity": 250}
    assert Counter(segment["category"] for segment in segments) == {"size": 8, "pnl": 8}


def test_status_and_advance_state(fresh: Simulator, client: requests.Session) -> None:
    status = fetch(client, fresh, STATUS).json()
    updated = epoch_ms(status["lastUpdate"])
    assert updated == round(fresh.last_update.timestamp() * 1000)
    assert epoch_ms(status["nextUpdate"]) == updated + 20 * 60_000
    assert epoch_ms(status["nextUpdateThreshold"]) == updated + 30 * 60_000
    newest = fresh.expected_fills()[-1]["time"]
    risk_before = fresh.expected_risk(3)

    assert fresh.advance_state(new_fills=5, late_fills=3, late_by=timedelta(minutes=10)) == 2
    assert fresh.version == 2
    advanced = epoch_ms(fetch(client, fresh, STATUS).json()["lastUpdate"])
    assert advanced == round(fresh.last_update.timestamp() * 1000) > updated
    assert fresh.expected_risk(3) != risk_before
    assert len(fresh.expected_fills()) == 408
    new = fetch(client, fresh, FILLS, start=iso(epoch_ms(newest) + 1)).json()["fills"]
    assert len(new) == 5
    assert all(advanced - 60_000 <= epoch_ms(fill["time"]) <= advanced for fill in new)
    late_window = {"start": iso(advanced - 11 * 60_000), "end": iso(epoch_ms(newest) - 1)}
    late = fetch(client, fresh, FILLS, **late_window).json()["fills"]
    assert [epoch_ms(fill["time"]) for fill in late] == [
        advanced - 10 * 60_000 - n for n in range(3)
    ]


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


def test_simulator_process() -> None:
    with start_simulator_process(fills=200, api_key=API_KEY, seed=9) as process:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        assert requests.get(process.url + SEGMENTS, headers=headers, timeout=10).ok
        assert process.file_url.startswith("http://localhost:")
        assert process.request_counts() == {"segments": 1}
        assert process.advance_state(new_fills=3) == 2
        process.set_faults(error_rate=1.0)
        assert requests.get(process.url + STATUS, headers=headers, timeout=10).status_code >= 500
        process.reset_requests()
        assert process.request_counts() == {}
    assert process.process.poll() is not None


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
