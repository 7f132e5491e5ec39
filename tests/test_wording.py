"""Every error's whole line as the user reads it, one row an error: wording is reviewed here.

The other error tests check an error's type, the setting or option it names and its key phrase
(helpers.assert_error), so that a rewording changes this file alone."""

import os
import socket
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

import dlt
import duckdb
import pytest
import requests
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import API_KEY, CLI_ERROR, CONSOLE_SCRIPT, LOCAL_DATABASE, command_env, free_port
from urllib3.exceptions import MaxRetryError, NameResolutionError

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.api.errors import unreachable_cause
from hypertracker_source.commands import main
from hypertracker_source.exceptions import HyperTrackerConfigError
from hypertracker_source.runs.failures import root_cause


def setting_error(setting: str, says: str) -> str:
    """A bad setting's error: the setting and its value, what is wrong and the fix, where to set
    it."""
    return (
        f"HyperTrackerConfigError: sources.hypertracker.{setting} = {says} (set it as an argument "
        "of hypertracker(), under [sources.hypertracker] in .dlt/config.toml or .dlt/secrets.toml, "
        f"or as SOURCES__HYPERTRACKER__{setting.upper()})"
    )


def in_environment(setting: str, value: str | None, says: str, *argv: str) -> "ErrorLine":
    """A bad setting given as its SOURCES__HYPERTRACKER__ variable (None: unset), and its line."""
    variable = f"SOURCES__HYPERTRACKER__{setting.upper()}"
    return ErrorLine(CLI_ERROR + setting_error(setting, says), argv or ("load",), {variable: value})


def load_segments_into(database: str, beside: str = "") -> Callable[[Path, Simulator], None]:
    """Prepares a DuckDB file with the segments loaded, and a file of the user's beside it."""

    def prepare(workdir: Path, simulator: Simulator) -> None:
        assert main(["load", "--resources", "segments", "--destination", database]) == 0
        if beside:
            (workdir / beside).write_text("<p>my notes</p>")

    return prepare


class ErrorLine(NamedTuple):
    """An error's whole line, as the command prints it, and what provokes it there."""

    line: str
    """Its text; {workdir}, {https_url} (the API's address where it has no TLS), {closed_url}
    and {dlt_destinations} (the names dlt knows) stand for this test's values."""
    argv: tuple[str, ...] = ("load",)
    env: Mapping[str, str | None] = MappingProxyType({})
    """Environment variables set for the command (None: unset)."""
    prepare: Callable[[Path, Simulator], None] | None = None
    """What makes the folder or the API so that the command fails."""
    code: int = 1
    """The command's exit code: 1 for a failed command, 2 for a command line argparse refused."""
    asks_api: bool = False
    """Whether the command asks the API before it fails."""


