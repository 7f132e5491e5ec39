"""The current-snapshot data sets: per-coin liquidation heatmaps and per-cohort liquidation risk.

Each is deterministic from (seed, coin or segment, data version), so a new version changes values.
"""

import gzip
from functools import lru_cache
from math import exp, floor, log10
from typing import Any

import orjson

from .catalog import MARKETS, SEGMENT_IDS, market_price
from .hashing import mix, stream_key, text_key, unit

DEX_PREFIXES = ("", "", "", "", "xyz:", "flx:", "hyna:", "km:")
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def bin_width(price: float, bins: int) -> tuple[float, int]:
    """A heatmap bin width spanning about three times the price, and its decimals."""
    raw = 3.0 * price / bins
    decimals = max(0, 4 - floor(log10(raw)))
    return round(raw, decimals), decimals


def heatmap_bins(seed: int, coin: str, version: int) -> list[dict[str, Any]]:
    """The heatmap of a coin in a data version: 200 to 400 price bins."""
    coin_key = mix(stream_key(seed, "heatmap"), text_key(coin))
    value_key = mix(coin_key, version)
    price = market_price(coin)
    bins = 200 + coin_key % 201
    width, decimals = bin_width(price, bins)
    rows = []
    for index in range(bins):
        bits = mix(value_key, index)
        centre = (index + 0.5) * width
        closeness = exp(-(((centre - price) / (0.3 * price)) ** 2))
        empty = (bits >> 56) < 20
        value = 0 if empty else round(closeness * 8e7 * unit(bits) ** 2 + 500 * unit(bits >> 20), 5)
        rows.append(
            {
                "coin": coin,
                "priceBinIndex": index,
                "priceBinStart": round(index * width, decimals),
                "priceBinEnd": round((index + 1) * width, decimals),
                "liquidationValue": value,
                "positionsCount": 0 if empty else 1 + int(value // 25_000) + (bits >> 40) % 40,
                "mostImpactedSegment": 1 + (bits >> 48) % len(SEGMENT_IDS),
            }
        )
    return rows


@lru_cache(maxsize=256)
def heatmap_file(seed: int, coin: str, version: int, gzipped: bool) -> bytes:
    """The export file of a coin's heatmap in a data version, gzip-compressed or not."""
    body = orjson.dumps({"coin": coin, "heatmap": heatmap_bins(seed, coin, version)})
    return gzip.compress(body, mtime=0) if gzipped else body


@lru_cache(maxsize=8)
def risk_coins(seed: int, count: int, extra: tuple[str, ...] = ()) -> tuple[str, ...]:
    """The coins a liquidation-risk list covers: any extra names, the perp list, then made-up
    unique names."""
    names = [*extra, *(market.coin for market in MARKETS)][:count]
    taken = set(names)
    key = stream_key(seed, "risk-coin")
    attempt = 0
    while len(names) < count:
        bits = mix(key, attempt)
        attempt += 1
        letters = "".join(LETTERS[(bits >> (5 * n)) % 26] for n in range(3 + (bits >> 40) % 4))
        name = DEX_PREFIXES[(bits >> 50) % len(DEX_PREFIXES)] + letters
        if name not in taken:
            taken.add(name)
            names.append(name)
    return tuple(names)


def open_value(index: int, cohort_scale: float, draw: float) -> float:
    """A cohort's open value on the index-th risk coin: listed markets by weight, the rest small.

    The listed markets hold nearly all open interest, in proportion to their share of
    liquidations, as on the exchange; the long tail of small markets holds $100 to $100K each.
    """
    if index < len(MARKETS):
        return MARKETS[index].weight * 20_000.0 * cohort_scale * 50.0**draw
    return 100.0 * 1_000.0**draw


@lru_cache(maxsize=128)
def risk_items(
    seed: int, segment_id: int, version: int, count: int, extra: tuple[str, ...] = ()
) -> tuple[dict[str, Any], ...]:
    """A cohort's liquidation risk by coin in a data version, highest percentRisk first; extra
    coins weigh as the largest market and have at least half their open value at risk."""
    key = mix(mix(stream_key(seed, "risk"), segment_id), version)
    cohort_scale = 0.2 + 1.8 * unit(mix(stream_key(seed, "risk-cohort"), segment_id))
    items: list[dict[str, Any]] = []
    for index, coin in enumerate(risk_coins(seed, count, extra)):
        bits = mix(key, index)
        market_index = max(0, index - len(extra))
        total = round(open_value(market_index, cohort_scale, unit(bits)), 6)
        percent = round(0.01 + 99.99 * unit(bits >> 20) ** 3, 2) if bits >> 63 else 0
        if index < len(extra):
            percent = round(50 + 50 * unit(bits >> 20), 2)
        risk = round(total * percent / 100, 6) if percent else 0
        items.append({"coin": coin, "totalValue": total, "riskValue": risk, "percentRisk": percent})
    items.sort(key=lambda item: (-item["percentRisk"], item["coin"].casefold(), item["coin"]))
    return tuple(items)
