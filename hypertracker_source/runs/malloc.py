"""glibc's malloc, capped from the process's start so that what threads free goes back."""

import ctypes
import os

GLIBC_MALLOC_VARIABLES = ("MALLOC_ARENA_MAX", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
"""glibc's own settings of its allocator: when the user sets any, the source leaves malloc alone."""
M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8
"""mallopt's parameters, from glibc's malloc.h."""
MALLOC_ARENAS = 2
MALLOC_MMAP_THRESHOLD = 128 * 1024


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


def glibc() -> ctypes.CDLL | None:
    """The C library when it is glibc, else None."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        return None
    return ctypes.CDLL("libc.so.6") if version and version.startswith("glibc") else None
