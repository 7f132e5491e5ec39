"""`hypertracker init`: a project folder's dlt settings, secrets template and pipeline script."""

import argparse
import os
from collections.abc import Mapping
from pathlib import Path

import tomlkit
from tomlkit.exceptions import TOMLKitError

from hypertracker_source.commands.options import AddCommand
from hypertracker_source.config.documents import config_lines
from hypertracker_source.config.settings import SOURCE_NAME
from hypertracker_source.exceptions import HyperTrackerError

CONFIG_PATH = Path(".dlt/config.toml")
SECRETS_PATH = Path(".dlt/secrets.toml")
PIPELINE_PATH = Path("hypertracker_pipeline.py")
GITIGNORE_PATH = Path(".gitignore")
IGNORED_LINE = ".dlt/secrets.toml"
SECRETS_MODE = 0o600
"""The secrets file is readable and writable by its owner only."""
SOURCE_SECTION = ("sources", SOURCE_NAME)
"""The section of the files whose settings `init --force` keeps."""

CONFIG_TEMPLATE = f"""\
# dlt settings for the HyperTracker source, written by `hypertracker init`. Every key can also be
# set as an environment variable: [sources.hypertracker] coins is SOURCES__HYPERTRACKER__COINS,
# [extract] workers is EXTRACT__WORKERS. The API key goes in .dlt/secrets.toml, never here.

[sources.hypertracker]
# What loads: uncomment a setting to change it. A value shown is the default, or, where the
# default is none, an example.
{config_lines()}
[runtime]
log_level = "WARNING"

[extract]
# Threads that fetch the heatmaps, each cohort's risk and each fills window at once (dlt's default
# is 5). Each is a wait on the API: 16 loaded 20 coins and 16 cohorts about 4x faster than one at a
# time. Set requests_per_minute to your plan, so that no number of threads draws a 429.
workers = 16

[destination.duckdb.credentials.global_config]
# DuckDB runs in the pipeline's process and otherwise takes every core for a merge: one thread
# merged 1,000,000 fills for less CPU and memory than two, in a little more wall time. Raise it on
# a machine with cores to spare. memory_limit bounds DuckDB's share of a load's peak, which
# otherwise grows with the table it merges into: it fits a chunk of max_fills_per_run = 250000
# fills; raise it to 256MB per 250,000 more, or remove it, if you raise max_fills_per_run.
threads = 1
memory_limit = "192MB"
"""

SECRETS_TEMPLATE = """\
# Secrets of the HyperTracker source: keep this file out of git (`hypertracker init` adds it to
# .gitignore). Or set SOURCES__HYPERTRACKER__API_KEY in the environment instead.

[sources.hypertracker]
# The token from the HyperTracker API dashboard, between the quotes.
api_key = ""
"""

PIPELINE_TEMPLATE = '''\
"""Loads HyperTracker's liquidation data into hypertracker_data.duckdb beside this script; run it
on a schedule.

Settings come from .dlt/config.toml and .dlt/secrets.toml beside it (run it from this folder),
or from SOURCES__HYPERTRACKER__* environment variables. Each run reads only what is new.
"""

from pathlib import Path

import dlt

from hypertracker_source import hypertracker

DATABASE = Path(__file__).resolve().with_name("hypertracker_data.duckdb")
"""An absolute path: dlt resolves a relative one against the folder a pipeline of this name
first ran in, which may be another project's."""

if __name__ == "__main__":
    pipeline = dlt.pipeline(
        pipeline_name="hypertracker",
        destination=dlt.destinations.duckdb(str(DATABASE)),
        dataset_name="hypertracker",
    )
    print(pipeline.run(hypertracker()))
'''

FILES = {
    CONFIG_PATH: CONFIG_TEMPLATE,
    SECRETS_PATH: SECRETS_TEMPLATE,
    PIPELINE_PATH: PIPELINE_TEMPLATE,
}
"""What `hypertracker init` writes, by path in the project folder."""


def register(add_command: AddCommand) -> None:
    """Adds `init` and its option to the command line."""
    init = add_command(
        "init",
        help="write .dlt/config.toml, a secrets template and a pipeline script here",
        description="Write .dlt/config.toml (every setting, commented), .dlt/secrets.toml (for "
        "the API key, readable by you only) and hypertracker_pipeline.py in the current folder, "
        "and add the secrets file to .gitignore.",
    )
    init.add_argument(
        "--force",
        action="store_true",
        help="overwrite files that exist, keeping what is set under [sources.hypertracker]",
    )
    init.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker init`: the project files, in the current folder."""
    write_project(Path.cwd(), args.force)


def write_project(folder: Path, force: bool = False) -> list[Path]:
    """Writes the project files into a folder and git-ignores the secrets; returns what it wrote.

    Refuses, writing nothing, when any of the files exists, unless `force`; with `force`, the
    settings set under [sources.hypertracker] in the files it replaces (the key, base_url) are kept.
    """
    existing = [path for path in FILES if (folder / path).exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        raise HyperTrackerError(
            f"{names} already exist in {folder}: nothing written. Rerun with --force to "
            "overwrite them, or move them away first"
        )
    for path, template in FILES.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        text, kept = with_kept_settings(folder / path, template)
        write_file(folder / path, text, SECRETS_MODE if path == SECRETS_PATH else None)
        print(f"wrote {path}" + (f", keeping its {', '.join(kept)}" if kept else ""))
    if ignore_secrets(folder / GITIGNORE_PATH):
        print(f"added {IGNORED_LINE} to {GITIGNORE_PATH}")
    print(
        f"\nNext: put your API token in {SECRETS_PATH}, then run `python {PIPELINE_PATH}` "
        "(or `hypertracker load`, or `hypertracker follow`) in this folder."
    )
    return [folder / path for path in FILES]


def with_kept_settings(path: Path, template: str) -> tuple[str, list[str]]:
    """A TOML template with the [sources.hypertracker] values of the file it replaces, and their
    names; the template alone when there is no such file, or it is not TOML."""
    if path.suffix != ".toml" or not path.exists():
        return template, []
    try:
        old = tomlkit.parse(path.read_text(encoding="utf-8"))
    except (TOMLKitError, UnicodeDecodeError):
        print(f"{path.name} was not valid TOML: nothing kept from it")
        return template, []
    sources = old.get(SOURCE_SECTION[0])
    old_section = sources.get(SOURCE_SECTION[1]) if isinstance(sources, Mapping) else None
    if not isinstance(old_section, Mapping):
        return template, []
    kept = {name: value for name, value in old_section.items() if value != ""}
    if not kept:
        return template, []
    new = tomlkit.parse(template)
    section = new[SOURCE_SECTION[0]][SOURCE_SECTION[1]]
    for name, value in kept.items():
        section[name] = value
    return tomlkit.dumps(new), list(kept)


def write_file(path: Path, text: str, mode: int | None) -> None:
    """Writes a text file; with a mode, the file has that mode from its first byte on, and an
    existing file gets it too."""
    if mode is None:
        path.write_text(text, encoding="utf-8")
        return
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.chmod(path, mode)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)


def ignore_secrets(gitignore: Path) -> bool:
    """Adds the secrets file to a .gitignore (made if missing); False when it was there already."""
    text = gitignore.read_text(encoding="utf-8") if gitignore.exists() else ""
    if IGNORED_LINE in (line.strip() for line in text.splitlines()):
        return False
    separator = "" if not text or text.endswith("\n") else "\n"
    gitignore.write_text(f"{text}{separator}{IGNORED_LINE}\n", encoding="utf-8")
    return True
