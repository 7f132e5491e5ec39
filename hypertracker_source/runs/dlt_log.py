"""dlt's warnings on the command line: one line each, translated where dlt's words mislead."""

import contextlib
import logging
import re
import sys
from collections.abc import Iterator

DLT_LOGGER = "dlt"
"""The logger dlt writes to (its runtime's default log name)."""
TRANSLATIONS = (
    (
        re.compile(
            r"The destination (?:dlt\.destinations\.)?(?P<old>\w+)\S* in state differs from "
            r"destination (?:dlt\.destinations\.)?(?P<new>\w+)\S* in pipeline and will be ignored"
        ),
        "this pipeline last loaded into {old} and now loads into {new}: give each destination "
        "its own --pipeline-name, so that their state never meets",
    ),
    (
        re.compile(
            r"When normalizing package (?P<package>\S+) with schema \S+: the storage schema"
        ),
        "another run of this pipeline changed its schema while this one ran (package {package} "
        "was normalized with the newer schema): run one load of a pipeline at a time",
    ),
)
"""dlt's warnings that mislead on the command line, and what they mean there."""


def command_line_text(message: str) -> str:
    """A dlt log message as one line for the command line, translated if it is a known one."""
    for pattern, meaning in TRANSLATIONS:
        found = pattern.search(message)
        if found:
            return meaning.format(**found.groupdict())
    return " ".join(message.split())


class CommandLineWarnings(logging.Filter):
    """Prints dlt's warnings and errors as `hypertracker: warning: ...` lines instead of dlt's
    format (time, process, thread, file); lower levels pass as dlt logs them."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Prints a warning or error in its own line and stops it; passes the rest."""
        if record.levelno < logging.WARNING:
            return True
        level = "warning" if record.levelno == logging.WARNING else "error"
        print(f"hypertracker: {level}: {command_line_text(record.getMessage())}", file=sys.stderr)
        return False


@contextlib.contextmanager
def dlt_warnings_for_the_command_line() -> Iterator[None]:
    """Routes dlt's warnings through CommandLineWarnings while a command runs."""
    logger = logging.getLogger(DLT_LOGGER)
    warnings = CommandLineWarnings()
    logger.addFilter(warnings)
    try:
        yield
    finally:
        logger.removeFilter(warnings)
