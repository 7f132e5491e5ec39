"""`hypertracker load` itself: a first load's peak memory and time through the command, two trees.

    .venv/bin/python -m benchmarks.bench_memory_command --before /tmp/before \
        --fills 200000 1500000 3000000 --repeat 2

For each fill count, one simulator serves every run; each run is the command as a user runs it
(the venv's `hypertracker` script, default settings, this project's .dlt/config.toml, DuckDB) in a
fresh directory, with the code of this tree ("after") or of `--before` (a checkout of another
commit, first on PYTHONPATH), and each environment of `--variant`, in turn, `--repeat` times
(`--turn` sets the first order, so that runs side by side interleave). Prints a markdown report of
each run and the medians, and writes it to benchmarks/results/memory_command.md (see `--name`);
`--report-from` reports the runs of several such files together.
"""

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench_fills import API_KEY, SEED, TARGET_FIRST_LOAD_PEAK_MB
from benchmarks.measure import (
    PROJECT_ROOT,
    child_environment,
    machine,
    markdown_table,
    write_result,
)
from hypertracker_simulator import start_simulator_process
from hypertracker_source.commands.options import DATASET, LOCAL_DATABASE
from hypertracker_source.config.defaults import FILLS_RESOURCE

COMMAND = Path(sys.executable).with_name("hypertracker")
"""The command as installed: the venv's console script, which imports the tree first on the path."""
AFTER = "after"


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory_command")
    parser.add_argument("--before", type=Path, required=True, help="the tree to compare with")
    parser.add_argument("--fills", type=int, nargs="*", default=[200_000, 1_500_000, 3_000_000])
    parser.add_argument("--repeat", type=int, default=2, help="runs of each tree per count")
    parser.add_argument(
        "--variant",
        nargs="*",
        default=[],
        help="NAME=JSON: also run this tree with the environment JSON sets, as NAME",
    )
    parser.add_argument(
        "--turn", type=int, default=0, help="start the order turned this many places (0)"
    )
    parser.add_argument(
        "--report-from",
        type=Path,
        nargs="*",
        default=[],
        help="run nothing: report the runs of these results/<name>.json files together",
    )
    parser.add_argument("--name", default="memory_command", help="results/<name>.md")
    return parser.parse_args()


def load(tree: Path, url: str, environment: dict[str, str]) -> dict[str, Any]:
    """Runs `hypertracker load` from a tree in a fresh directory; its wall, CPU, peak and rows."""
    with tempfile.TemporaryDirectory(prefix="bench_memory_command_") as workdir:
        shutil.copytree(PROJECT_ROOT / ".dlt", Path(workdir) / ".dlt")
        settings = {
            "PYTHONPATH": str(tree),
            "DLT_DATA_DIR": str(Path(workdir) / "dlt"),
            "SOURCES__HYPERTRACKER__BASE_URL": url,
            "SOURCES__HYPERTRACKER__API_KEY": API_KEY,
        }
        start = time.perf_counter()
        process = subprocess.Popen(
            [str(COMMAND), "load"],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            env=child_environment({**settings, **environment}),
        )
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status):
            raise RuntimeError(f"hypertracker load from {tree} ended with status {status}")
        return {
            "wall_s": wall,
            "cpu_s": usage.ru_utime + usage.ru_stime,
            "peak_rss_mb": usage.ru_maxrss / 1024,
            "rows": landed_fills(Path(workdir) / LOCAL_DATABASE),
        }


def landed_fills(database: Path) -> int:
    """How many fills the command's DuckDB file holds."""
    import duckdb

    with duckdb.connect(str(database), read_only=True) as connection:
        query = f"SELECT count(*) FROM {DATASET}.{FILLS_RESOURCE}"
        return int(connection.execute(query).fetchone()[0])  # type: ignore[index]


