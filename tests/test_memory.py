"""The memory settings of a load: Arrow's, glibc's and DuckDB's allocators, and memory_limit."""

import json
import os
import subprocess
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

import dlt
import pyarrow as pa
import pytest
from helpers import API_KEY, assert_fills_equal

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.commands import main
from hypertracker_source.commands.options import LOCAL_DATABASE
from hypertracker_source.runs.failures import DUCKDB_MEMORY_HEADLINE
from hypertracker_source.runs.malloc import (
    DUCKDB_JEMALLOC_CONF,
    DUCKDB_JEMALLOC_VARIABLE,
    GLIBC_MALLOC_VARIABLES,
    MALLOC_ARENAS,
    glibc,
)
from hypertracker_source.runs.memory import ARROW_POOL_VARIABLE

DUCKDB_SETTINGS = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"
ARENAS_CHILD = Path(__file__).with_name("malloc_arenas_child.py")
DUCKDB_FREED_CHILD = Path(__file__).with_name("duckdb_freed_child.py")
needs_glibc = pytest.mark.skipif(glibc() is None, reason="glibc's malloc only")
needs_jemalloc = pytest.mark.skipif(
    glibc() is None, reason="DuckDB links jemalloc on glibc's Linux only"
)


@pytest.fixture
def arrow_pool() -> Iterator[None]:
    """Restores pyarrow's pool of the test process after the test."""
    pool = pa.default_memory_pool()
    yield
    pa.set_memory_pool(pool)


def test_the_source_allocates_arrow_memory_from_the_system_allocator(
    arrow_pool: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv(ARROW_POOL_VARIABLE, raising=False)
    pa.set_memory_pool(pa.mimalloc_memory_pool())

    hypertracker(api_key=API_KEY, base_url="http://127.0.0.1:9")

    assert pa.default_memory_pool().backend_name == "system"


def test_the_users_arrow_pool_setting_is_left_alone(
    arrow_pool: None, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(ARROW_POOL_VARIABLE, "mimalloc")
    pa.set_memory_pool(pa.mimalloc_memory_pool())

    hypertracker(api_key=API_KEY, base_url="http://127.0.0.1:9")

    assert pa.default_memory_pool().backend_name == "mimalloc"


def child_output(child: Path, unset: Collection[str], environment: dict[str, str]) -> str:
    """The last line a child script prints in a fresh process, without the test's own `unset`
    variables and with `environment` added."""
    kept = {name: value for name, value in os.environ.items() if name not in unset}
    output = subprocess.run(
        [sys.executable, str(child)],
        env={**kept, **environment},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return output.strip().splitlines()[-1]


def arenas_as_the_command_starts_threads(environment: dict[str, str]) -> int:
    """The malloc arenas eight threads use in a fresh process of the command, as it first imports
    a library that starts threads (dlt, duckdb or pyarrow)."""
    return int(child_output(ARENAS_CHILD, GLIBC_MALLOC_VARIABLES, environment))


@needs_glibc
def test_the_command_caps_glibcs_arenas_before_its_libraries_start_threads():
    assert arenas_as_the_command_starts_threads(environment={}) == MALLOC_ARENAS


@needs_glibc
def test_the_users_glibc_malloc_setting_is_left_alone():
    assert arenas_as_the_command_starts_threads({"MALLOC_ARENA_MAX": "4"}) == 4


def duckdb_after_a_query(environment: dict[str, str]) -> dict[str, Any]:
    """DuckDB's jemalloc setting and the memory a sort of about 100 MB left resident, in a fresh
    process of the command."""
    after: dict[str, Any] = json.loads(
        child_output(DUCKDB_FREED_CHILD, {DUCKDB_JEMALLOC_VARIABLE}, environment)
    )
    return after


@needs_jemalloc
def test_the_command_makes_duckdb_hand_back_what_a_query_freed():
    after = duckdb_after_a_query(environment={})

    assert after["conf"] == DUCKDB_JEMALLOC_CONF
    assert after["left_mb"] < 30


@needs_jemalloc
def test_the_users_duckdb_allocator_setting_is_left_alone():
    never_purge = "dirty_decay_ms:-1,muzzy_decay_ms:-1"

    after = duckdb_after_a_query({DUCKDB_JEMALLOC_VARIABLE: never_purge})

    assert after["conf"] == never_purge
    assert after["left_mb"] > 60


def test_a_merge_beyond_duckdbs_memory_limit_names_the_setting_and_a_rerun_above_it_lands_all(
    tmp_path: Path,
    simulator_settings: Simulator,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture,
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv(DUCKDB_SETTINGS, json.dumps({"threads": 1, "memory_limit": "1MB"}))

    assert main(["load"]) == 1
    assert capfd.readouterr().err.splitlines() == [DUCKDB_MEMORY_HEADLINE]

    monkeypatch.setenv(DUCKDB_SETTINGS, json.dumps({"threads": 1, "memory_limit": "192MB"}))
    assert main(["load"]) == 0
    dataset = dlt.dataset(dlt.destinations.duckdb(str(tmp_path / LOCAL_DATABASE)), "hypertracker")
    assert_fills_equal(dataset, simulator_settings.expected_fills())
