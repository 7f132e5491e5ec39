"""What a failed or interrupted command tells its user: the real cause, in one line."""

import re
import signal
from collections.abc import Iterator
from typing import Any

from dlt.common.configuration.exceptions import (
    ConfigFieldMissingException,
    ConfigValueCannotBeCoercedException,
    LookupTrace,
    LookupTraces,
)
from dlt.common.exceptions import SignalReceivedException
from dlt.destinations.exceptions import DestinationConnectionError

from hypertracker_source.config.resolve import uncoerced_setting_error
from hypertracker_source.exceptions import HyperTrackerError, HyperTrackerInterruptedError

CREDENTIAL_EXAMPLES = {
    "postgres": "postgresql://user:password@host:5432/database",
    "redshift": "redshift://user:password@host:5439/database",
    "mssql": "mssql://user:password@host:1433/database",
    "clickhouse": "clickhouse://user:password@host:9440/database",
    "sqlalchemy": "mysql+pymysql://user:password@host:3306/database",
    "motherduck": "md:///database?token=...",
}
"""A connection string to show, by destination, when its credentials are missing."""


DUCKDB_LOCKED = re.compile(
    r'Could not set lock on file "(?P<file>[^"]+)": '
    r"Conflicting lock is held in .*?\(PID (?P<pid>\d+)\)"
)
"""DuckDB's answer when another process has the file open."""
DUCKDB_OUT_OF_MEMORY = "Out of Memory Error"
"""How DuckDB's error begins when a query does not fit its memory_limit."""
DUCKDB_MEMORY_HEADLINE = (
    "hypertracker: error: DuckDB ran out of its memory_limit while merging: raise memory_limit "
    "under [destination.duckdb.credentials.global_config] in .dlt/config.toml (256MB more per "
    "250,000 fills of max_fills_per_run) and run the same command again: nothing loaded is lost"
)


class CommandInterrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM reached the command."""

    def __init__(self, signal_number: int) -> None:
        self.signal_number = signal_number
        super().__init__(signal.Signals(signal_number).name)


def error_chain(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it or was being handled when it came, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def root_cause(error: BaseException) -> BaseException:
    """The error a user should read, past dlt's pipeline-step and resource wrappers.

    The source's own error comes first wherever it sits in the chain: when one parallel resource
    fails, dlt closes the others and may raise an unrelated `generator already executing`, which
    is passed over for what was being handled when it came.
    """
    chain = list(error_chain(error))
    for kind in (
        HyperTrackerError,
        ConfigFieldMissingException,
        ConfigValueCannotBeCoercedException,
    ):
        found = [cause for cause in chain if isinstance(cause, kind)]
        if found:
            return found[0]
    cause = innermost_cause(error)
    while is_closing_noise(cause) and cause.__context__ is not None:
        cause = innermost_cause(cause.__context__)
    return cause


def innermost_cause(error: BaseException) -> BaseException:
    """The last error of the explicit `raise ... from` chain."""
    while error.__cause__ is not None:
        error = error.__cause__
    return error


def is_closing_noise(error: BaseException) -> bool:
    """Whether an error only tells that dlt closed a generator after another one failed."""
    closing = isinstance(error, ValueError) and "generator already executing" in str(error)
    return closing or isinstance(error, GeneratorExit)


def interrupting_signal(error: BaseException) -> int | None:
    """The signal that interrupted the run, if an interrupt is what ended it."""
    for cause in error_chain(error):
        if isinstance(cause, CommandInterrupted | HyperTrackerInterruptedError):
            return cause.signal_number
        if isinstance(cause, SignalReceivedException):
            return cause.signal_code
        if isinstance(cause, KeyboardInterrupt):
            return signal.SIGINT
    return None


def interrupted_headline(signal_number: int) -> str:
    """The line an interrupted command ends with."""
    name = signal.Signals(signal_number).name
    return (
        f"hypertracker: interrupted ({name}): nothing loaded is lost; run the same command again "
        "to resume: it finishes what this run began"
    )


def headline(error: BaseException) -> str:
    """The one line a failed command prints: the cause's type and what it says to do."""
    cause = root_cause(error)
    if isinstance(cause, ConfigValueCannotBeCoercedException):
        cause = uncoerced_setting_error(cause.field_name, cause.field_value) or cause
    if isinstance(cause, ConfigFieldMissingException):
        reason = missing_config(cause)
    elif any(DUCKDB_OUT_OF_MEMORY in str(step) for step in error_chain(error)):
        return DUCKDB_MEMORY_HEADLINE
    elif isinstance(cause, DestinationConnectionError):
        reason = connection_failure(cause)
    else:
        reason = " ".join(str(cause).split())
    return f"hypertracker: error: {type(cause).__name__}: {reason}"


def connection_failure(error: DestinationConnectionError) -> str:
    """dlt's failed connection reduced to its cause, without guesses (credentials, network)."""
    inner = " ".join(str(error.inner_exc).split())
    locked = DUCKDB_LOCKED.search(inner)
    if locked:
        return (
            f"the DuckDB file {locked['file']} is open in another process (PID {locked['pid']}): "
            "wait until it ends or stop it, then run again"
        )
    return f"cannot connect to the destination ({error.client_type}): {inner}"


def missing_config(error: ConfigFieldMissingException) -> str:
    """dlt's missing-configuration error reduced to what to set, with an example."""
    lookups = list(missing_keys(error.traces))
    fields = ", ".join(sorted({key for _, key in lookups}))
    sections = lookups[0][0].sections if lookups else []
    if sections[:1] == ["destination"] and "credentials" in sections:
        destination = sections[1]
        example = CREDENTIAL_EXAMPLES.get(destination, "...")
        return (
            f"the {destination} destination has no credentials (missing {fields}). Set "
            f'DESTINATION__{destination.upper()}__CREDENTIALS="{example}", or credentials = '
            f'"..." under [destination.{destination}] in .dlt/secrets.toml'
        )
    settings = ", ".join(sorted({environment_name(trace, key) for trace, key in lookups}))
    return (
        f"{error.spec_name} is missing {fields}. Set {settings}, or the same under "
        f"[{'.'.join(sections)}] in .dlt/config.toml or .dlt/secrets.toml"
    )


def missing_keys(traces: dict[str, Any]) -> Iterator[tuple[LookupTrace, str]]:
    """Each missing setting's most general lookup that names its own sections, and its key."""
    for key, field_traces in traces.items():
        nested = [trace for trace in field_traces if isinstance(trace, LookupTraces)]
        if nested:
            yield from missing_keys(nested[0].traces)
            continue
        lookups = [trace for trace in field_traces if isinstance(trace, LookupTrace)]
        named = [trace for trace in lookups if trace.sections[:1] in (["destination"], ["sources"])]
        if named or lookups:
            yield (max(named, key=lambda trace: len(trace.sections)) if named else lookups[0]), key


def environment_name(trace: LookupTrace, field: str) -> str:
    """The environment variable that sets a field where a lookup looked for it."""
    return "__".join([*trace.sections, field]).upper()
