"""The simulator as its own package: a child process, a command line derived from its config,
no dlt or pyarrow, and no import cycle."""

import ast
import subprocess
import sys
from dataclasses import fields
from datetime import timedelta
from graphlib import TopologicalSorter
from pathlib import Path

import orjson
import requests
from helpers import API_KEY, SEGMENTS, STATUS

import hypertracker_simulator
from hypertracker_simulator import SimulatorConfig, start_simulator_process
from hypertracker_simulator.config import command_line_flags, config_of

PACKAGE = Path(hypertracker_simulator.__file__).parent


def test_simulator_process() -> None:
    with start_simulator_process(fills=200, api_key=API_KEY, seed=9) as process:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        assert requests.get(process.url + SEGMENTS, headers=headers, timeout=10).ok
        assert process.file_url.startswith("http://localhost:")
        assert process.request_counts() == {"segments": 1}
        assert process.advance_state(new_fills=3) == 2
        process.set_faults(error_rate=1.0)
        assert requests.get(process.url + STATUS, headers=headers, timeout=10).status_code >= 500
        process.reset_requests()
        assert process.request_counts() == {}
    assert process.process.poll() is not None


UNUSUAL = SimulatorConfig(
    seed=11,
    fills=12,
    api_key="other-key",
    history_start="2026-01-01T00:00:00Z",
    fill_order="notes",
    export_mode="inline",
    gzip_files=True,
    link_ttl=2.5,
    heatmap_coins=("BTC", "xyz:MSTR"),
    risk_coins=3,
    rate_limit_per_minute=30,
    rate_limit_window=10.0,
    retry_after_header=True,
    clock_offset=timedelta(seconds=-90),
    latency=0.25,
    port=8123,
    file_port=8124,
    extra_coins=("<b>X</b>",),
)
"""A configuration with no field at its default."""


def test_the_command_line_gives_back_the_config_its_flags_come_from() -> None:
    assert all(getattr(UNUSUAL, field.name) != field.default for field in fields(SimulatorConfig))
    assert config_of(command_line_flags(UNUSUAL)) == UNUSUAL
    assert command_line_flags(SimulatorConfig()) == []
    assert config_of([]) == SimulatorConfig()


def test_the_simulator_imports_neither_dlt_nor_pyarrow() -> None:
    heavy = {"dlt", "pyarrow", "pendulum", "hypertracker_source"}
    probe = (
        "import sys, hypertracker_simulator, hypertracker_simulator.__main__; "
        "print(' '.join(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout.split()
    assert "hypertracker_simulator" in loaded
    assert heavy.isdisjoint(loaded)


def local_imports(module: Path) -> set[str]:
    """The modules of the package one module imports, TYPE_CHECKING blocks included."""
    imported: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            imported |= {node.module} if node.module else {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            prefix = "hypertracker_simulator."
            if node.module.startswith(prefix):
                imported.add(node.module.removeprefix(prefix))
    return imported


def test_the_simulators_modules_import_each_other_without_a_cycle() -> None:
    graph = {path.stem: local_imports(path) for path in PACKAGE.glob("*.py")}
    assert set().union(*graph.values()) <= set(graph)
    order = list(TopologicalSorter(graph).static_order())
    assert order.index("view") < order.index("api") < order.index("server")
    assert order.index("server") < order.index("simulator")


def test_the_command_line_tells_a_person_its_address_key_and_how_to_make_a_new_version() -> None:
    command = [sys.executable, "-m", "hypertracker_simulator", "--api-key", "rehearsal-key"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None and process.stderr is not None
        url = orjson.loads(process.stdout.readline())["url"]
        told = [process.stderr.readline().rstrip("\n") for _ in range(3)]
        assert (
            told[0] == f"HyperTracker simulator at {url}, API key rehearsal-key (Ctrl-C stops it)"
        )
        assert told[1] == (
            f"Load from it:     SOURCES__HYPERTRACKER__BASE_URL={url} "
            "SOURCES__HYPERTRACKER__API_KEY=rehearsal-key hypertracker load"
        )
        new_version = told[2].removeprefix("New data version: ")
        done = subprocess.run(
            new_version, shell=True, capture_output=True, text=True, timeout=30, check=True
        )
        assert orjson.loads(done.stdout) == {"version": 2}
        status = requests.get(
            url + STATUS, headers={"Authorization": "Bearer rehearsal-key"}, timeout=10
        )
        assert status.ok
    finally:
        process.terminate()
        process.wait(timeout=30)
