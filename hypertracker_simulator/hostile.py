"""What the hostile faults send: a gzip bomb, an oversized field, an answer dripped byte by byte.

Each is an explicit opt-in fault of `Faults` (traffic.py); none models the documented API.
"""

import time
import zlib
from functools import lru_cache
from io import BufferedIOBase

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
