"""How a run's process allocates Arrow memory: from the system allocator, which hands it back."""

import os

import pyarrow as pa

ARROW_POOL_VARIABLE = "ARROW_DEFAULT_MEMORY_POOL"
"""Arrow's own setting of its allocator: when the user sets it, the source leaves the pool alone."""


def use_returning_memory_pool() -> None:
    """Makes Arrow allocate from the system allocator, unless ARROW_DEFAULT_MEMORY_POOL is set.

    Each page of fills is decoded, cast and freed within milliseconds on one of the extract
    threads; pyarrow's default pool (mimalloc) keeps what those threads free, 60 to 100 MB more
    of a load's peak, where the system allocator hands it back (docs/performance.md).
    """
    # Hand-written: neither dlt nor pyarrow picks an allocator for short-lived per-thread buffers.
    if ARROW_POOL_VARIABLE not in os.environ:
        pa.set_memory_pool(pa.system_memory_pool())
