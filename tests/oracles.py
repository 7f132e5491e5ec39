"""What the dbt models and the report should find, computed in Python from the simulator's fills."""

from collections import defaultdict
from itertools import pairwise
from typing import Any

from helpers import epoch_ms

from hypertracker_source.report.settings import CASCADE_MAX_GAP_SECONDS, CASCADE_MIN_WALLETS


def fill_order(fill: dict[str, Any]) -> tuple:
    """The order the models take one coin's fills in: time, then wallet, then start position."""
    return epoch_ms(fill["time"]), fill["address"], fill["startPosition"]


def expected_cascades(fills: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
    """Bursts of one coin's fills, each within the gap of the one before, of enough wallets."""
    by_coin: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for fill in fills:
        by_coin[fill["coin"]].append(fill)
    cascades = {}
    for coin, coin_fills in by_coin.items():
        coin_fills.sort(key=fill_order)
        bursts = [[coin_fills[0]]]
        for before, fill in pairwise(coin_fills):
            if epoch_ms(fill["time"]) - epoch_ms(before["time"]) <= CASCADE_MAX_GAP_SECONDS * 1000:
                bursts[-1].append(fill)
            else:
                bursts.append([fill])
        for burst in bursts:
            wallets = {fill["address"] for fill in burst}
            if len(wallets) >= CASCADE_MIN_WALLETS:
                cascades[coin, epoch_ms(burst[0]["time"])] = {
                    "fills": len(burst),
                    "wallets": len(wallets),
                    "notional": sum(fill["px"] * fill["sz"] for fill in burst),
                    "first_price": burst[0]["px"],
                    "last_price": burst[-1]["px"],
                    "ended_ms": epoch_ms(burst[-1]["time"]),
                }
    return cascades


def expected_mark(fills: list[dict[str, Any]], coin: str) -> float:
    """The mark price of a coin's last liquidation (the simulator's fills all precede its data)."""
    return max((f for f in fills if f["coin"] == coin), key=fill_order)["liquidationMarkPx"]


def expected_hourly(fills: list[dict[str, Any]]) -> dict[tuple[str, str, int], tuple[int, float]]:
    """Fills and notional per coin, side and hour (as epoch hours)."""
    hourly: dict[tuple[str, str, int], list] = defaultdict(lambda: [0, 0.0])
    for fill in fills:
        cell = hourly[fill["coin"], fill["side"], epoch_ms(fill["time"]) // 3_600_000]
        cell[0] += 1
        cell[1] += fill["px"] * fill["sz"]
    return {key: (count, value) for key, (count, value) in hourly.items()}
