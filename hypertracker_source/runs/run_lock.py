"""One run per pipeline at a time: a lock on the pipeline's working folder, and who holds it."""

import fcntl
import json
import math
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import dlt

from hypertracker_source.exceptions import HyperTrackerError, HyperTrackerPipelineBusyError

LOCK_POLL_SECONDS = 0.2
"""How often a run that waits for the lock tries it again."""
UNNAMED_HOLD_SECONDS = 1.0
"""How long a lock held without a holder's line (just taken, or probed) is tried before failing."""


@dataclass(frozen=True)
class LockHolder:
    """The process that holds a pipeline's lock: its id, host, start of the hold and command."""

    pid: int
    host: str
    since: str
    command: str

    def describe(self) -> str:
        """The holder in words: process, host, since when, which command."""
        return f"process {self.pid} on {self.host} since {self.since} ({self.command})"


_HELD: dict[Path, tuple[int, int]] = {}
"""The locks this process holds: the lock file's descriptor and how many holds are nested."""


def lock_path(pipeline: dlt.Pipeline) -> Path:
    """The lock file of a pipeline."""
    return folder_lock_path(pipeline.working_dir)


def folder_lock_path(working_dir: Path | str) -> Path:
    """The lock file of a pipeline's working folder: beside it, as a refresh may wipe the folder."""
    return Path(f"{working_dir}.lock")


@contextmanager
def lock_if_free(working_dir: Path) -> Iterator[bool]:
    """Holds the lock of a pipeline's working folder for the block when no other run holds it,
    without waiting; yields whether it holds it (False too before the folder's parent exists)."""
    path = folder_lock_path(working_dir)
    if path in _HELD:
        yield True
        return
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        yield False
        return
    try:
        yield try_flock(descriptor, fcntl.LOCK_EX)
    finally:
        os.close(descriptor)


def lock_holder(pipeline: dlt.Pipeline) -> LockHolder | None:
    """The process that holds the pipeline's lock now, or None when no run holds it."""
    path = lock_path(pipeline)
    if path in _HELD:
        return read_holder(_HELD[path][0])
    try:
        descriptor = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        if try_flock(descriptor, fcntl.LOCK_SH):
            return None
        return read_holder(descriptor)
    finally:
        os.close(descriptor)


@contextmanager
def pipeline_lock(pipeline: dlt.Pipeline, wait: float = 0.0) -> Iterator[None]:
    """Holds the pipeline's lock for the block, waiting up to `wait` seconds for another run.

    The kernel releases the lock when its process ends, killed included, so a lock left by a dead
    run is free for the next. Nested holds in one process share the lock.
    """
    # Hand-written: dlt has no run lock (dlt-hub/dlt#1102, #4297), and filelock (not a dependency of
    # dlt) keeps no holder; an flock of our own holds the holder's line in the locked file itself.
    if not (math.isfinite(wait) and wait >= 0):
        raise HyperTrackerError(
            f"--lock-wait {wait}: give the seconds to wait for another run of the pipeline, 0 or "
            "more (0: do not wait)"
        )
    path = lock_path(pipeline)
    if path in _HELD:
        descriptor, holds = _HELD[path]
        _HELD[path] = (descriptor, holds + 1)
    else:
        descriptor = acquire(pipeline, path, wait)
        _HELD[path] = (descriptor, 1)
    try:
        yield
    finally:
        descriptor, holds = _HELD.pop(path)
        if holds > 1:
            _HELD[path] = (descriptor, holds - 1)
        else:
            os.close(descriptor)


def acquire(pipeline: dlt.Pipeline, path: Path, wait: float) -> int:
    """Takes the lock file's lock and writes this process into it; returns its descriptor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    started = time.monotonic()
    while not try_flock(descriptor, fcntl.LOCK_EX):
        waited = time.monotonic() - started
        holder = read_holder(descriptor) if waited >= wait else None
        # no holder named: a probe of lock_holder, or a run that has just taken it, so try on
        if waited >= max(wait, UNNAMED_HOLD_SECONDS) or (holder and waited >= wait):
            os.close(descriptor)
            held_by = holder.describe() if holder else "another process"
            raise HyperTrackerPipelineBusyError(pipeline.pipeline_name, str(path), held_by, wait)
        time.sleep(LOCK_POLL_SECONDS)
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, json.dumps(asdict(this_process())).encode() + b"\n", 0)
    return descriptor


def try_flock(descriptor: int, mode: int) -> bool:
    """Takes an flock without waiting; False when another open file holds it."""
    try:
        fcntl.flock(descriptor, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_holder(descriptor: int) -> LockHolder | None:
    """The holder a lock file names, or None when it names none (just taken, or empty)."""
    try:
        return LockHolder(**json.loads(os.pread(descriptor, 4096, 0)))
    except (ValueError, TypeError):
        return None


def this_process() -> LockHolder:
    """This process as a lock holder; its command is the program and subcommand, never options."""
    words = [Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"]
    if len(sys.argv) > 1 and not sys.argv[1].startswith("-"):
        words.append(sys.argv[1])
    since = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return LockHolder(os.getpid(), socket.gethostname(), since, " ".join(words))