SETTING_LINES = {
    "no key": in_environment(
        "api_key",
        None,
        "None: no API key is set. Put the token from the HyperTracker API dashboard in "
        '.dlt/secrets.toml under [sources.hypertracker] as api_key = "..."',
    ),
    "side in words": in_environment(
        "side",
        "sell",
        "'sell': the API knows only A (ask, sell) and B (bid, buy), in upper case. Use side='A' "
        "or side='B', or leave it unset for both",
    ),
    "day first date": in_environment(
        "start_date",
        "27/07/2025",
        "'27/07/2025': it is not an ISO 8601 date (Unable to parse string [27/07/2025]). Write "
        "it like 2025-07-27 or 2026-01-01T00:00:00Z",
    ),
    "date in words": in_environment(
        "start_date",
        "yesterday",
        "'yesterday': it is not an ISO 8601 date (Unable to parse string [yesterday]). Write it "
        "like 2025-07-27 or 2026-01-01T00:00:00Z",
    ),
    "future date": in_environment(
        "start_date", "2999-01-01", "'2999-01-01': it is in the future. Use a date in the past"
    ),
    "end before start": ErrorLine(
        CLI_ERROR
        + setting_error(
            "end_date",
            "'2026-01-01': it is not after start_date (2026-03-01T00:00:00+00:00). Give an "
            "end_date later than start_date, or leave it unset for an incremental load",
        ),
        env={
            "SOURCES__HYPERTRACKER__START_DATE": "2026-03-01",
            "SOURCES__HYPERTRACKER__END_DATE": "2026-01-01",
        },
    ),
    "url without scheme": in_environment(
        "base_url",
        "ht-api.coinmarketman.com",
        "'ht-api.coinmarketman.com': it has no scheme. Write it with http:// or https:// in "
        "front, such as https://ht-api.coinmarketman.com",
        "check",
    ),
    "url of another scheme": in_environment(
        "base_url",
        "ftp://ht-api.coinmarketman.com",
        "'ftp://ht-api.coinmarketman.com': it is not an http(s) URL. Use "
        "https://ht-api.coinmarketman.com, or leave it unset",
    ),
    "one coin in two cases": in_environment(
        "coins",
        "BTC,ETH,btc",
        "'BTC,ETH,btc': 'BTC' and 'btc' differ only in case. Keep the one spelled as the API "
        "lists it, such as BTC or xyz:MSTR",
    ),
    "page too large": in_environment(
        "page_size",
        "5000",
        "5000: the API takes 1 to 1000 fills a page. Leave it unset for 1000, the cheapest in "
        "requests",
    ),
    "page size not a number": in_environment(
        "page_size",
        "NaN",
        "'NaN': it is not a finite number. Leave it unset for 1000, the cheapest in requests",
    ),
    "run size not a number": in_environment(
        "max_fills_per_run",
        "many",
        "'many': it is not a number. Use for example max_fills_per_run=250000, or 0 for no limit",
    ),
    "unknown segment": in_environment(
        "segment_ids",
        "9,99",
        "'9,99': '99' is not a segment id. Known: 1 Fish, 2 Dolphin, 3 Apex Predator, 4 Small "
        "Whale, 5 Whale, 6 Tidal Whale, 7 Leviathan, 8 Money Printer, 9 Smart Money, 10 "
        "Consistent Grinder, 11 Humble Earner, 12 Exit Liquidity, 13 Semi-Rekt, 14 Full Rekt, "
        "15 Giga-Rekt, 16 Shrimp",
    ),
    "lag in hours": in_environment(
        "lag", "1h", "'1h': it is not a number. Use for example lag=3600"
    ),
    "infinite lag": in_environment(
        "lag", "inf", "inf: it is not a finite number. Use for example lag=3600"
    ),
    "lag not a number": in_environment(
        "lag", "nan", "nan: it is not a finite number. Use for example lag=3600"
    ),
    "lag beyond any history": in_environment(
        "lag",
        "1e20",
        "1e+20: it must be a number of seconds, 0 to 315360000. Use for example lag=3600",
    ),
    "infinite request rate": in_environment(
        "requests_per_minute",
        "inf",
        "'inf': it is neither a positive number nor a plan name. Use a number or one of pulse "
        "(60), surge (100), flow (200), stream (500)",
    ),
    "unknown plan": in_environment(
        "plan",
        "gold",
        "'gold': it is not a plan of the API. Use one of free, pulse, surge, flow, stream",
    ),
    "zero daily budget": in_environment(
        "daily_request_budget",
        "0",
        "'0': it must be a whole number above 0. Use a whole number of requests such as "
        "daily_request_budget=1000, or leave it unset",
    ),
    "monthly budget in words": in_environment(
        "monthly_request_budget",
        "lots",
        "'lots': it is not a number. Use a whole number of requests such as "
        "monthly_request_budget=1000, or leave it unset",
    ),
}
"""Bad settings, set as a scheduled run sets them, each failing before any request."""

