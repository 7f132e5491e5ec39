"""Bounds on one answer: a deadline for the whole of it, and a size its body may not pass.

The client names the bounds of each request (`bounded`); the adapter of its connection pools holds
every answer to them, from the connection to the last byte of the body, which it reads itself.
"""

import socket
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from requests import PreparedRequest, Response
from requests.adapters import HTTPAdapter
from requests.exceptions import ReadTimeout, RequestException
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection

from hypertracker_source.config.defaults import BYTES_PER_MB
from hypertracker_source.exceptions import HyperTrackerApiError

_READ_CHUNK_BYTES = 64 * 1024
_GZIP_WINDOW_BITS = 16 + zlib.MAX_WBITS
"""zlib's window bits for a gzip stream, header and trailer included."""
_WATCH_RETRY_SECONDS = 0.5
"""How soon a deadline that passed before the connection existed looks for it again."""


class BodyLimit(NamedTuple):
    """The most bytes one kind of body may hold, and its key in the `max_body_mb` setting."""

    key: str
    max_bytes: int

    def error(self, what: str) -> "AnswerTooLargeError":
        """The error for a body of this kind that passed its limit."""
        setting = f"sources.hypertracker.max_body_mb.{self.key}"
        return AnswerTooLargeError(
            f"{what} passed {self.max_bytes / BYTES_PER_MB:g} MB, the limit "
            f"{setting}: stopped reading it, and nothing of this run was loaded. If real answers "
            f"have grown that large, raise it ([sources.hypertracker.max_body_mb] {self.key} = "
            f'... in .dlt/config.toml, or SOURCES__HYPERTRACKER__MAX_BODY_MB=\'{{"{self.key}": '
            "...}')"
        )


class AnswerBounds(NamedTuple):
    """What one request's answer may take: seconds from its start, and bytes of body."""

    deadline_seconds: float
    body: BodyLimit


class AnswerTooLargeError(HyperTrackerApiError):
    """An answer's body passed its limit: not retried, as the next answer would be as large."""


class AnswerDeadlineError(ReadTimeout):
    """An answer was not whole by its deadline: retried like a read timeout."""


class _Watch:
    """One answer's deadline: when it passes, its connection is shut, whatever it awaits."""

    # Hand-written: requests' timeout bounds each wait for a byte, never the whole answer, and an
    # answer that drips a byte at a time would hold the run for ever.
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.connection: HTTPConnection | None = None
        self.was_cut = False
        self._timer: threading.Timer | None = None
        self._lock = threading.RLock()
        """Reentrant: a stop signal's handler may cut the watch of the thread it interrupted."""
        self._arm(seconds)

    def _arm(self, seconds: float) -> None:
        """Starts the timer that shuts the connection when the deadline passes."""
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _expire(self) -> None:
        """Shuts the answer's connection, so that the read waiting on it ends at once."""
        with self._lock:
            if self._timer is None:
                return
            sock = getattr(self.connection, "sock", None)
            if sock is None:
                self._arm(_WATCH_RETRY_SECONDS)
                return
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return

    def cut(self) -> None:
        """Shuts the answer's connection now, as if its deadline had passed: no one awaits it."""
        with self._lock:
            if self._timer is None:
                return
            self._timer.cancel()
            self.was_cut = True
        self._expire()

    @property
    def expired(self) -> bool:
        """Whether the deadline has passed."""
        return time.monotonic() >= self.deadline

    def disarm(self) -> None:
        """Stops watching: the answer is whole, or failed."""
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None

    def error(self) -> AnswerDeadlineError:
        """The error for an answer that was not whole by the deadline."""
        return AnswerDeadlineError(
            f"the answer was not whole within {self.seconds:g} s, the limit "
            "sources.hypertracker.response_deadline (SOURCES__HYPERTRACKER__RESPONSE_DEADLINE)"
        )


class _CurrentRequest(threading.local):
    """The bounds the client set for this thread's request, the watch of its answer, and what
    counts an answer cut short (by its deadline, its size or a stop: a request spent all the
    same)."""

    bounds: AnswerBounds | None = None
    watch: _Watch | None = None
    count_cut: Callable[[], None] | None = None


