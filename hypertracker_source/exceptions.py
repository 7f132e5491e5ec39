"""The errors this source raises, each saying what went wrong and how to fix it."""

import signal


class HyperTrackerError(Exception):
    """Base of every error raised by the HyperTracker source."""


class HyperTrackerConfigError(HyperTrackerError, ValueError):
    """A setting of the source is invalid; raised before any request."""

    def __init__(self, setting: str, value: object, problem: str, fix: str) -> None:
        self.setting = setting
        self.problem = problem
        self.fix = fix
        super().__init__(
            f"sources.hypertracker.{setting} = {value!r}: {problem}. {fix} "
            "(set it as an argument of hypertracker(), under [sources.hypertracker] in "
            ".dlt/config.toml or .dlt/secrets.toml, or as "
            f"SOURCES__HYPERTRACKER__{setting.upper()})"
        )


class HyperTrackerApiError(HyperTrackerError):
    """The API refused a request or kept failing after every retry."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        self.status_code = status_code
        super().__init__(message)


class HyperTrackerAuthError(HyperTrackerApiError):
    """The API rejected the key (401 or 403)."""


class HyperTrackerUnreachableError(HyperTrackerApiError):
    """The API's address could not be reached: refused, unknown host, or no TLS there."""


class HyperTrackerInterruptedError(HyperTrackerError):
    """The run was interrupted (Ctrl-C or SIGTERM): no request follows."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(f"The run was interrupted ({signal.Signals(signal_number).name})")


class HyperTrackerPipelineBusyError(HyperTrackerError):
    """Another run holds the pipeline's lock: one run per pipeline at a time."""

    def __init__(self, pipeline_name: str, lock_file: str, held_by: str, waited: float) -> None:
        super().__init__(
            f"pipeline {pipeline_name} is in use by {held_by}; waited {waited:g} s for its lock "
            f"({lock_file}). Run again once that run ends, or wait longer with --lock-wait SECONDS"
        )


class HyperTrackerBudgetError(HyperTrackerError):
    """The request budget is spent: no request goes until it renews."""

    def __init__(self, message: str, renews_at: str) -> None:
        self.renews_at = renews_at
        super().__init__(message)
