"""glibc's malloc and DuckDB's jemalloc, set from the process's start: what is freed goes back."""

import ctypes
import os

GLIBC_MALLOC_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
"""glibc's own settings of its allocator: when the user sets any, the source leaves malloc alone."""
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
"""mallopt's parameters, from glibc's malloc.h."""
MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 128 * 1024

DUCKDB_JEMALLOC_VARIABLE = "DUCKDB_JE_MALLOC_CONF"
"""DuckDB's setting of the jemalloc it links on Linux, read once, when jemalloc first allocates."""
DUCKDB_JEMALLOC_CONF = "dirty_decay_ms:0,muzzy_decay_ms:0"
"""Pages DuckDB frees go back to the kernel at once, instead of after jemalloc's decay."""


def use_returning_malloc() -> None:
    """Caps glibc's malloc at 2 arenas and a fixed 128 KiB mmap threshold, unless the user set them.

    The extract threads each get an arena of their own, and glibc raises its mmap threshold to the
    largest block freed, so a page's buffers, freed within milliseconds, stay in the arenas: about
    100 MB of a long first load's peak (docs/performance.md). glibc keeps every arena it made, so
    the cap holds only from before the first thread: hypertracker_source calls this before its
    other imports, and this module imports nothing but the standard library. No-op off glibc.
    """
    # Hand-written: neither dlt nor Python sets glibc's malloc parameters in a running process.
    libc = glibc()
    if libc is not None and not any(name in os.environ for name in GLIBC_MALLOC_VARIABLES):
        libc.mallopt(M_ARENA_MAX, MALLOC_ARENAS)
        libc.mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD)


def use_returning_duckdb_allocator() -> None:
    """Makes DuckDB's jemalloc return freed pages at once, unless the user set its configuration.

    Each chunk's load stages 250,000 fills and merges them; jemalloc kept the pages those
    statements freed (about 100 MB after the staging insert) until its decay, so the merge ran
    on top of them: 20-40 MB of a long first load's peak (docs/performance.md, "Fourth step").
    jemalloc reads the variable when it first allocates, so it is set before duckdb is imported;
    child processes inherit it. No effect where DuckDB uses the system allocator (macOS, Windows).
    """
    # Hand-written: dlt passes DuckDB's settings, but jemalloc's decay is no DuckDB setting.
    os.environ.setdefault(DUCKDB_JEMALLOC_VARIABLE, DUCKDB_JEMALLOC_CONF)


def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    return ctypes.CDLL("libc.so.6") if version and version.startswith("glibc") else None
