"""Hostile fills: an opt-in fault that breaks some fills the way a faulty API might.

A broken fill is chosen by its id, so every read of it (every page, run and window) serves it
broken the same way, as an API that stored a bad row would.
"""

from collections.abc import Sequence
from typing import Any

from .hashing import mix, stream_key, unit

BAD_FILL_KINDS = ("null_address", "null_time", "negative_sz", "negative_px", "oversized_field")
"""The ways a fill can be broken: a null key column or time, a negative size or price, and a
field (`hash`) far larger than any real one."""
OVERSIZED_FIELD = "hash"
"""The field an oversized fill carries too much text in."""


def bad_fill_kind(seed: int, fill_id: int, rate: float, kinds: Sequence[str]) -> str | None:
    """The way a fill is broken at this rate, or None for a sound fill."""
    if rate <= 0 or not kinds:
        return None
    bits = mix(stream_key(seed, "bad-fill"), fill_id)
    if unit(bits, 32) >= rate:
        return None
    return kinds[(bits >> 32) % len(kinds)]


def break_fill(row: dict[str, Any], kind: str, oversized_bytes: int) -> dict[str, Any]:
    """A fill as the API would serve it broken in one way."""
    if kind == "null_address":
        return {**row, "address": None}
    if kind == "null_time":
        return {**row, "time": None}
    if kind == "negative_sz":
        return {**row, "sz": -row["sz"]}
    if kind == "negative_px":
        return {**row, "px": -row["px"]}
    if kind == "oversized_field":
        return {**row, OVERSIZED_FIELD: "0x" + "f" * oversized_bytes}
    raise ValueError(f"unknown bad fill kind {kind!r}; known: {', '.join(BAD_FILL_KINDS)}")
