"""What the hostile faults send: broken fills, a gzip bomb, an oversized field, an answer
dripped byte by byte.

Each is an explicit opt-in fault of `Faults` (traffic.py); none models the documented API. A
broken fill is chosen by its id, so every read of it (every page, run and window) serves it broken
the same way, as an API that stored a bad row would.
"""

import time
import zlib
from collections.abc import Sequence
from functools import lru_cache
from io import BufferedIOBase
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


BOMB_CHUNK = b" " * (1 << 20)
"""A megabyte of JSON whitespace: the bomb inflates to these, after a valid JSON start."""
GZIP_WINDOW_BITS = 16 + zlib.MAX_WBITS


@lru_cache(maxsize=2)
def gzip_bomb(inflated_mb: int) -> bytes:
    """A gzip file of a heatmap that inflates to `inflated_mb` megabytes (about 1,000 to 1)."""
    deflater = zlib.compressobj(9, zlib.DEFLATED, GZIP_WINDOW_BITS)
    parts = [deflater.compress(b'{"coin": "BTC", "heatmap": [')]
    parts += [deflater.compress(BOMB_CHUNK) for _ in range(inflated_mb)]
    parts.append(deflater.compress(b"]}"))
    parts.append(deflater.flush())
    return b"".join(parts)


def huge_value(megabytes: float) -> str:
    """A text field of this many megabytes, as a hostile API might send in a fills row."""
    return "0x" + "f" * int(megabytes * 1_000_000)


def drip(stream: BufferedIOBase, raw: bytes, seconds_per_byte: float) -> None:
    """Writes a whole answer, status line and headers included, one byte at a time."""
    for index in range(len(raw)):
        stream.write(raw[index : index + 1])
        stream.flush()
        time.sleep(seconds_per_byte)
