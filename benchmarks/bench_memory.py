"""Where a first load's memory goes: ours under several memory settings, each step sampled.

    .venv/bin/python -m benchmarks.bench_memory --fills 200000 --repeat 1

For each setting (a set of environment variables over the project's .dlt/config.toml), ours runs a
whole first load in a fresh process (benchmarks/memory_phases.py) against one simulator, and the
report gives the whole process's peak, and each step's resident memory at its start and its peak,
chunk by chunk. Prints a markdown report and writes it to benchmarks/results/memory.md.
"""

import argparse
import json
import tempfile
from typing import Any

from benchmarks.bench_fills import API_KEY, BEFORE_ENVIRONMENT, GLIBC_DEFAULT_MALLOC, SEED
from benchmarks.measure import machine, markdown_table, run_child, write_result
from hypertracker_simulator import start_simulator_process

DUCKDB_SETTINGS = "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG"
SETTINGS: dict[str, dict[str, str]] = {
    "before (mimalloc, no memory_limit, glibc's malloc)": BEFORE_ENVIRONMENT,
    "system allocator, no memory_limit": {DUCKDB_SETTINGS: json.dumps({"threads": 1})},
    "mimalloc, memory_limit 192MB": {"ARROW_DEFAULT_MEMORY_POOL": "mimalloc"},
    "glibc's malloc (system allocator, memory_limit 192MB)": GLIBC_DEFAULT_MALLOC,
    "glibc, 2 arenas only": {"MALLOC_ARENA_MAX": "2"},
    "glibc, 128 KiB mmap threshold only": {"MALLOC_MMAP_THRESHOLD_": "131072"},
    "now (system allocator, memory_limit 192MB, 2 arenas, 128 KiB mmap)": {},
    "now, 5 extract workers": {"EXTRACT__WORKERS": "5"},
    "now, max_fills_per_run 100000": {"SOURCES__HYPERTRACKER__MAX_FILLS_PER_RUN": "100000"},
}
"""Each setting measured, by name: the environment it runs with."""


def run_all(fills: int, repeat: int, names: list[str]) -> list[dict[str, Any]]:
    """Runs ours under the named settings, `repeat` times in turn; returns each run's figures."""
    results = []
    with start_simulator_process(fills=fills, api_key=API_KEY, seed=SEED) as sim:
        for _ in range(repeat):
            for name in names:
                environment = SETTINGS[name]
                with tempfile.TemporaryDirectory(prefix="bench_memory_") as workdir:
                    args = [sim.url, API_KEY, workdir]
                    report = run_child("benchmarks.memory_phases", args, environment)
                report.update(setting=name, fills=fills)
                print(f"  {name}: {report['peak_rss_mb']:.0f} MB", flush=True)
                results.append(report)
    return results


def steps(report: dict[str, Any]) -> str:
    """Each step of each chunk as `step start>peak`, in MB."""
    return ", ".join(f"{step} {start:.0f}>{peak:.0f}" for step, start, peak in report["steps"])


def report(results: list[dict[str, Any]], repeat: int) -> str:
    """The markdown report of a run."""
    rows = [
        [
            result["setting"],
            f"{result['fills']:,}",
            result["chunks"],
            f"{result['peak_rss_mb']:.0f}",
            f"{result['after_imports_mb']:.0f}",
            result["wall_s"],
            result["cpu_s"],
            steps(result),
        ]
        for result in results
    ]
    header = ["setting", "fills", "chunks", "peak RSS MB", "after imports MB", "wall s", "CPU s"]
    header.append("each step: MB at its start > its peak")
    return "\n".join(
        [
            "# Where a first load's memory goes",
            "",
            f"Machine: {machine()}.",
            f"Command: `.venv/bin/python -m benchmarks.bench_memory --fills "
            f"{results[0]['fills']} --repeat {repeat} --settings` and the settings below.",
            "",
            markdown_table(header, rows),
            "",
            "Peak RSS: the whole process (wait4). Steps: resident memory sampled every 5 ms.",
            "",
        ]
    )


def main() -> None:
    """Runs the benchmark, prints the report and writes it under benchmarks/results/."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory")
    parser.add_argument("--fills", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument(
        "--settings", nargs="*", choices=list(SETTINGS), default=list(SETTINGS), help="(all)"
    )
    parser.add_argument("--name", default="memory", help="the results file: results/<name>.md")
    args = parser.parse_args()
    results = run_all(args.fills, args.repeat, args.settings)
    markdown = report(results, args.repeat)
    print(markdown)
    print(f"written to {write_result(args.name, markdown, results)}")


if __name__ == "__main__":
    main()