OPTION_LINES = {
    "--start-date in words": ErrorLine(
        f"{CLI_ERROR}HyperTrackerConfigError: --start-date yesterday: it is not an ISO 8601 date "
        "(Unable to parse string [yesterday]). Write it like 2025-07-27 or 2026-01-01T00:00:00Z",
        ("load", "--start-date", "yesterday"),
    ),
    "--end-date in words": ErrorLine(
        f"{CLI_ERROR}HyperTrackerConfigError: --end-date soon: it is not an ISO 8601 date (Unable "
        "to parse string [soon]). Write it like 2025-07-27 or 2026-01-01T00:00:00Z",
        ("load", "--start-date", "2025-08-01", "--end-date", "soon"),
    ),
    "--end-date alone": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --end-date 2026-01-01 goes with --start-date: a back-fill "
        "reads from a start date to an end date. Add --start-date, e.g. --start-date 2025-08-01 "
        "--end-date 2026-01-01",
        ("load", "--end-date", "2026-01-01"),
    ),
    "--segments of an unknown one": ErrorLine(
        f"{CLI_ERROR}HyperTrackerConfigError: --segments 9,99: '99' is not a segment id. Known: "
        "1 Fish, 2 Dolphin, 3 Apex Predator, 4 Small Whale, 5 Whale, 6 Tidal Whale, 7 Leviathan, "
        "8 Money Printer, 9 Smart Money, 10 Consistent Grinder, 11 Humble Earner, 12 Exit "
        "Liquidity, 13 Semi-Rekt, 14 Full Rekt, 15 Giga-Rekt, 16 Shrimp",
        ("load", "--segments", "9,99"),
    ),
    "--heatmap-coins with a space": ErrorLine(
        f"{CLI_ERROR}HyperTrackerConfigError: --heatmap-coins BTC ETH: 'BTC ETH' is not a coin "
        "name. Write coins like BTC or xyz:MSTR",
        ("load", "--heatmap-coins", "BTC ETH"),
    ),
    "--coins of one coin in two cases": ErrorLine(
        f"{CLI_ERROR}HyperTrackerConfigError: --coins BTC,btc: 'BTC' and 'btc' differ only in "
        "case. Keep the one spelled as the API lists it, such as BTC or xyz:MSTR",
        ("load", "--coins", "BTC,btc"),
    ),
    "file in no folder": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --destination nowhere/fills.duckdb: the folder "
        "{workdir}/nowhere does not exist. Create it first, or name a file in a folder that "
        "exists",
        ("load", "--destination", "nowhere/fills.duckdb"),
    ),
    "file named like the dataset": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --destination liquidations.duckdb and --dataset "
        "liquidations share a name, and DuckDB then cannot tell the dataset from the file: "
        "rename one of them",
        ("load", "--destination", "liquidations.duckdb", "--dataset", "liquidations"),
    ),
    "misspelled destination": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --destination postgress: not a DuckDB file "
        "(name.duckdb) nor a dlt destination; did you mean postgres? dlt knows {dlt_destinations}",
        ("load", "--destination", "postgress"),
    ),
    "destination without credentials": ErrorLine(
        f"{CLI_ERROR}ConfigFieldMissingException: the postgres destination has no credentials "
        "(missing database, host, password, username). Set "
        'DESTINATION__POSTGRES__CREDENTIALS="postgresql://user:password@host:5432/database", '
        'or credentials = "..." under [destination.postgres] in .dlt/secrets.toml',
        ("load", "--destination", "postgres"),
    ),
    "misspelled resource": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --resources: 'liquidation_fill' is not a resource of "
        "this source; choose from liquidation_risk (every cohort), liquidation_fills, "
        "liquidation_heatmap, liquidation_risk_shrimp, liquidation_risk_fish, "
        "liquidation_risk_dolphin, liquidation_risk_apex_predator, liquidation_risk_small_whale, "
        "liquidation_risk_whale, liquidation_risk_tidal_whale, liquidation_risk_leviathan, "
        "liquidation_risk_money_printer, liquidation_risk_smart_money, "
        "liquidation_risk_consistent_grinder, liquidation_risk_humble_earner, "
        "liquidation_risk_exit_liquidity, liquidation_risk_semi_rekt, liquidation_risk_full_rekt, "
        "liquidation_risk_giga_rekt, segments",
        ("load", "--resources", "liquidation_fill"),
    ),
    "demo into a real pipeline": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --demo loads simulated data into its own pipeline "
        "(hypertracker_demo), file (hypertracker_demo.duckdb) and dataset (hypertracker), so "
        "that they never reach a real pipeline: drop --pipeline-name, or drop --demo",
        ("load", "--demo", "--pipeline-name", "hypertracker"),
    ),
    "no command": ErrorLine(
        "hypertracker: error: name a command, such as `hypertracker demo`", (), code=2
    ),
    "unknown option": ErrorLine(
        "hypertracker load: error: unrecognized arguments: --refresh (did you mean "
        "--full-refresh?)",
        ("load", "--refresh"),
        code=2,
    ),
    "demo of no fills": ErrorLine(
        "hypertracker demo: error: argument --fills: '-5' is not a whole number above 0",
        ("demo", "--fills", "-5"),
        code=2,
    ),
    "infinite sleep": ErrorLine(
        "hypertracker follow: error: argument --max-sleep: 'inf' is not a finite number of seconds",
        ("follow", "--max-sleep", "inf"),
        code=2,
    ),
    "sleep not a number": ErrorLine(
        "hypertracker follow: error: argument --min-sleep: 'nan' is not a finite number of seconds",
        ("follow", "--min-sleep", "nan"),
        code=2,
    ),
}
"""Bad options on the command line, each refused before any request."""