def runs_of(args: argparse.Namespace) -> dict[str, tuple[Path, dict[str, str]]]:
    """Each run's name: its tree and environment."""
    runs: dict[str, tuple[Path, dict[str, str]]] = {
        "before": (args.before.resolve(), {}),
        AFTER: (PROJECT_ROOT, {}),
    }
    for variant in args.variant:
        name, environment = variant.split("=", 1)
        runs[name] = (PROJECT_ROOT, json.loads(environment))
    return runs


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Runs every tree at every fill count, `repeat` times, the order turning each time."""
    results = []
    runs = runs_of(args)
    for fills in args.fills:
        with start_simulator_process(fills=fills, api_key=API_KEY, seed=SEED) as sim:
            for repeat in range(args.repeat):
                turn = (args.turn + repeat) % len(runs)
                names = list(runs)[turn:] + list(runs)[:turn]
                for name in names:
                    tree, environment = runs[name]
                    result = {**load(tree, sim.url, environment), "run": name}
                    result.update(fills=fills, repeat=repeat)
                    print(
                        f"  {fills:>9,} {name}: {result['peak_rss_mb']:.0f} MB, "
                        f"{result['wall_s']:.1f} s wall, {result['cpu_s']:.1f} s CPU, "
                        f"{result['rows']:,} rows",
                        flush=True,
                    )
                    results.append(result)
    return results


FIGURES = ("peak_rss_mb", "wall_s", "cpu_s")


def medians(results: list[dict[str, Any]]) -> list[list[Any]]:
    """Each run's median and range of each figure per fill count, and its ratio to before's."""
    rows = []
    for fills in sorted({result["fills"] for result in results}):
        at_count = [result for result in results if result["fills"] == fills]
        median = {
            (name, figure): statistics.median(r[figure] for r in at_count if r["run"] == name)
            for name in dict.fromkeys(r["run"] for r in at_count)
            for figure in FIGURES
        }
        for name in dict.fromkeys(r["run"] for r in at_count):
            row: list[Any] = [name, f"{fills:,}"]
            for figure in FIGURES:
                values = [r[figure] for r in at_count if r["run"] == name]
                ratio = median[name, figure] / median["before", figure]
                row += [f"{median[name, figure]:.1f} ({min(values):.1f}-{max(values):.1f})"]
                row += [f"{ratio:.2f}x"]
            rows.append(row)
    return rows


def report(results: list[dict[str, Any]], argv: list[str]) -> str:
    """The markdown report of a run."""
    each = [
        [r["run"], f"{r['fills']:,}", r["repeat"], f"{r['rows']:,}"]
        + [f"{r[figure]:.1f}" for figure in FIGURES]
        for r in results
    ]
    header = ["run", "fills", "repeat", "fills landed", "peak RSS MB", "wall s", "CPU s"]
    median_header = ["run", "fills", "peak RSS MB, median (range)", "vs before"]
    median_header += ["wall s", "vs before", "CPU s", "vs before"]
    return "\n".join(
        [
            "# A first load through `hypertracker load`, before and after",
            "",
            f"Machine: {machine()}.",
            f"Command: `.venv/bin/python -m benchmarks.bench_memory_command {shlex.join(argv)}`.",
            "",
            markdown_table(median_header, medians(results)),
            "",
            "Each run, in the order run:",
            "",
            markdown_table(header, each),
            "",
            "Peak RSS and CPU: the command's process (kernel accounting, wait4), imports included; "
            "wall: from its start to its end. The target: a first load at most "
            f"{TARGET_FIRST_LOAD_PEAK_MB} MB.",
            "",
        ]
    )


def recorded_runs(paths: list[Path]) -> list[dict[str, Any]]:
    """The runs recorded in these results/<name>.json files."""
    return [run for path in paths for run in json.loads(path.read_text())]


def main() -> None:
    """Runs the benchmark, prints the report and writes it under benchmarks/results/."""
    args = parse_args()
    results = recorded_runs(args.report_from) if args.report_from else run_all(args)
    markdown = report(results, sys.argv[1:])
    print(markdown)
    print(f"written to {write_result(args.name, markdown, results)}")


if __name__ == "__main__":
    main()
