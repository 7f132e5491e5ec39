"""Counts glibc's malloc arenas while eight threads allocate, after creating the source or not."""

import ctypes
import sys
import tempfile
import threading

from hypertracker_source import hypertracker

THREADS = 8


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


def main(create_source: str) -> None:
    """Prints the arenas in use while THREADS threads hold memory."""
    if create_source == "source":
        hypertracker(api_key="key", base_url="http://127.0.0.1:9")
    barrier = threading.Barrier(THREADS + 1)
    threads = [threading.Thread(target=allocate_and_wait, args=(barrier,)) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    barrier.wait()
    print(arenas(ctypes.CDLL("libc.so.6")))
    barrier.wait()
    for thread in threads:
        thread.join()


if __name__ == "__main__":
    main(*sys.argv[1:])
