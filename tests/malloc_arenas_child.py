"""Counts glibc's malloc arenas while eight threads allocate, as the command first imports a library
that starts threads of its own."""

import ctypes
import importlib
import sys
import tempfile
import threading
from typing import Any

THREADS = 8
THREADED_LIBRARIES = ("dlt", "duckdb", "pyarrow")
"""The libraries the command imports whose imports start threads."""
counted: list[int] = []


def allocate_and_wait(barrier: threading.Barrier) -> None:
    """Allocates beyond pymalloc's small blocks, then waits while the arenas are counted."""
    blocks = [bytearray(1000) for _ in range(100)]
    barrier.wait()
    barrier.wait()
    del blocks


def arenas(libc: ctypes.CDLL) -> int:
    """The number of arenas glibc's malloc_info reports."""
    libc.fopen.restype = ctypes.c_void_p
    with tempfile.NamedTemporaryFile() as report:
        stream = ctypes.c_void_p(libc.fopen(report.name.encode(), b"w"))
        libc.malloc_info(0, stream)
        libc.fclose(stream)
        return report.read().decode().count("<heap nr=")


def arenas_while_threads_allocate() -> int:
    """The arenas in use while THREADS threads hold memory."""
    barrier = threading.Barrier(THREADS + 1)
    threads = [threading.Thread(target=allocate_and_wait, args=(barrier,)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    count = arenas(ctypes.CDLL("libc.so.6"))
    barrier.wait()
    for thread in threads:
        thread.join()
    return count


def count_at_first_threaded_import(event: str, args: tuple[Any, ...]) -> None:
    """Audit hook: counts the arenas as the first of the threaded libraries is imported."""
    if event == "import" and args[0] in THREADED_LIBRARIES and not counted:
        counted.append(arenas_while_threads_allocate())


def main() -> None:
    """Imports the command's entry point as its console script does; prints the count."""
    sys.addaudithook(count_at_first_threaded_import)
    importlib.import_module("hypertracker_source.commands")
    print(counted[0])


if __name__ == "__main__":
    main()
