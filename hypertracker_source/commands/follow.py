"""`hypertracker follow`: one load per API data version, asleep until the API's next update."""

import argparse
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, timezone
from typing import Any, Protocol

import dlt
from dlt.common.time import ensure_pendulum_datetime

from hypertracker_source.api.client import HyperTrackerClient, RunStats
from hypertracker_source.api.endpoints import STATUS
from hypertracker_source.commands.check import configured_client
from hypertracker_source.commands.follow_budget import BudgetSpread, VersionChoice
from hypertracker_source.commands.loading import run_load
from hypertracker_source.commands.options import (
    LOAD_EPILOG,
    AddCommand,
    add_load_options,
    pipeline_from_args,
    source_settings,
)
from hypertracker_source.config.defaults import (
    FOLLOW_MAX_BACKOFF,
    FOLLOW_MAX_SLEEP,
    FOLLOW_MIN_SLEEP,
    FOLLOW_POLL_MARGIN,
)
from hypertracker_source.exceptions import (
    HyperTrackerAuthError,
    HyperTrackerBudgetError,
    HyperTrackerConfigError,
    HyperTrackerError,
)
from hypertracker_source.runs.failures import root_cause
from hypertracker_source.runs.run_lock import pipeline_lock
from hypertracker_source.runs.stopping import sleep_unless_stopped, stop_requested, stop_signal
from hypertracker_source.tables import TABLE_NAMES

LoadOnce = Callable[..., RunStats]
"""One load, as `loading.run_load`: `(pipeline, settings, resources, stats=, summary=False)`."""
_FINAL_ERRORS = (HyperTrackerAuthError, HyperTrackerConfigError)
"""Errors that no retry can mend: follow stops on them."""


@dataclass(frozen=True)
class FollowTiming:
    """How long follow sleeps: past the announced update, at least, at most, after failures."""

    poll_margin: float = FOLLOW_POLL_MARGIN
    min_sleep: float = FOLLOW_MIN_SLEEP
    max_sleep: float = FOLLOW_MAX_SLEEP
    max_backoff: float = FOLLOW_MAX_BACKOFF

    def __post_init__(self) -> None:
        """Refuses bounds under which follow would spin on the API or never wake."""
        if not 0 < self.min_sleep <= self.max_sleep:
            raise HyperTrackerError(
                f"--min-sleep {self.min_sleep:g} and --max-sleep {self.max_sleep:g}: the shortest "
                "sleep must be above 0 and at most the longest. Give seconds, e.g. 60 and 1800"
            )
        if self.poll_margin < 0 or self.max_backoff < self.min_sleep:
            raise HyperTrackerError(
                f"--poll-margin {self.poll_margin:g} and --max-backoff {self.max_backoff:g}: the "
                "margin must be 0 or more, the longest backoff at least --min-sleep. Give "
                "seconds, e.g. 30 and 900"
            )

    def until_update(self, next_update: str | None, now: datetime) -> float:
        """Seconds to sleep until the announced next update plus the margin, within the bounds."""
        if not next_update:
            return self.max_sleep
        due = ensure_pendulum_datetime(next_update).timestamp() + self.poll_margin
        return min(self.max_sleep, max(self.min_sleep, due - now.timestamp()))

    def backoff(self, failures: int) -> float:
        """Seconds to sleep after this many failures in a row: doubling, up to max_backoff."""
        return min(self.max_backoff, self.min_sleep * 2 ** (failures - 1))


class Clock(Protocol):
    """What follow reads the time from and sleeps on; tests give one that does not wait."""

    def now(self) -> datetime:
        """The current time (aware)."""
        ...

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; True when follow was told to stop meanwhile."""
        ...

    @property
    def stopped(self) -> bool:
        """Whether follow was told to stop."""
        ...


class _WallClock:
    """The wall clock, and a sleep that stopping.py ends: a stop signal ends follow, asleep or
    not."""

    def now(self) -> datetime:
        """The current time in UTC."""
        return datetime.now(timezone.utc)

    def wait(self, seconds: float) -> bool:
        """Sleeps up to `seconds`; True when a stop signal came."""
        return sleep_unless_stopped(seconds)

    @property
    def stopped(self) -> bool:
        """Whether a stop signal came."""
        return stop_requested()


_TIMING_HELP = {
    "poll_margin": "seconds past the API's announced next update to ask again",
    "min_sleep": "shortest sleep, when the update is late; first backoff",
    "max_sleep": "longest sleep between two status requests",
    "max_backoff": "longest sleep after failures in a row",
}
"""What each bound of FollowTiming means, as its option's help says."""