ONE_WINDOW = ("--start-date", "2026-01-01", "--end-date", "2026-01-08")
"""A back-fill read in one window, so that the first fill read is always the same one."""

API_LINES = {
    "rejected key": ErrorLine(
        f"{CLI_ERROR}HyperTrackerAuthError: HyperTracker rejected the API key (HTTP 401 on "
        "/segments). Set a valid token from the HyperTracker API dashboard as "
        "sources.hypertracker.api_key in .dlt/secrets.toml or SOURCES__HYPERTRACKER__API_KEY.",
        ("load", "--resources", "segments"),
        {"SOURCES__HYPERTRACKER__API_KEY": "revoked-key"},
        asks_api=True,
    ),
    "rejected key on check": ErrorLine(
        f"{CLI_ERROR}HyperTrackerAuthError: HyperTracker rejected the API key (HTTP 401 on "
        "/hypertracker/state/status). Set a valid token from the HyperTracker API dashboard as "
        "sources.hypertracker.api_key in .dlt/secrets.toml or SOURCES__HYPERTRACKER__API_KEY.",
        ("check",),
        {"SOURCES__HYPERTRACKER__API_KEY": "revoked-key"},
        asks_api=True,
    ),
    "unreachable on check": ErrorLine(
        f"{CLI_ERROR}HyperTrackerUnreachableError: HyperTracker's API at {{closed_url}} cannot be "
        "reached: the connection failed ([Errno 111] Connection refused) (on all 2 attempts). "
        "Check sources.hypertracker.base_url (SOURCES__HYPERTRACKER__BASE_URL; unset, it is "
        "https://ht-api.coinmarketman.com) and this machine's network. Nothing was loaded: check "
        "only asks the API's status",
        ("check",),
        {"SOURCES__HYPERTRACKER__BASE_URL": "{closed_url}", "RUNTIME__REQUEST_MAX_ATTEMPTS": "2"},
    ),
    "no TLS on check": ErrorLine(
        f"{CLI_ERROR}HyperTrackerUnreachableError: HyperTracker's API at {{https_url}} cannot be "
        "reached: the TLS handshake failed (WRONG_VERSION_NUMBER): is it an http:// address? (on "
        "all 2 attempts). Check sources.hypertracker.base_url (SOURCES__HYPERTRACKER__BASE_URL; "
        "unset, it is https://ht-api.coinmarketman.com) and this machine's network. Nothing was "
        "loaded: check only asks the API's status",
        ("check",),
        {"SOURCES__HYPERTRACKER__BASE_URL": "{https_url}", "RUNTIME__REQUEST_MAX_ATTEMPTS": "2"},
    ),
    "unknown heatmap coin": ErrorLine(
        f"{CLI_ERROR}HyperTrackerConfigError: --heatmap-coins BTC,DOGEX: the API has no "
        "liquidation heatmap for this coin (HTTP 404). Use a perp the API lists, such as BTC, "
        "ETH, HYPE or xyz:MSTR",
        ("load", "--resources", "liquidation_heatmap", "--heatmap-coins", "BTC,DOGEX"),
        asks_api=True,
    ),
    "field that changed type": ErrorLine(
        f"{CLI_ERROR}HyperTrackerApiError: The API sent px = '102640.0' where a double was "
        "declared: the field changed type. Nothing of this run was loaded and the stored cursor "
        "has not moved; upgrade hypertracker-source or report the change",
        ("load", "--resources", "liquidation_fills", "--coins", "BTC", *ONE_WINDOW),
        prepare=lambda workdir, simulator: setattr(simulator.faults, "string_field", "px"),
        asks_api=True,
    ),
}
"""Errors the API's answers cause."""

