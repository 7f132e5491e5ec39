"""The `hypertracker` command: load into any destination, run the offline demo, draw a report."""

import argparse
import difflib
import sys
import traceback
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import dlt

from hypertracker_source.commands import (
    check,
    demo,
    follow,
    init,
    load,
    models,
    plan,
    report,
    status,
)
from hypertracker_source.commands.options import typed_flag
from hypertracker_source.config.defaults import EXIT_BUDGET_SPENT, EXIT_PIPELINE_BUSY
from hypertracker_source.exceptions import (
    HyperTrackerBudgetError,
    HyperTrackerConfigError,
    HyperTrackerPipelineBusyError,
)
from hypertracker_source.runs.dlt_log import dlt_warnings_for_the_command_line
from hypertracker_source.runs.failures import headline, root_cause
from hypertracker_source.runs.stopping import signals_stop_the_command, stop_exit_code

__all__ = ["main"]

_COMMANDS = (load, demo, report, check, models, follow, plan, status, init)
"""The commands, in the order `hypertracker --help` lists them: each module registers its own."""


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `hypertracker` command."""
    args = _parse_args(argv)
    try:
        with signals_stop_the_command(), dlt_warnings_for_the_command_line():
            code: int | None = args.handler(args)
    except (Exception, KeyboardInterrupt) as error:
        code = stop_exit_code(error)
        if code is None:
            print(_error_line(args, error), file=sys.stderr)
            code = _failure_exit_code(error)
        if getattr(args, "debug", False):
            traceback.print_exc(file=sys.stderr)
    return code or 0


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Reads the command line; a mistake is answered with its command's own usage."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="print the traceback of an error, too",
    )
    parser = argparse.ArgumentParser(prog="hypertracker", description=__doc__, parents=[common])
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {version('hypertracker-source')} (dlt {dlt.__version__})",
    )
    subparsers = parser.add_subparsers(dest="command")

    def add_command(name: str, **described: Any) -> argparse.ArgumentParser:
        """Adds a command, which takes --debug too."""
        return subparsers.add_parser(name, parents=[common], **described)

    for command in _COMMANDS:
        command.register(add_command)
    args, unknown = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        parser.exit(2, "\nhypertracker: error: name a command, such as `hypertracker demo`\n")
    if unknown:
        _refuse_unknown(subparsers.choices[args.command], unknown)
    return args


def _refuse_unknown(parser: argparse.ArgumentParser, unknown: list[str]) -> None:
    """Exits with a command's own usage, naming what it does not take and the nearest option."""
    known = [option for action in parser._actions for option in action.option_strings]
    near = difflib.get_close_matches(unknown[0], known, n=1)
    hint = f" (did you mean {near[0]}?)" if near else ""
    parser.error(f"unrecognized arguments: {' '.join(unknown)}{hint}")


def _error_line(args: argparse.Namespace, error: BaseException) -> str:
    """The one line a failed command prints; a bad setting typed as an option is named so."""
    cause = root_cause(error)
    flag = typed_flag(args, cause)
    if flag is None or not isinstance(cause, HyperTrackerConfigError):
        return headline(error)
    return f"hypertracker: error: {type(cause).__name__}: {flag}: {cause.problem}. {cause.fix}"


def _failure_exit_code(error: BaseException) -> int:
    """The exit code of a command that failed: its own for a held lock and a spent budget."""
    cause = root_cause(error)
    if isinstance(cause, HyperTrackerPipelineBusyError):
        return EXIT_PIPELINE_BUSY
    return EXIT_BUDGET_SPENT if isinstance(cause, HyperTrackerBudgetError) else 1
