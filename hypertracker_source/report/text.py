"""How the report writes amounts, price ranges and times."""

from datetime import datetime


def money(value: float, digits: int = 3) -> str:
    """A USD amount to a few significant digits: $1.27B, $351M, $12.3K, $42.5, $0.0123."""
    magnitude = abs(value)
    for threshold, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "K")):
        if magnitude >= threshold:
            return f"${value / threshold:.{digits}g}{suffix}"
    return f"${value:.{digits}g}" if magnitude else "$0"


def price(value: float) -> str:
    """A price to five significant figures, as Hyperliquid quotes it: $104,250, $0.011834."""
    if abs(value) >= 1e5:
        return f"${value:,.0f}"
    return f"${value:,.5g}" if abs(value) < 1e4 else f"${value:,.1f}"


def price_range(start: float, end: float) -> str:
    """A price bin's range, precise enough to tell neighbouring bins apart."""
    return f"{money(start, 4)} to {money(end, 4)}"


def timestamp(moment: datetime) -> str:
    """An instant as the page writes it, in UTC to the minute."""
    return moment.strftime("%Y-%m-%d %H:%M")


def percent(value: float) -> str:
    """A signed percentage to two decimals: +1.25%, -0.40%."""
    return f"{value:+.2f}%"