REPORT_LINES = {
    "report of no file": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: No DuckDB file at hypertracker_data.duckdb: load one with "
        "`hypertracker load` or `hypertracker demo` first, or name it (or another destination) "
        "with --destination",
        ("report",),
    ),
    "report after the demo": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: No DuckDB file at hypertracker_data.duckdb: load one with "
        "`hypertracker load` or `hypertracker demo` first, or name it (or another destination) "
        "with --destination; the demo's data is in hypertracker_demo.duckdb: hypertracker "
        "report --destination hypertracker_demo.duckdb",
        ("report",),
        prepare=lambda workdir, simulator: (workdir / "hypertracker_demo.duckdb").touch(),
    ),
    "report of a dataset not loaded": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: No dataset 'hypertrack' was loaded in this destination "
        "(datasets loaded with dlt there: hypertracker): name one with --dataset, or load it "
        "with `hypertracker load`",
        ("report", "--destination", "read.duckdb", "--dataset", "hypertrack"),
        prepare=load_segments_into("read.duckdb"),
    ),
    "report over its database": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --output read.duckdb is the DuckDB file the report "
        "reads: name another file with --output (or replace the database with --force)",
        ("report", "--destination", "read.duckdb", "--output", "./read.duckdb"),
        prepare=load_segments_into("read.duckdb"),
    ),
    "report over another file": ErrorLine(
        f"{CLI_ERROR}HyperTrackerError: --output notes.html exists and is not a hypertracker "
        "report: name another file with --output, or overwrite it with --force",
        ("report", "--destination", "read.duckdb", "--output", "notes.html"),
        prepare=load_segments_into("read.duckdb", beside="notes.html"),
    ),
}
"""Errors of `hypertracker report`."""

COMMAND_LINES = SETTING_LINES | OPTION_LINES | API_LINES | REPORT_LINES

PYTHON_LINES = {
    "coins not a list": (
        {"coins": 5},
        setting_error(
            "coins",
            '5: it is not a list. Give a list such as ["BTC", "ETH"], a JSON list, or a '
            "comma-separated string",
        ),
    ),
    "segment ids not a list": (
        {"segment_ids": 9},
        setting_error(
            "segment_ids",
            '9: it is not a list. Give a list such as ["BTC", "ETH"], a JSON list, or a '
            "comma-separated string",
        ),
    ),
    "page size in words": (
        {"page_size": "many"},
        setting_error(
            "page_size",
            "'many': it is not a number. Leave it unset for 1000, the cheapest in requests",
        ),
    ),
    "lag a list": (
        {"lag": [1]},
        setting_error("lag", "[1]: it is not a number. Use for example lag=3600"),
    ),
    "run size infinite": (
        {"max_fills_per_run": float("inf")},
        setting_error(
            "max_fills_per_run",
            "inf: it is not a finite number. Use for example max_fills_per_run=250000, or 0 for "
            "no limit",
        ),
    ),
    "key not text": (
        {"api_key": 5},
        setting_error(
            "api_key",
            "'<a int>': it is not text. Give the token from the HyperTracker API dashboard as a "
            "string",
        ),
    ),
    "url not text": (
        {"base_url": 5},
        setting_error(
            "base_url",
            "5: it is not an http(s) URL. Use https://ht-api.coinmarketman.com, or leave it unset",
        ),
    ),
    "address not text": (
        {"address": 5},
        setting_error("address", "5: it is not a wallet address. Write it like 0x3160fb45..."),
    ),
    "refresh in words": (
        {"refresh_snapshots": "maybe"},
        setting_error(
            "refresh_snapshots", "'maybe': it is neither true nor false. Use true or false"
        ),
    ),
}
"""Settings of the wrong type, given in Python, and the error's line (`Type: text`)."""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder to run the command in, with dlt's pipelines kept apart in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    return tmp_path


