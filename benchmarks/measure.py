"""Measuring a pipeline in a process of its own: wall and CPU of its work, its peak memory."""

import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from importlib.metadata import version
from pathlib import Path
from typing import Any

from hypertracker_source.runs.malloc import DUCKDB_JEMALLOC_CONF, DUCKDB_JEMALLOC_VARIABLE

PROJECT_ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(__file__).resolve().parent / "results"
CHILD_ENVIRONMENT = {"PROVIDERS__ENABLE_AIRFLOW_SECRETS": "false"}
"""dlt looks for secrets in Airflow whenever Airflow is importable (seconds per process, a database
query); a pipeline outside Airflow never needs that, so no benchmarked process does it."""


def process_cpu_seconds() -> float:
    """User plus system CPU time of this process, every thread, and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@contextmanager
def measured() -> Iterator[dict[str, float]]:
    """Measures the wall and CPU seconds of the block into the dict it yields."""
    report: dict[str, float] = {}
    wall, cpu = time.perf_counter(), process_cpu_seconds()
    yield report
    report["wall_s"] = time.perf_counter() - wall
    report["cpu_s"] = process_cpu_seconds() - cpu


def child_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """A measured child's environment: this process's as its user set it, CHILD_ENVIRONMENT, `env`.

    Importing hypertracker_source set DuckDB's jemalloc setting in this process's environment
    (runs/malloc.py); a child of another tree, or a floor, must not inherit it, and a child of
    this tree sets it again itself.
    """
    own = {
        name: value
        for name, value in os.environ.items()
        if (name, value) != (DUCKDB_JEMALLOC_VARIABLE, DUCKDB_JEMALLOC_CONF)
    }
    return {**own, **CHILD_ENVIRONMENT, **(env or {})}


def peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report_to_parent(report: dict[str, Any]) -> None:
    """Hands a child's measurements to the parent: one JSON line, the last of its stdout."""
    print(json.dumps(report), flush=True)


def run_child(module: str, args: Sequence[str], env: dict[str, str] | None = None) -> dict:
    """Runs `python -m module args` in a fresh process; returns its report and peak memory.

    The report gets `process_cpu_s` and `peak_rss_mb` from the kernel's accounting of that one
    process (wait4), so that no other process, the simulator's included, is counted.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdout=subprocess.PIPE,
        text=True,
        cwd=PROJECT_ROOT,
        env=child_environment(env),
    )
    assert process.stdout is not None
    output = process.stdout.read()
    process.stdout.close()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        raise RuntimeError(f"{module} {' '.join(args)} ended with code {process.returncode}")
    report = json.loads(output.strip().splitlines()[-1])
    report["process_cpu_s"] = usage.ru_utime + usage.ru_stime
    report["peak_rss_mb"] = usage.ru_maxrss / 1024
    return report


def machine() -> str:
    """One line naming the machine and the versions that matter."""
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = ", ".join(
        f"{package} {version(package)}" for package in ("dlt", "duckdb", "pyarrow", "requests")
    )
    return (
        f"{os.cpu_count()} CPUs ({platform.machine()}), {memory_gb:.0f} GB RAM, "
        f"{platform.system()} {platform.release()}, Python {platform.python_version()}, {versions}"
    )


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats with two decimals."""

    def cell(value: Any) -> str:
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return "\n".join(lines)


def write_result(name: str, markdown: str, raw: Any) -> Path:
    """Writes a benchmark's markdown (kept in git) and its raw numbers (ignored) under results/."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(raw, indent=2))
    path = RESULTS / f"{name}.md"
    path.write_text(markdown)
    return path
