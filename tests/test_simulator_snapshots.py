"""The simulator's snapshots: heatmap exports and their pre-signed links, risk, segments and
the status of its data versions."""

import gzip
import re
import time
from collections import Counter
from datetime import timedelta
from typing import Any

import orjson
import pytest
import requests
from helpers import (
    API_KEY,
    FILLS,
    SEGMENTS,
    STATUS,
    epoch_ms,
    fetch,
    heatmap_path,
    iso,
    risk_path,
)

from hypertracker_simulator import Simulator

STATUS_TIMES = ("lastUpdate", "nextUpdate", "nextUpdateThreshold")
ISO_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")


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
    assert all(ISO_MS.fullmatch(status[name]) for name in STATUS_TIMES)
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
    late_window = {"start": iso(advanced - 11 * 60_000), "end": iso(advanced - 10 * 60_000)}
    late = fetch(client, fresh, FILLS, **late_window).json()["fills"]
    assert [epoch_ms(fill["time"]) for fill in late] == [
        advanced - 10 * 60_000 - n for n in range(3)
    ]
