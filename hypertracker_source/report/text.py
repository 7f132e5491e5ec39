"""How the report writes amounts, prices, times and durations: one number format for the page.

Every USD figure is `$`, then a few significant figures, then k (thousand), M, B or T, the way
plotly.js writes the charts' axes (its exponent format "B"): amounts to 3 figures, prices to 5 (as
Hyperliquid quotes them). The page states the rule once, as NUMBER_RULE.
"""

from datetime import datetime, timedelta

_AMOUNT_FIGURES = 3
_PRICE_FIGURES = 5
_SUFFIXES = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))
"""The suffixes plotly.js writes on an axis in exponent format "B", largest first."""
AXIS_FORMAT = {"tickprefix": "$", "exponentformat": "B", "separatethousands": False}
"""A plotly axis of USD written like the page's text: $60k, $3.5M, $1.2B."""
NUMBER_RULE = (
    f"Dollar figures: amounts to {_AMOUNT_FIGURES} significant figures, prices to "
    f"{_PRICE_FIGURES}, with k for thousand, M million, B billion ($3.44M, $912, $102.45k)."
)
_MINUS = "\u2212"
"""plotly.js writes a negative tick with a true minus sign after the prefix: $\u22125M."""


def _usd(value: float, figures: int) -> str:
    """A USD figure to some significant figures, trailing zeros dropped: $1.27B, $3.6k, $0.0123."""
    sign = _MINUS if value < 0 else ""
    magnitude = abs(value)
    for threshold, suffix in _SUFFIXES:
        if float(f"{magnitude:.{figures}g}") >= threshold:
            return f"${sign}{magnitude / threshold:.{figures}g}{suffix}"
    return f"${sign}{magnitude:.{figures}g}" if magnitude else "$0"


def money(value: float) -> str:
    """A USD amount to three significant figures: $1.27B, $351M, $12.3k, $42.5, $0.0123."""
    return _usd(value, _AMOUNT_FIGURES)


def price(value: float) -> str:
    """A price to five significant figures, as Hyperliquid quotes it: $104.25k, $0.011834."""
    return _usd(value, _PRICE_FIGURES)


def price_range(start: float, end: float) -> str:
    """A price bin's range, in prices' figures, which tell neighbouring bins apart."""
    return f"{price(start)} to {price(end)}"


def timestamp(moment: datetime) -> str:
    """An instant as the page writes it, in UTC to the minute."""
    return moment.strftime("%Y-%m-%d %H:%M")


def duration(span: timedelta) -> str:
    """A span to the second: 0 s, 42 s, 3 min 05 s, 1 h 02 min."""
    seconds = round(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def percent(value: float) -> str:
    """A signed percentage to two decimals: +1.25%, -0.40%."""
    return f"{value:+.2f}%"
