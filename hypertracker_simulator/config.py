"""How a simulator is made: one typed, frozen configuration, and its command-line form both ways.

The defaults are written here once; the command line (`python -m hypertracker_simulator`) and the
flags a parent process passes to it (`process.py`) are derived from the fields.
"""

import argparse
import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal, get_args, get_origin, get_type_hints

FillOrder = Literal["newest", "notes"]
"""The two documented fill orders: newest first always, or oldest first in a window."""
ExportMode = Literal["redirect", "download_url", "inline"]
"""How a heatmap export answers: a 302 to a pre-signed link, the link in JSON, or the file."""
FILL_ORDERS: tuple[str, ...] = get_args(FillOrder)
EXPORT_MODES: tuple[str, ...] = get_args(ExportMode)


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything a simulator is made with: its data, its API's behaviour, and where it serves."""

    seed: int = 7
    """Seeds the data and the fault dice: the same seed gives the same fills."""
    fills: int = 5000
    """Fills in the first data version."""
    api_key: str = "sim-key"
    """The bearer token the API host accepts."""
    history_start: str | datetime = "2025-07-27T00:00:00Z"
    """The time of the first fill (ISO 8601)."""
    fill_order: FillOrder = "newest"
    """How the fills endpoint orders a page: newest first, or oldest first within a window."""
    export_mode: ExportMode = "redirect"
    """How a heatmap export answers: a 302 to a file link, the link in JSON, or the file itself."""
    gzip_files: bool = False
    """Heatmap files gzipped, sent without Content-Encoding as the API's bucket does."""
    link_ttl: float = 30.0
    """Seconds a pre-signed link stays valid."""
    heatmap_coins: tuple[str, ...] | None = None
    """The coins with a heatmap (None: every market of the catalog)."""
    risk_coins: int = 294
    """Coins in each cohort's liquidation risk."""
    extra_coins: tuple[str, ...] | None = None
    """Opt-in coin names beyond the catalog (hostile ones, for escaping tests): first in each
    cohort's liquidation risk, at least half their open value at risk (None: none)."""
    rate_limit_per_minute: int | None = None
    """Requests the API host accepts per window (None: no limit)."""
    rate_limit_window: float = 60.0
    """Seconds the rate limit counts over, the per-minute rate pro rata."""
    retry_after_header: bool = False
    """A 429 carries a Retry-After header besides the body's retry_after."""
    clock_offset: timedelta = timedelta(0)
    """How far the API's clock runs from this machine's."""
    latency: float = 0.0
    """Seconds the API host waits before each answer, to start with (a fault setting)."""
    port: int = 0
    """The API host's port (0: any free one)."""
    file_port: int = 0
    """The file host's port (0: any free one)."""

    def __post_init__(self) -> None:
        """Refuses an order or a mode the API does not have."""
        if self.fill_order not in FILL_ORDERS:
            raise ValueError(f"fill_order must be one of {FILL_ORDERS}")
        if self.export_mode not in EXPORT_MODES:
            raise ValueError(f"export_mode must be one of {EXPORT_MODES}")


# Hand-written: argparse has no dataclass binding, and a config reaches a child process as flags.
FIELD_TYPES: dict[str, Any] = get_type_hints(SimulatorConfig)


def field_docstrings(cls: type) -> dict[str, str]:
    """The docstring under each field of a dataclass, by field name (Python keeps none)."""
    body = ast.parse(textwrap.dedent(inspect.getsource(cls))).body[0]
    assert isinstance(body, ast.ClassDef)
    docs: dict[str, str] = {}
    for statement, following in zip(body.body, body.body[1:], strict=False):
        if (
            isinstance(statement, ast.AnnAssign)
            and isinstance(statement.target, ast.Name)
            and isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
        ):
            docs[statement.target.id] = " ".join(str(following.value.value).split())
    return docs


FIELD_HELP = field_docstrings(SimulatorConfig)


def flag_of(name: str) -> str:
    """The command-line flag of a field."""
    return "--" + name.replace("_", "-")


def from_text(hint: Any) -> Callable[[str], Any]:
    """Reads a field of this type from its command-line text."""
    if hint is timedelta:
        return lambda text: timedelta(seconds=float(text))
    if hint == tuple[str, ...] | None:
        return lambda text: tuple(text.split(","))
    if hint in (int | None, int):
        return int
    if hint is float:
        return float
    return str


def to_text(value: Any) -> str:
    """A field's value as command-line text, the way from_text reads it back."""
    if isinstance(value, timedelta):
        return str(value.total_seconds())
    if isinstance(value, tuple | list):
        return ",".join(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def argument_parser() -> argparse.ArgumentParser:
    """The command line of `python -m hypertracker_simulator`: one option per config field."""
    parser = argparse.ArgumentParser(
        prog="python -m hypertracker_simulator",
        description="Serves a simulated HyperTracker API on 127.0.0.1 until SIGTERM or SIGINT.",
    )
    for field in fields(SimulatorConfig):
        hint = FIELD_TYPES[field.name]
        default = to_text(field.default) if field.default is not None else "none"
        explained = FIELD_HELP[field.name].rstrip(".")
        help_text = f"{explained} ({'seconds, ' if hint is timedelta else ''}default: {default})"
        if hint is bool:
            parser.add_argument(flag_of(field.name), action="store_true", help=explained)
        else:
            choices = get_args(hint) if get_origin(hint) is Literal else None
            parser.add_argument(
                flag_of(field.name),
                type=from_text(hint),
                choices=choices,
                default=field.default,
                help=help_text,
            )
    return parser


def config_of(argv: list[str] | None = None) -> SimulatorConfig:
    """The configuration a command line asks for."""
    return SimulatorConfig(**vars(argument_parser().parse_args(argv)))


def command_line_flags(config: SimulatorConfig) -> list[str]:
    """The flags that make the command line give this configuration: its fields off default."""
    flags: list[str] = []
    for field in fields(SimulatorConfig):
        value = getattr(config, field.name)
        if value == field.default:
            continue
        if value is True:
            flags.append(flag_of(field.name))
        else:
            flags += [flag_of(field.name), to_text(value)]
    return flags