_CURRENT = _CurrentRequest()


@contextmanager
def bounded(bounds: AnswerBounds, count_cut: Callable[[], None] | None = None) -> Iterator[None]:
    """Holds every answer this thread receives meanwhile, redirects and retries included, to
    these bounds; `count_cut` is called for each one cut short by them."""
    _CURRENT.bounds, _CURRENT.count_cut = bounds, count_cut
    try:
        yield
    finally:
        _CURRENT.bounds = _CURRENT.count_cut = None


class _WatchedHTTPConnection(HTTPConnection):
    """An HTTP connection that tells its thread's watch which socket to shut."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Sends a request, watched."""
        if _CURRENT.watch is not None:
            _CURRENT.watch.connection = self
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    """An HTTPS connection that tells its thread's watch which socket to shut."""

    def request(self, *args: Any, **kwargs: Any) -> None:
        """Sends a request, watched."""
        if _CURRENT.watch is not None:
            _CURRENT.watch.connection = self
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    """A pool of watched HTTP connections."""

    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    """A pool of watched HTTPS connections."""

    ConnectionCls = _WatchedHTTPSConnection


class BoundedAdapter(HTTPAdapter):
    """A connection pool that reads each answer whole, by its deadline and within its size; the
    answers it awaits can be cut short at once (`cut_answers`)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watches: set[_Watch] = set()
        self._watches_lock = threading.RLock()
        """Reentrant: a stop signal's handler may cut answers in the thread it interrupted."""

    def cut_answers(self) -> None:
        """Shuts the connection of every answer awaited now, so that its thread ends at once."""
        with self._watches_lock:
            watches = list(self._watches)
        for watch in watches:
            watch.cut()

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """Makes the pool manager, with watched connections."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": _WatchedHTTPPool,
            "https": _WatchedHTTPSPool,
        }

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Sends the request and reads its answer whole, within the thread's bounds if set."""
        bounds = _CURRENT.bounds
        if bounds is None:
            return super().send(request, *args, **kwargs)
        watch = _CURRENT.watch = _Watch(bounds.deadline_seconds)
        with self._watches_lock:
            self._watches.add(watch)
        try:
            response = super().send(request, *args, **kwargs)
            response._content = _read_body(response, bounds.body, watch)
            if watch.expired:
                response.close()
                raise watch.error()
            return response
        except AnswerTooLargeError:
            _count_cut()
            raise
        except RequestException:
            if watch.expired:
                _count_cut()
                raise watch.error() from None
            if watch.was_cut:
                _count_cut()
            raise
        finally:
            watch.disarm()
            _CURRENT.watch = None
            with self._watches_lock:
                self._watches.discard(watch)


def _count_cut() -> None:
    """Counts this thread's answer cut short by its bounds, if its client counts them."""
    if _CURRENT.count_cut is not None:
        _CURRENT.count_cut()


def _read_body(response: Response, limit: BodyLimit, watch: _Watch) -> bytes:
    """Reads an answer's body, stopping at its size limit or its deadline."""
    chunks = []
    size = 0
    for chunk in response.iter_content(_READ_CHUNK_BYTES):
        size += len(chunk)
        if size > limit.max_bytes:
            response.close()
            path = (response.request.path_url or "").split("?")[0]
            raise limit.error(f"HyperTracker's answer to GET {path}")
        if watch.expired:
            response.close()
            raise watch.error()
        chunks.append(chunk)
    return b"".join(chunks)


def gunzip_bounded(content: bytes, limit: BodyLimit, what: str) -> bytes:
    """Inflates a gzip body, never past its limit: a small file may inflate to gigabytes."""
    inflater = zlib.decompressobj(_GZIP_WINDOW_BITS)
    inflated = inflater.decompress(content, limit.max_bytes + 1)
    if len(inflated) > limit.max_bytes or inflater.unconsumed_tail:
        raise limit.error(what)
    return inflated
