"""How every command stops on SIGTERM or SIGINT: at once, within STOP_GRACE seconds at most, with
exit code 128 + the signal (143, 130)."""

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import dlt

from hypertracker_source.api.request_flow import interrupt_requests
from hypertracker_source.config.defaults import STOP_GRACE
from hypertracker_source.runs.failures import (
    CommandInterrupted,
    interrupted_headline,
    interrupting_signal,
)

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_WAKE_EVERY = 0.5
"""Seconds between two looks at the stop signals, for a sleep outside the main thread."""


@contextlib.contextmanager
def signals_stop_the_command() -> Iterator[None]:
    """Makes SIGINT and SIGTERM end the command, whatever it is doing, exit code 128 + signal.

    The first signal stops every API request, raises `CommandInterrupted` in the main thread (in a
    request, extract, normalize, load or follow's sleep alike), and arms a watchdog: a step that
    does not give way within STOP_GRACE seconds (a worker thread reading a slow answer, a load job
    the database is running) ends with the process. A second signal ends it at once. Either way
    nothing loaded is lost: each load package carries its state, and the next run finishes or
    re-reads what this one left (recovery.py).
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_signal(signal_number: int, frame: Any) -> None:
        if stop_requested():
            _exit_now(signal_number)
        _RECEIVED.append(signal_number)
        interrupt_requests(signal_number)
        watchdog = threading.Timer(STOP_GRACE, _exit_now, (signal_number,))
        watchdog.daemon = True
        watchdog.start()
        raise CommandInterrupted(signal_number)

    _RECEIVED.clear()
    handlers = {number: signal.getsignal(number) for number in _STOP_SIGNALS}
    for number in _STOP_SIGNALS:
        signal.signal(number, on_signal)
    try:
        yield
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)


_RECEIVED: list[int] = []
"""The stop signals the running command received, in order (cleared as a command starts).

A list, not an Event: the handler may run while the main thread holds an Event's lock."""


def stop_requested() -> bool:
    """Whether a stop signal reached the running command."""
    return bool(_RECEIVED)


def sleep_unless_stopped(seconds: float) -> bool:
    """Sleeps up to `seconds`; True when a stop signal came. In the main thread the signal raises
    out of the sleep at once; elsewhere the sleep ends within _WAKE_EVERY seconds of it."""
    # Hand-written: dlt's signal-aware sleep (dlt.common.runtime.signals.sleep) wakes on dlt's own
    # handler only, which keep_dlt_off_signals keeps out.
    deadline = time.monotonic() + seconds
    while not stop_requested() and (left := deadline - time.monotonic()) > 0:
        time.sleep(min(left, _WAKE_EVERY))
    return stop_requested()


def stop_signal(error: BaseException) -> int | None:
    """The signal that ended the command: the first one it received, whatever error its
    steps ended on; else one the error carries (a KeyboardInterrupt, dlt's own)."""
    return _RECEIVED[0] if _RECEIVED else interrupting_signal(error)


def stop_exit_code(error: BaseException) -> int | None:
    """The exit code of a command that a stop signal ended, its interrupted line printed; None
    when no signal ended it."""
    signal_number = stop_signal(error)
    if signal_number is None:
        return None
    _print_interrupted(signal_number)
    return _exit_code(signal_number)


def _exit_code(signal_number: int) -> int:
    """The exit code of a command a signal ended: 128 + the signal, as a shell reports it."""
    return 128 + signal_number


def _exit_now(signal_number: int) -> None:
    """Ends the process at once with the interrupted line and its exit code."""
    _print_interrupted(signal_number)
    os._exit(_exit_code(signal_number))


_HEADLINE_SHOWN = threading.Event()


def _print_interrupted(signal_number: int) -> None:
    """Prints the interrupted command's line, once whoever ends the process first."""
    if not _HEADLINE_SHOWN.is_set():
        _HEADLINE_SHOWN.set()
        print(interrupted_headline(signal_number), file=sys.stderr, flush=True)


def keep_dlt_off_signals(pipeline: dlt.Pipeline) -> None:
    """Leaves SIGINT and SIGTERM to this module during dlt's normalize and load steps.

    dlt's own handler (dlt/common/runtime/signals.py) only marks a first signal, which its steps
    raise as `SignalReceivedException` at their next safe point (an exception follow took for a
    failed load, and retried), and which a thread reading a slow answer never reaches.
    """
    pipeline.config.runtime.intercept_signals = False