def exit_code(argv: list[str]) -> int:
    """Runs the command in this process; its exit code, argparse's refusals included."""
    try:
        return main(argv)
    except SystemExit as refused:
        return int(refused.code or 0)


@pytest.mark.parametrize("name", COMMAND_LINES)
def test_each_errors_line_reads_as_written(
    name: str,
    workdir: Path,
    simulator_settings: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    case = COMMAND_LINES[name]
    values = {
        "workdir": workdir,
        "https_url": simulator_settings.url.replace("http://", "https://"),
        "closed_url": f"http://127.0.0.1:{free_port()}",
        "dlt_destinations": ", ".join(sorted(dlt.destinations.__all__)),
    }
    for variable, value in case.env.items():
        if value is None:
            monkeypatch.delenv(variable, raising=False)
        else:
            monkeypatch.setenv(variable, value.format(**values))
    if case.prepare:
        case.prepare(workdir, simulator_settings)
    capsys.readouterr()
    simulator_settings.reset_requests()

    code = exit_code([arg.format(**values) for arg in case.argv])

    errors = capsys.readouterr().err.splitlines()
    assert (code, errors[-1:]) == (case.code, [case.line.format(**values)])
    assert len(errors) == 1 or case.code == 2, "one line, no traceback"
    assert bool(simulator_settings.requests) == case.asks_api


@pytest.mark.parametrize(("settings", "line"), PYTHON_LINES.values(), ids=PYTHON_LINES)
def test_each_python_settings_error_reads_as_written(settings: dict[str, Any], line: str):
    with pytest.raises(HyperTrackerConfigError) as error:
        hypertracker(**{"api_key": "k", "base_url": "http://127.0.0.1:9", **settings})
    assert f"{type(error.value).__name__}: {error.value}" == line


def test_a_duckdb_file_another_process_holds_is_named_with_that_process(
    simulator: Simulator, tmp_path: Path
):
    env = command_env(
        SOURCES__HYPERTRACKER__BASE_URL=simulator.url,
        SOURCES__HYPERTRACKER__API_KEY=API_KEY,
        DLT_DATA_DIR=str(tmp_path / "dlt"),
    )
    database = tmp_path / LOCAL_DATABASE
    with duckdb.connect(str(database)):
        command = [str(CONSOLE_SCRIPT), "load"]
        done = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)

    assert (done.returncode, done.stderr.splitlines()) == (
        1,
        [
            f"{CLI_ERROR}DestinationConnectionError: the DuckDB file {database} is open in "
            f"another process (PID {os.getpid()}): wait until it ends or stop it, then run again"
        ],
    )
    assert [record for record in simulator.requests if record.host == "api"] == []


def test_an_unknown_host_is_named_in_balanced_words():
    unknown = NameResolutionError(
        "nohost.invalid", "<HTTPConnection>", socket.gaierror(-2, "Name or service not known")
    )
    error = requests.ConnectionError(MaxRetryError(None, "/", reason=unknown))  # type: ignore[arg-type]
    assert unreachable_cause(error) == (
        "its host name is unknown (Failed to resolve 'nohost.invalid' ([Errno -2] Name or "
        "service not known))"
    )


def test_a_duckdb_file_named_like_its_dataset_stops_before_any_request(
    simulator: Simulator, tmp_path: Path
):
    pipeline = dlt.pipeline(
        "clash",
        destination=dlt.destinations.duckdb(str(tmp_path / "liquidations.duckdb")),
        dataset_name="liquidations",
        pipelines_dir=str(tmp_path / "pipelines"),
    )
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(hypertracker(api_key=API_KEY, base_url=simulator.url))
    assert str(root_cause(failure.value)) == (
        "The pipeline's dataset liquidations and its DuckDB file liquidations.duckdb share a "
        "name, and DuckDB then cannot tell the dataset from the file: rename one of them in "
        "dlt.pipeline()"
    )
    assert simulator.requests == []
