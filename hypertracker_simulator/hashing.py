"""Cheap deterministic integer hashing: every synthetic value derives from (seed, index)."""

import hashlib

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(key: int, index: int) -> int:
    """A well-scrambled 64-bit hash of a key and an index (splitmix64 finaliser)."""
    z = (key * GOLDEN + index + 0x632BE59BD9B4E019) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def text_key(text: str) -> int:
    """A 64-bit integer standing for a text, stable across processes."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


def stream_key(seed: int, stream: str) -> int:
    """The hash key of one named stream of values under a seed."""
    return mix(seed, text_key(stream))


def unit(bits: int, width: int = 20) -> float:
    """The lowest `width` bits of a hash as a fraction in [0, 1)."""
    return (bits & ((1 << width) - 1)) / (1 << width)


def hex_digest(value: int) -> str:
    """A 64-hex-digit digest derived from an integer, like a transaction hash."""
    return hashlib.blake2b(value.to_bytes(8, "big"), digest_size=32).hexdigest()