def register(add_command: AddCommand) -> None:
    """Adds `follow` and its options to the command line: where to load, and how long to sleep."""
    parser = add_command(
        "follow",
        help="load once per API data version until stopped (SIGTERM, Ctrl-C)",
        epilog=LOAD_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(parser)
    for bound in fields(FollowTiming):
        parser.add_argument(
            f"--{bound.name.replace('_', '-')}",
            type=_finite_seconds,
            default=bound.default,
            help=f"{_TIMING_HELP[bound.name]} ({bound.default:g})",
        )
    parser.set_defaults(handler=_run)


def _finite_seconds(text: str) -> float:
    """Reads a number of seconds, refusing NaN and infinity (argparse names the flag)."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not math.isfinite(seconds):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number of seconds")
    return seconds


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker follow` until SIGTERM or Ctrl-C, holding its pipeline's lock."""
    bounds = {bound.name: getattr(args, bound.name) for bound in fields(FollowTiming)}
    timing = FollowTiming(**bounds)
    pipeline = pipeline_from_args(args)
    with pipeline_lock(pipeline, args.lock_wait):
        follow(pipeline, source_settings(args), run_load, _WallClock(), timing, args.resources)


def follow(
    pipeline: dlt.Pipeline,
    settings: dict[str, Any],
    load: LoadOnce,
    clock: Clock,
    timing: FollowTiming = FollowTiming(),
    resources: str | None = None,
) -> int:
    """Loads once per API data version until the clock is stopped; returns the loads done.

    Between two versions it spends one status request per wake-up, and sleeps until the API's
    `nextUpdate` (plus a margin). The load reuses the status that found the new version. A failed
    load leaves dlt's state, and so every mark, where the last successful load put it; it is
    retried after a doubling backoff. A rejected key, a bad setting or a stop signal (wrapped by dlt
    or not) ends follow at once: a stop is never taken for a failed load.
    """
    client = configured_client(**settings, pipeline=pipeline)
    spread = BudgetSpread(client.ledger)
    loaded_version: str | None = None
    loads = failures = 0
    polls_before = 0
    while not clock.stopped:
        if spread.exhausted(clock.now()):
            if _sleep_until_renewal(clock, spread, client):
                break
            continue
        try:
            status = client.get_json(STATUS)
            if status["lastUpdate"] != loaded_version:
                choice = spread.choose(clock.now())
                say(clock, _version_line(status["lastUpdate"], choice))
                if choice.load:
                    stats = RunStats(status=status)
                    chosen = choice.resources(resources)
                    load(pipeline, settings, chosen, stats=stats, summary=False)
                    loaded_version = status["lastUpdate"]
                    loads += 1
                    polls = client.stats.requests["status"] - polls_before
                    polls_before = client.stats.requests["status"]
                    spread.learn(stats, polls, choice.snapshots)
                    say(clock, _load_line(loaded_version, stats, polls))
            failures = 0
            seconds = max(
                timing.until_update(status.get("nextUpdate"), clock.now()),
                spread.spacing(clock.now()),
            )
            next_check = clock.now() + timedelta(seconds=seconds)
            say(clock, f"up to date; next check at {next_check:%Y-%m-%dT%H:%M:%S%z}")
        except Exception as error:
            if isinstance(root_cause(error), HyperTrackerBudgetError) and not stop_signal(error):
                client = configured_client(**settings, pipeline=pipeline)
                if _sleep_until_renewal(clock, spread, client):
                    break
                continue
            if isinstance(root_cause(error), _FINAL_ERRORS) or stop_signal(error):
                raise
            failures += 1
            seconds = timing.backoff(failures)
            reason = " ".join(str(root_cause(error)).split())
            say(clock, f"failed ({reason}); no mark moved; retrying in {seconds:.0f} s")
        if clock.wait(seconds):
            break
    return loads


def _load_line(version: str, stats: RunStats, polls: int) -> str:
    """One line about a load: the version, rows per table, the requests it took, and the spend."""
    rows = ", ".join(f"{table} {stats.rows[table]}" for table in TABLE_NAMES)
    spent = sum(stats.requests.values())
    budget = f"; {stats.ledger.spend_text()}" if stats.ledger else ""
    return f"loaded data version {version}: {rows} rows; {spent} requests + {polls} status{budget}"


def _sleep_until_renewal(clock: Clock, spread: BudgetSpread, client: HyperTrackerClient) -> bool:
    """Sleeps until the request budget renews, saying so; True when follow was stopped."""
    seconds = spread.until_renewal(clock.now())
    spent = client.ledger.spend_text() if client.ledger else ""
    say(clock, f"today's share of the request budget is spent ({spent}); sleeping {seconds:.0f} s")
    return clock.wait(seconds)


def _version_line(version: str, choice: VersionChoice) -> str:
    """The line about a new data version: loading it, its fills alone, or not yet (the budget)."""
    if not choice.load:
        return f"data version {version}: not loaded yet ({choice.reason}); its fills load later"
    if not choice.snapshots:
        return f"data version {version}: loading ({choice.reason})"
    return f"data version {version}: loading"


def say(clock: Clock, message: str) -> None:
    """Prints a timestamped line at once, for logs and pipes."""
    print(f"{clock.now():%Y-%m-%dT%H:%M:%S%z} {message}", flush=True)
