"""`hypertracker init` in an empty folder, then a load with what it wrote, as a user runs them."""

import os
import subprocess
import sys
from pathlib import Path

import dlt
import pytest
import tomlkit
from helpers import API_KEY, HEATMAP_COINS, assert_fills_equal, cohorts, landed

from hypertracker_simulator import Simulator
from hypertracker_source.commands import main

HYPERTRACKER = str(Path(sys.executable).with_name("hypertracker"))
WRITTEN = (".dlt/config.toml", ".dlt/secrets.toml", "hypertracker_pipeline.py")


def run(command: list[str], folder: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Runs a command in a folder to its end, with its output."""
    return subprocess.run(
        command, cwd=folder, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def init(folder: Path, *flags: str) -> int:
    """`hypertracker init` in a folder, in this process; its exit code."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        return main(["init", *flags])


def user_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """A user's environment: PATH and the like, dlt's files in the test's folder, and settings."""
    return {**os.environ, "DLT_DATA_DIR": str(tmp_path / "dlt"), **settings}


@pytest.mark.slow
def test_init_writes_a_project_that_loads(simulator: Simulator, tmp_path: Path):
    project = tmp_path / "project"
    project.mkdir()
    env = user_env(tmp_path)

    done = run([HYPERTRACKER, "init"], project, env)
    assert done.returncode == 0, done.stderr
    assert sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file()) == sorted(
        (*WRITTEN, ".gitignore")
    )
    assert (project / ".gitignore").read_text() == ".dlt/secrets.toml\n"
    config = tomlkit.parse((project / ".dlt/config.toml").read_text())
    assert config["extract"]["workers"] == 16
    duckdb_settings = config["destination"]["duckdb"]["credentials"]["global_config"]
    assert duckdb_settings.unwrap() == {"threads": 1, "memory_limit": "192MB"}
    secrets = tomlkit.parse((project / ".dlt/secrets.toml").read_text()).unwrap()
    assert secrets == {"sources": {"hypertracker": {"api_key": ""}}}

    # the template's blank key fails before any request, naming the setting
    blank = run([sys.executable, "hypertracker_pipeline.py"], project, env)
    assert blank.returncode != 0
    assert "sources.hypertracker.api_key" in blank.stderr
    assert simulator.requests == []

    settings = {
        "SOURCES__HYPERTRACKER__BASE_URL": simulator.url,
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
    }
    done = run([sys.executable, "hypertracker_pipeline.py"], project, {**env, **settings})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    dataset = dlt.dataset(
        dlt.destinations.duckdb(str(project / "hypertracker_data.duckdb")), "hypertracker"
    )
    assert_fills_equal(dataset, simulator.expected_fills())
    heatmap_bins = sum(len(simulator.expected_heatmap(coin)) for coin in HEATMAP_COINS)
    assert len(landed(dataset, "liquidation_heatmap")) == heatmap_bins
    assert {row["segment_id"] for row in landed(dataset, "liquidation_risk")} == set(
        cohorts(simulator)
    )


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture):
    (tmp_path / ".gitignore").write_text("*.duckdb")
    (tmp_path / "hypertracker_pipeline.py").write_text("# mine\n")

    assert init(tmp_path) == 1
    refused = capsys.readouterr().err
    assert "hypertracker_pipeline.py" in refused
    assert "--force" in refused
    assert not (tmp_path / ".dlt").exists()
    assert (tmp_path / "hypertracker_pipeline.py").read_text() == "# mine\n"

    assert init(tmp_path, "--force") == 0, capsys.readouterr().err
    assert (
        "from hypertracker_source import hypertracker"
        in (tmp_path / "hypertracker_pipeline.py").read_text()
    )
    assert (tmp_path / ".gitignore").read_text() == "*.duckdb\n.dlt/secrets.toml\n"
    assert init(tmp_path, "--force") == 0, capsys.readouterr().err
    assert (tmp_path / ".gitignore").read_text() == "*.duckdb\n.dlt/secrets.toml\n"


def test_init_force_keeps_the_key_and_address_the_user_set(
    tmp_path: Path, capsys: pytest.CaptureFixture
):
    assert init(tmp_path) == 0
    secrets = tmp_path / ".dlt/secrets.toml"
    secrets.write_text(secrets.read_text().replace('api_key = ""', 'api_key = "my-own-key"'))
    config = tmp_path / ".dlt/config.toml"
    config.write_text(
        config.read_text().replace(
            "[sources.hypertracker]\n",
            '[sources.hypertracker]\nbase_url = "http://127.0.0.1:8787"\ncoins = ["BTC"]\n',
        )
    )
    capsys.readouterr()

    assert init(tmp_path, "--force") == 0
    forced = capsys.readouterr()
    assert "wrote .dlt/secrets.toml, keeping its api_key" in forced.out
    assert "my-own-key" not in forced.out + forced.err
    assert tomlkit.parse(secrets.read_text()).unwrap() == {
        "sources": {"hypertracker": {"api_key": "my-own-key"}}
    }
    kept = tomlkit.parse(config.read_text()).unwrap()
    assert kept["sources"]["hypertracker"] == {
        "base_url": "http://127.0.0.1:8787",
        "coins": ["BTC"],
    }
    assert kept["extract"]["workers"] == 16


def test_the_secrets_file_is_readable_by_its_owner_only(tmp_path: Path):
    assert init(tmp_path) == 0
    secrets = tmp_path / ".dlt/secrets.toml"
    assert secrets.stat().st_mode & 0o777 == 0o600

    secrets.chmod(0o644)
    assert init(tmp_path, "--force") == 0
    assert secrets.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / ".dlt/config.toml").stat().st_mode & 0o077 != 0, "config stays shareable"


@pytest.mark.slow
def test_two_initialised_folders_each_load_into_their_own_file(
    simulator: Simulator, tmp_path: Path
):
    settings = {
        "SOURCES__HYPERTRACKER__BASE_URL": simulator.url,
        "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
    }
    env = user_env(tmp_path, **settings)
    projects = [tmp_path / "first", tmp_path / "second"]
    for project in projects:
        project.mkdir()
        assert init(project) == 0
        done = run([sys.executable, "hypertracker_pipeline.py"], project, env)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    for project in projects:
        destination = dlt.destinations.duckdb(str(project / "hypertracker_data.duckdb"))
        dataset = dlt.dataset(destination, "hypertracker")
        assert dataset["_dlt_loads"].arrow().num_rows == 1, f"{project.name} holds its own load"
        assert_fills_equal(dataset, simulator.expected_fills())
