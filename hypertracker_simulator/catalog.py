"""Static facts of the simulated exchange: perp markets, fee tokens and the 16 cohorts."""

from typing import Any, NamedTuple

from .hashing import text_key


class Market(NamedTuple):
    """A perp market: its coin name, a typical price, size decimals and share of liquidations."""

    coin: str
    price: float
    sz_decimals: int
    weight: int


MARKETS: tuple[Market, ...] = (
    Market("BTC", 104_000.0, 5, 30),
    Market("ETH", 3_600.0, 4, 22),
    Market("HYPE", 41.0, 2, 16),
    Market("SOL", 180.0, 2, 14),
    Market("XRP", 2.4, 0, 8),
    Market("DOGE", 0.21, 0, 8),
    Market("SUI", 3.4, 1, 6),
    Market("AVAX", 24.0, 2, 4),
    Market("LINK", 19.0, 1, 4),
    Market("BNB", 690.0, 3, 4),
    Market("ADA", 0.78, 0, 4),
    Market("LTC", 98.0, 2, 3),
    Market("ENA", 0.62, 0, 6),
    Market("FARTCOIN", 1.1, 1, 8),
    Market("PUMP", 0.0052, 0, 8),
    Market("WIF", 0.95, 0, 4),
    Market("AAVE", 280.0, 2, 3),
    Market("TRUMP", 9.5, 1, 4),
    Market("kPEPE", 0.0118, 0, 8),
    Market("kBONK", 0.024, 0, 4),
    Market("kSHIB", 0.0135, 0, 2),
    Market("TAO", 410.0, 3, 3),
    Market("ZEC", 310.0, 2, 5),
    Market("XPL", 0.91, 0, 5),
    Market("ASTER", 1.45, 0, 5),
    Market("LIGHTER", 2.9, 0, 3),
    Market("xyz:MSTR", 345.0, 3, 4),
    Market("xyz:NVDA", 182.0, 3, 4),
    Market("xyz:TSLA", 415.0, 3, 4),
    Market("xyz:XYZ100", 24_500.0, 4, 3),
    Market("cash:HOOD", 81.7, 3, 4),
    Market("cash:USA500", 6_450.0, 4, 2),
    Market("flx:GOLD", 3_350.0, 4, 3),
    Market("flx:OIL", 68.0, 2, 2),
    Market("flx:SILVER", 38.5, 2, 2),
    Market("hyna:BTC", 104_000.0, 5, 3),
    Market("hyna:ETH", 3_600.0, 4, 2),
    Market("hyna:SOL", 180.0, 2, 2),
)

MARKET_BY_COIN: dict[str, Market] = {market.coin: market for market in MARKETS}

FEE_TOKEN_BY_DEX: dict[str, str] = {"": "USDC", "xyz": "USDC", "cash": "USDT0", "flx": "USDH"}
DEFAULT_FEE_TOKEN = "USDE"


def market_price(coin: str) -> float:
    """A coin's typical price; coins outside the perp list get a stable made-up one."""
    market = MARKET_BY_COIN.get(coin)
    return market.price if market else 0.5 + text_key(coin) % 50_000 / 100


def fee_token(coin: str) -> str:
    """The token a market's fees are paid in, by its HIP-3 dex prefix."""
    dex = coin.partition(":")[0] if ":" in coin else ""
    return FEE_TOKEN_BY_DEX.get(dex, DEFAULT_FEE_TOKEN)


def weighted_coin_codes(size: int = 256) -> tuple[int, ...]:
    """A lookup table from a random byte to a market code, in proportion to market weights."""
    total = sum(market.weight for market in MARKETS)
    codes: list[int] = []
    cumulative = 0
    for code, market in enumerate(MARKETS):
        cumulative += market.weight
        codes.extend([code] * (cumulative * size // total - len(codes)))
    return tuple(codes)


def _cohort(
    segment_id: int, name: str, category: str, emoji: str, low: int | None, high: int | None
) -> dict[str, Any]:
    """A cohort as the segments endpoint renders it, open ends of its range omitted."""
    field = "Equity" if category == "size" else "Pnl"
    criteria = {f"min{field}": low, f"max{field}": high}
    return {
        "id": segment_id,
        "name": name,
        "category": category,
        "criteria": {key: value for key, value in criteria.items() if value is not None},
        "emoji": emoji,
    }


SEGMENTS: tuple[dict[str, Any], ...] = (
    _cohort(16, "Shrimp", "size", "🦐", 0, 250),
    _cohort(1, "Fish", "size", "🐟", 250, 10_000),
    _cohort(2, "Dolphin", "size", "🐬", 10_000, 50_000),
    _cohort(3, "Apex Predator", "size", "🦈", 50_000, 100_000),
    _cohort(4, "Small Whale", "size", "🐋", 100_000, 500_000),
    _cohort(5, "Whale", "size", "🐳", 500_000, 1_000_000),
    _cohort(6, "Tidal Whale", "size", "🌊", 1_000_000, 5_000_000),
    _cohort(7, "Leviathan", "size", "🐙", 5_000_000, None),
    _cohort(8, "Money Printer", "pnl", "🖨️", 1_000_000, None),
    _cohort(9, "Smart Money", "pnl", "🧠", 100_000, 1_000_000),
    _cohort(10, "Consistent Grinder", "pnl", "⚙️", 10_000, 100_000),
    _cohort(11, "Humble Earner", "pnl", "🌱", 0, 10_000),
    _cohort(12, "Exit Liquidity", "pnl", "🚪", -10_000, 0),
    _cohort(13, "Semi-Rekt", "pnl", "🩹", -100_000, -10_000),
    _cohort(14, "Full Rekt", "pnl", "💀", -1_000_000, -100_000),
    _cohort(15, "Giga-Rekt", "pnl", "⚰️", None, -1_000_000),
)

SEGMENT_IDS: frozenset[int] = frozenset(segment["id"] for segment in SEGMENTS)
