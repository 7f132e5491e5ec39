"""A new user's mistakes and bad days: the right data stays right, each ends in one clear line."""

import logging
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dlt
import pytest
from dlt.common.configuration.exceptions import ConfigFieldMissingException
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import (
    API_KEY,
    CONSOLE_SCRIPT,
    DEMO_DATABASE,
    DEMO_FILLS,
    DEMO_SEED,
    LOCAL_DATABASE,
    TABLES,
    PipelineFactory,
    assert_error,
    assert_fills_equal,
    cohorts,
    command_env,
    free_port,
    high_water_marks,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.commands import main
from hypertracker_source.exceptions import (
    HyperTrackerAuthError,
    HyperTrackerConfigError,
    HyperTrackerError,
    HyperTrackerUnreachableError,
)
from hypertracker_source.runs.dlt_log import command_line_text
from hypertracker_source.runs.failures import root_cause

DEFAULT_RUNTIME_BUDGET = 60.0
"""The longest a command may take to give up on an API it cannot reach, with default [runtime]."""
INTERRUPT_BUDGET = 8.0
"""The longest a command may take to end after SIGINT or SIGTERM."""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder to run the command in, with dlt's pipelines kept apart in it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    return tmp_path


def real_pipeline(folder: Path) -> dlt.Pipeline:
    """The pipeline a plain `hypertracker load` in a folder loads into, attached to read it."""
    return dlt.pipeline(
        "hypertracker",
        destination=dlt.destinations.duckdb(str(folder / LOCAL_DATABASE)),
        dataset_name="hypertracker",
    )


def fills_in(database: Path) -> int:
    """How many fills a DuckDB file's hypertracker dataset holds."""
    dataset = dlt.dataset(dlt.destinations.duckdb(str(database)), "hypertracker")
    return dataset["liquidation_fills"].arrow().num_rows


# the demo, then real loads


@pytest.mark.slow
def test_demo_then_a_real_load_in_one_folder_lands_exactly_the_apis_fills(
    workdir: Path, simulator_settings: Simulator
):
    assert main(["load", "--demo"]) == 0
    assert main(["load"]) == 0

    real = real_pipeline(workdir)
    assert_fills_equal(real, simulator_settings.expected_fills())
    assert high_water_marks(real)
    assert fills_in(workdir / DEMO_DATABASE) == DEMO_FILLS
    assert len(landed(real, "liquidation_fills")) < DEMO_FILLS


def test_demo_refuses_options_that_point_it_at_a_real_pipeline(
    workdir: Path, capsys: pytest.CaptureFixture
):
    assert main(["load", "--demo", "--pipeline-name", "hypertracker"]) == 1

    error = capsys.readouterr().err
    assert_error(error, HyperTrackerError, "--pipeline-name", "never reach a real pipeline")
    assert list(workdir.iterdir()) == []


def test_a_duckdb_file_is_made_in_the_folder_the_command_runs_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        assert main(["load", "--demo", "--resources", "segments"]) == 0
    capsys.readouterr()

    for folder in ("a", "b"):
        database = tmp_path / folder / DEMO_DATABASE
        loads = dlt.dataset(dlt.destinations.duckdb(str(database)), "hypertracker")["_dlt_loads"]
        assert loads.arrow().num_rows == 1, f"{folder} was loaded once"
        rows = dlt.dataset(dlt.destinations.duckdb(str(database)), "hypertracker")["segments"]
        assert rows.arrow().num_rows == len(cohorts(Simulator(seed=DEMO_SEED, fills=DEMO_FILLS)))


@pytest.mark.slow
def test_two_folders_with_one_pipeline_name_each_keep_their_own_file_and_marks(
    tmp_path: Path, simulator_settings: Simulator, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        monkeypatch.chdir(tmp_path / folder)
        assert main(["load", "--resources", "liquidation_fills"]) == 0
    simulator_settings.advance_state(new_fills=10)
    simulator_settings.reset_requests()
    monkeypatch.chdir(tmp_path / "a")
    assert main(["load", "--resources", "liquidation_fills"]) == 0
    capsys.readouterr()

    assert simulator_settings.request_counts() == {"status": 1, "fills": 1}, (
        "folder a resumed from its own marks"
    )
    fills = {
        folder: dlt.destinations.duckdb(str(tmp_path / folder / LOCAL_DATABASE)) for folder in "ab"
    }
    assert_fills_equal(dlt.dataset(fills["a"], "hypertracker"), simulator_settings.expected_fills())
    first_load = simulator_settings.expected_fills()[:-10]
    assert_fills_equal(dlt.dataset(fills["b"], "hypertracker"), first_load)


# an API that cannot be reached


def start_command(*args: str, env: dict[str, str], cwd: Path) -> subprocess.Popen:
    """Starts the installed command, its output kept."""
    return subprocess.Popen(
        [str(CONSOLE_SCRIPT), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(command: subprocess.Popen) -> tuple[int, list[str]]:
    """Waits for a started command, killed past twice the budget; its exit code, stderr lines."""
    try:
        _, stderr = command.communicate(timeout=DEFAULT_RUNTIME_BUDGET * 2)
    finally:
        command.kill()
    return command.returncode, stderr.splitlines()


@pytest.mark.slow
def test_an_unreachable_api_ends_within_one_requests_retries_naming_cause_and_address(
    simulator: Simulator, tmp_path: Path
):
    """Both addresses at once: each command spends its retries waiting, side by side."""
    causes = {
        f"http://127.0.0.1:{free_port()}": "Connection refused",
        simulator.url.replace("http://", "https://"): "the TLS handshake failed",
    }
    started = time.monotonic()
    commands = {}
    for number, base_url in enumerate(causes):
        env = command_env(
            SOURCES__HYPERTRACKER__BASE_URL=base_url,
            SOURCES__HYPERTRACKER__API_KEY=API_KEY,
            DLT_DATA_DIR=str(tmp_path / f"dlt_{number}"),
        )
        (tmp_path / str(number)).mkdir()
        commands[base_url] = start_command("load", env=env, cwd=tmp_path / str(number))

    for base_url, command in commands.items():
        code, errors = finish(command)
        assert code == 1
        text = assert_error(
            "\n".join(errors), HyperTrackerUnreachableError, phrase=causes[base_url]
        )
        assert f"API at {base_url} cannot be reached: " in text
    assert time.monotonic() - started < DEFAULT_RUNTIME_BUDGET
    assert [record for record in simulator.requests if record.host == "api"] == []


# a rejected key


def test_a_rejected_key_stops_everything_at_the_first_401(
    workdir: Path, simulator_settings: Simulator, monkeypatch: pytest.MonkeyPatch, capsys
):
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", "revoked-key")

    assert main(["load"]) == 1

    assert 1 <= len(simulator_settings.requests) <= 2
    assert {record.status for record in simulator_settings.requests} == {401}
    error = capsys.readouterr().err
    assert_error(error, HyperTrackerAuthError, "api_key", "rejected the API key (HTTP 401")


def test_a_rejected_key_costs_one_request_from_python_too(
    simulator: Simulator, make_pipeline: PipelineFactory
):
    pipeline = make_pipeline()
    source = hypertracker(api_key="revoked-key", base_url=simulator.url, coins=["BTC", "ETH"])
    with pytest.raises(PipelineStepFailed) as failure:
        pipeline.run(source)
    assert_error(root_cause(failure.value), HyperTrackerAuthError, phrase="rejected the API key")
    assert len(simulator.requests) == 1


# unknown coins


def test_an_unknown_coin_is_warned_about_once_and_the_summary_shows_its_zero(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture, caplog
):
    with caplog.at_level(logging.WARNING, logger="hypertracker_source.fills.reads"):
        assert main(["load", "--coins", "DOGEX"]) == 0
    output = capsys.readouterr().out

    (warning,) = [record.getMessage() for record in caplog.records]
    assert re.fullmatch(
        r"sources\.hypertracker\.coins: 'DOGEX' returned no fills since \S+Z: the API answers a "
        r"coin it does not know with no fills, so check the name \(case-sensitive: BTC, kPEPE, "
        r"xyz:MSTR\)",
        warning,
    )
    fills_requests = [r for r in simulator_settings.requests if r.endpoint == "fills"]
    assert {r.params.get("coin") for r in fills_requests} == {"DOGEX"}
    for table in TABLES:
        assert f"\n  {table:<22} " in output
    assert "\n  liquidation_fills               0 rows\n" in output

    caplog.clear()
    simulator_settings.reset_requests()
    with caplog.at_level(logging.WARNING, logger="hypertracker_source.fills.reads"):
        assert main(["load", "--coins", "DOGEX"]) == 0
    assert caplog.records == []
    assert not [r for r in simulator_settings.requests if r.endpoint == "fills"], "same version"


def test_a_misspelled_coin_costs_at_most_one_probe(
    simulator: Simulator, make_pipeline: PipelineFactory, caplog: pytest.LogCaptureFixture
):
    with caplog.at_level(logging.WARNING, logger="hypertracker_source.fills.reads"):
        make_pipeline().run(
            source_for(simulator, coins=["KPEPE", "dogex"]).with_resources("liquidation_fills")
        )
    probes = sorted(r.params["coin"] for r in simulator.requests if r.params.get("limit") == "1")
    assert probes == ["DOGEX", "kPEPE"]
    case, unknown = sorted(record.getMessage() for record in caplog.records)
    assert case == (
        "sources.hypertracker.coins: 'KPEPE' returned no fills, but 'kPEPE' has fills: coin names "
        "are case-sensitive; use --coins kPEPE on the command line, coins=['kPEPE'] in Python"
    )
    assert unknown.startswith("sources.hypertracker.coins: 'dogex' returned no fills since ")


# quiet, exact output


def test_missing_destination_credentials_print_what_to_set_in_one_line(
    workdir: Path, simulator_settings: Simulator, capfd: pytest.CaptureFixture
):
    assert main(["load", "--destination", "postgres"]) == 1

    output = capfd.readouterr()
    assert_error(
        output.err, ConfigFieldMissingException, phrase="DESTINATION__POSTGRES__CREDENTIALS="
    )
    assert "psutil" not in output.out + output.err
    assert simulator_settings.requests == []


@pytest.mark.parametrize("args", [["load", "--debug"], ["--debug", "load"]])
def test_debug_shows_the_traceback(
    args: list[str], workdir: Path, simulator_settings, capsys: pytest.CaptureFixture
):
    assert main([*args, "--segments", "99"]) == 1

    first, second, *rest = capsys.readouterr().err.splitlines()
    assert_error(first, HyperTrackerConfigError, "--segments", "not a segment id")
    assert second == "Traceback (most recent call last):"
    assert rest[-1].startswith("hypertracker_source.exceptions.HyperTrackerConfigError: ")


def test_version_and_load_help(capsys: pytest.CaptureFixture):
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0
    assert capsys.readouterr().out.startswith("hypertracker 0.1.0 (dlt 1.")

    with pytest.raises(SystemExit):
        main(["load", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for expected in (
        f"(default: {LOCAL_DATABASE})",
        "(default: hypertracker)",
        "(default: all markets; SOURCES__HYPERTRACKER__COINS)",
        "(default: BTC,ETH,HYPE; SOURCES__HYPERTRACKER__HEATMAP_COINS)",
        "SOURCES__HYPERTRACKER__API_KEY the API token",
        "liquidation_fills, liquidation_heatmap, segments, and liquidation_risk (every cohort)",
        "liquidation_risk_smart_money",
        "~/.dlt/pipelines/<pipeline name>",
    ):
        assert expected in help_text
    assert "fill_windows" not in help_text


def test_liquidation_risk_as_a_resource_loads_every_cohort(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    assert main(["load", "--resources", "liquidation_risk"]) == 0

    assert simulator_settings.request_counts() == {
        "risk": len(cohorts(simulator_settings)),
        "status": 1,
    }
    assert "\n  liquidation_risk " in capsys.readouterr().out


def test_check_spends_one_request_and_prints_the_data_version(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    assert main(["check"]) == 0

    assert (
        capsys.readouterr()
        .out.splitlines()[1]
        .startswith(
            f"HyperTracker at {simulator_settings.url} accepted the key (1 request). Data version: "
            f"{simulator_settings.last_update.strftime('%Y-%m-%dT%H:%M:%S.%f')[:-3]}Z"
        )
    )
    assert simulator_settings.request_counts() == {"status": 1}


def test_numeric_strings_are_numbers(simulator: Simulator, make_pipeline: PipelineFactory):
    pipeline = make_pipeline()
    source = source_for(simulator, page_size="500", lag="0", start_date="2026-01-01")
    pipeline.run(source.with_resources("liquidation_fills"))

    limits = {r.params.get("limit") for r in simulator.requests if r.endpoint == "fills"}
    assert limits == {"500"}
    since = [fill for fill in simulator.expected_fills() if fill["time"] >= "2026-01-01"]
    assert_fills_equal(pipeline, since)


# interrupts


def interrupted_load(sim: Simulator, folder: Path, signal_number: int) -> tuple[int, str, float]:
    """Runs `hypertracker load` and sends it a signal once its fills are being read."""
    env = command_env(
        SOURCES__HYPERTRACKER__BASE_URL=sim.url,
        SOURCES__HYPERTRACKER__API_KEY=API_KEY,
        SOURCES__HYPERTRACKER__PAGE_SIZE="20",
        DLT_DATA_DIR=str(folder / "dlt"),
    )
    process = subprocess.Popen(
        [str(CONSOLE_SCRIPT), "load", "--resources", "liquidation_fills"],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while sum(r.endpoint == "fills" for r in sim.requests) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal_number)
    sent = time.monotonic()
    _, errors = process.communicate(timeout=60)
    return process.returncode, errors, time.monotonic() - sent


@pytest.mark.parametrize(
    "signal_number", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"]
)
def test_an_interrupt_ends_the_run_at_once_and_a_rerun_resumes(
    signal_number: int, simulator: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__BASE_URL", simulator.url)
    monkeypatch.setenv("SOURCES__HYPERTRACKER__API_KEY", API_KEY)
    assert main(["load", "--resources", "liquidation_fills"]) == 0
    first_load, marks = simulator.expected_fills(), high_water_marks(real_pipeline(tmp_path))
    simulator.advance_state(new_fills=400)
    simulator.faults.latency = 0.3
    simulator.reset_requests()

    code, errors, seconds = interrupted_load(simulator, tmp_path, signal_number)

    name = signal.Signals(signal_number).name
    assert code == 128 + signal_number
    assert errors.splitlines()[-1] == (
        f"hypertracker: interrupted ({name}): nothing loaded is lost; run the same command again "
        "to resume: it finishes what this run began"
    )
    assert seconds < INTERRUPT_BUDGET
    assert_fills_equal(real_pipeline(tmp_path), first_load)
    assert high_water_marks(real_pipeline(tmp_path)) == marks

    simulator.faults.latency = 0.0
    assert main(["load", "--resources", "liquidation_fills"]) == 0
    assert_fills_equal(real_pipeline(tmp_path), simulator.expected_fills())


LOADING = "dlt/pipelines/hypertracker/load/normalized/*/started_jobs/*"
"""A package whose load jobs have started: the run is in its load step."""


INTERRUPTED_LOAD_FILLS = 40_000
"""Enough fills that the load step lasts for the signal to find it loading: 0.7 s, measured."""


@pytest.mark.slow
def test_an_interrupt_while_loading_drains_and_the_rerun_lands_everything_once(tmp_path: Path):
    with Simulator(seed=3, fills=INTERRUPTED_LOAD_FILLS, api_key=API_KEY) as sim:
        env = command_env(
            SOURCES__HYPERTRACKER__BASE_URL=sim.url,
            SOURCES__HYPERTRACKER__API_KEY=API_KEY,
            DLT_DATA_DIR=str(tmp_path / "dlt"),
        )
        command = [str(CONSOLE_SCRIPT), "load", "--resources", "liquidation_fills"]
        process = subprocess.Popen(
            command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(LOADING)) and time.monotonic() < deadline:
            time.sleep(0.005)
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=60)
        assert process.returncode == 128 + signal.SIGTERM
        assert errors.decode().splitlines()[-1].startswith("hypertracker: interrupted (SIGTERM): ")

        rerun = subprocess.run(command, env=env, cwd=tmp_path, capture_output=True, text=True)
        assert rerun.returncode == 0, rerun.stderr
        assert "Finishing the load an interrupted run left behind first." in rerun.stdout
        database = dlt.destinations.duckdb(str(tmp_path / LOCAL_DATABASE))
        assert_fills_equal(dlt.dataset(database, "hypertracker"), sim.expected_fills())


# column meanings


def test_every_column_says_what_it_holds_and_in_what_unit():
    from hypertracker_source.commands.docs import column_meaning, loaded_schema

    schema = loaded_schema()
    for table in TABLES:
        for name, column in schema.get_table(table)["columns"].items():
            assert column_meaning(name, column), f"{table}.{name} has no description"
    risk = schema.get_table("liquidation_risk")["columns"]
    assert "percent, 0 to 100" in risk["percent_risk"]["description"]
    fills = schema.get_table("liquidation_fills")["columns"]
    assert "(USD)" in fills["liquidation_mark_px"]["description"]


# the first hour's surprises, each in the line the user now reads


def test_a_bare_command_and_an_unknown_option_get_their_commands_usage(capsys):
    with pytest.raises(SystemExit) as bare:
        main([])
    err = capsys.readouterr().err
    assert bare.value.code == 2
    assert "load                load HyperTracker data with a dlt pipeline" in err
    assert "name a command" in err.splitlines()[-1]

    with pytest.raises(SystemExit) as unknown:
        main(["load", "--refresh"])
    first, *_, last = capsys.readouterr().err.splitlines()
    assert unknown.value.code == 2
    assert first.startswith("usage: hypertracker load [-h]")
    assert last.startswith("hypertracker load: error: ")
    assert "--refresh (did you mean --full-refresh?)" in last


@pytest.mark.parametrize(
    ("command", "description"),
    [
        ("demo", "Serve the bundled simulator of the API on 127.0.0.1, load all of its data"),
        ("report", "Write one self-contained HTML page of a loaded dataset"),
        ("check", "Send one request to the API's status with the key and address"),
        ("models", "Build and test the bundled dbt models"),
        ("init", "Write .dlt/config.toml (every setting, commented), .dlt/secrets.toml"),
    ],
)
def test_every_commands_help_says_what_it_does(command: str, description: str, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    assert description in " ".join(capsys.readouterr().out.split())


def test_the_simulators_help_explains_each_option():
    done = subprocess.run(
        [sys.executable, "-m", "hypertracker_simulator", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    text = " ".join(done.stdout.split())
    assert "--fills FILLS Fills in the first data version (default: 5000)" in text
    assert "--api-key API_KEY The bearer token the API host accepts" in text
    assert "--port PORT The API host's port (0: any free one) (default: 0)" in text


def test_demo_refuses_a_count_of_fills_below_one(workdir: Path, capsys):
    with pytest.raises(SystemExit) as refused:
        main(["demo", "--fills", "-5"])
    assert refused.value.code == 2
    last = capsys.readouterr().err.splitlines()[-1]
    assert last.startswith("hypertracker demo: error: argument --fills: ")
    assert "not a whole number above 0" in last
    assert list(workdir.iterdir()) == []


def test_check_says_what_it_asks_and_what_a_failure_means_for_check(tmp_path: Path):
    base_url = f"http://127.0.0.1:{free_port()}"
    env = command_env(
        SOURCES__HYPERTRACKER__BASE_URL=base_url,
        SOURCES__HYPERTRACKER__API_KEY=API_KEY,
        RUNTIME__REQUEST_MAX_ATTEMPTS="2",
    )
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "check"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=DEFAULT_RUNTIME_BUDGET,
        check=False,
    )
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        f"Asking HyperTracker at {base_url} for its status (1 request, up to 2 attempts)..."
    ]
    advice = "Nothing was loaded: check only asks the API's status"
    error = assert_error(done.stderr, HyperTrackerUnreachableError, phrase=advice)
    assert "high-water" not in error
    assert error.count("(") == error.count(")")


def test_dlt_warnings_reach_the_command_line_in_its_words(
    workdir: Path, simulator_settings: Simulator, monkeypatch: pytest.MonkeyPatch, capsys
):
    assert main(["load", "--resources", "segments"]) == 0
    capsys.readouterr()
    monkeypatch.setenv("DESTINATION__FILESYSTEM__BUCKET_URL", (workdir / "files").as_uri())
    assert main(["load", "--resources", "segments", "--destination", "filesystem"]) == 0

    first, *rest = capsys.readouterr().err.splitlines()
    assert first == (
        "hypertracker: warning: this pipeline last loaded into duckdb and now loads into "
        "filesystem: give each destination its own --pipeline-name, so that their state never "
        "meets"
    )
    assert all(line.startswith("hypertracker: warning: ") for line in rest), rest


def test_dlts_schema_warning_of_two_runs_at_once_is_said_plainly():
    message = (
        "When normalizing package 1796249573.37 with schema hypertracker: the storage schema "
        "hash abc is different from extract package schema hash def. Storage schema was used."
    )
    assert command_line_text(message) == (
        "another run of this pipeline changed its schema while this one ran (package "
        "1796249573.37 was normalized with the newer schema): run one load of a pipeline at a time"
    )
