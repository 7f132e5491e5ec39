"""Which API requests may go, and when: the first alone, none once the API proved unusable, and
all of them evenly paced."""

import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from requests import PreparedRequest, RequestException, Response

from hypertracker_source.api.answers import BoundedAdapter
from hypertracker_source.exceptions import HyperTrackerError, HyperTrackerInterruptedError


class RequestPacer:
    """Spaces request starts evenly, across threads, to stay under a requests-per-minute limit."""

    # Hand-written: dlt paces nothing, and an even spacing needs only a lock and a clock.
    _SAFETY = 1.02
    """Keeps the spacing 2% wider than the limit, so that network jitter never bunches a window."""

    def __init__(self, requests_per_minute: int) -> None:
        self._interval = 60.0 * self._SAFETY / requests_per_minute
        self._next_start = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        """Blocks until this request's turn."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next_start)
            self._next_start = start + self._interval
        if start > now:
            time.sleep(start - now)


class RequestGate:
    """Lets a client's first API request go alone, and none at all once the API proved unusable.

    The first answer proves the key and the address: until it comes, the other requests wait, so a
    rejected key or an address that cannot be reached costs one request's attempts, not one per
    resource. From a rejected key, an unreachable address, an answer too large or an interrupt on,
    every request of the client fails at once with that error, the retries of requests already
    sent included, and the answers awaited are cut short.
    """

    # Hand-written: dlt's retrying client retries each request on its own, and its resources run
    # side by side, so nothing else shares what one request learnt with the others.
    def __init__(self, before_first: Callable[[], None] | None = None) -> None:
        self._before_first = before_first
        self._first_lock = threading.Lock()
        self._opened = False
        self._stop: HyperTrackerError | None = None
        self._on_stop: list[Callable[[], None]] = []
        _LIVE_GATES.add(self)

    def on_stop(self, cut: Callable[[], None]) -> None:
        """Has `cut` called when the gate stops: it ends the requests already under way."""
        self._on_stop.append(cut)

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Holds a request: the first one alone, any other once the first was answered."""
        first = self._wait_for_first()
        try:
            self.raise_if_stopped()
            if first and self._before_first is not None:
                self._run_before_first(self._before_first)
            yield
        finally:
            if first:
                self._opened = True
                self._first_lock.release()

    def _run_before_first(self, check: Callable[[], None]) -> None:
        """Runs the check due before the first request; its error stops the client."""
        try:
            check()
        except HyperTrackerError as error:
            raise self.stop(error) from None

    def _wait_for_first(self) -> bool:
        """Waits until the first request was answered; True when this request is the first."""
        if self._opened:
            return False
        self._first_lock.acquire()
        if self._opened:
            self._first_lock.release()
            return False
        return True

    def stop(self, error: HyperTrackerError) -> HyperTrackerError:
        """Fails every request from now on with this error (the first kept); returns the error."""
        if self._stop is None:
            self._stop = error
            for cut in self._on_stop:
                cut()
        return self._stop

    def raise_if_stopped(self) -> None:
        """Raises the error that stopped the client, if one did."""
        if self._stop is not None:
            raise self._stop


_LIVE_GATES: "weakref.WeakSet[RequestGate]" = weakref.WeakSet()
"""The gates of every client alive in this process, for `interrupt_requests`."""


def interrupt_requests(signal_number: int) -> None:
    """Stops every client of this process: no request is sent or retried after this."""
    for gate in list(_LIVE_GATES):
        gate.stop(HyperTrackerInterruptedError(signal_number))


class _Budget(Protocol):
    """What counts each request against a usage budget (budget.SpendLedger)."""

    def charge(self) -> None:
        """Counts one request about to go, or raises HyperTrackerError when none may go."""
        ...


class GatedAdapter(BoundedAdapter):
    """A connection pool for the API's host that checks the gate, charges the budget, then waits
    for the pacer, before each send, retries included: every attempt costs a usage token."""

    def __init__(
        self,
        gate: RequestGate,
        pacer: RequestPacer | None,
        pool_maxsize: int,
        budget: _Budget | None = None,
    ) -> None:
        super().__init__(pool_maxsize=pool_maxsize)
        self._gate = gate
        self._pacer = pacer
        self._budget = budget
        gate.on_stop(self.cut_answers)

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        """Sends the request in its turn, unless the client was stopped meanwhile or the budget
        is spent (which stops the client)."""
        self._gate.raise_if_stopped()
        if self._budget:
            try:
                self._budget.charge()
            except HyperTrackerError as spent:
                raise self._gate.stop(spent) from None
        if self._pacer:
            self._pacer.wait()
            self._gate.raise_if_stopped()
        try:
            return super().send(request, *args, **kwargs)
        except RequestException:
            self._gate.raise_if_stopped()
            raise
