"""Fills end to end: two raw floors, dlt's rest_api source and ours, on the same simulated data.

    .venv/bin/python -m benchmarks.bench_fills --fills 200000 1000000 \
        --first-load-fills 300000 1500000 3000000

For each fill count, a simulator runs in a process of its own (its CPU is not the client's) and
each pipeline runs in a fresh process (so that peak memory is its own): the floor (no key), the
keyed floor (a primary key and INSERT OR IGNORE, ours' guarantee) and ours, in turn, `--repeat`
times; each figure is the best of the repeats. `--first-load-fills` runs ours alone on longer
histories, a whole first load chunk after chunk, for its peak memory. rest_api runs once at each
count of `--rest-api-fills` (at 200,000 fills it takes about a minute; at 1,000,000 about six).
Prints a markdown report and writes it to benchmarks/results/fills.md (see `--name`).
"""

import argparse
import json
import math
import tempfile
from typing import Any

import pendulum

from benchmarks.measure import machine, markdown_table, run_child, write_result
from hypertracker_simulator import SimulatorProcess, start_simulator_process
from hypertracker_source.config.defaults import HISTORY_START
from hypertracker_source.fills.windows import iso, split_windows

API_KEY = "bench-key"
SEED = 7
FLOORS = ("floor", "keyed_floor")
BEFORE = "ours, before"
GLIBC_DEFAULT_MALLOC = {"GLIBC_TUNABLES": ""}
"""glibc's own malloc settings, empty: the source leaves malloc as glibc sets it by default."""
BEFORE_ENVIRONMENT = {
    "ARROW_DEFAULT_MEMORY_POOL": "mimalloc",
    "DESTINATION__DUCKDB__CREDENTIALS__GLOBAL_CONFIG": '{"threads": 1}',
    **GLIBC_DEFAULT_MALLOC,
}
"""Ours with the memory settings it had before issue 22: pyarrow's default pool, DuckDB without a
memory_limit, glibc's malloc as it comes; `--before` runs it beside ours, within one run."""
TARGET_REST_API_SPEEDUP = 10.0
TARGET_FIRST_LOAD_MEMORY_RATIO = 1.25
"""A first load of 5x the history (1.5M against 300k fills) peaks at most this much higher."""
TARGET_PEAK_VS_KEYED_FLOOR = 1.5
"""Ours' peak RSS at most this much the keyed floor's, at the same count in the same run."""
TARGET_FIRST_LOAD_PEAK_MB = 450
"""A first load of any history, at default settings, peaks below this for the whole process."""
TARGET_REQUESTS_PER_1000 = 1.02
REQUEST_TARGET_FROM = 1_000_000
"""The request target is for long histories: below, the 6 windows' last pages weigh more."""


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fills")
    parser.add_argument(
        "--fills", type=int, nargs="*", default=[200_000, 1_000_000], help="fill counts"
    )
    parser.add_argument(
        "--first-load-fills",
        type=int,
        nargs="*",
        default=[300_000, 1_500_000, 3_000_000],
        help="fill counts of the first loads whose peak memory ours is measured at (none: skip)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of floor and ours per count")
    parser.add_argument(
        "--first-load-repeat",
        type=int,
        help="runs of each first load (default: --repeat); a 3M first load takes minutes",
    )
    parser.add_argument(
        "--before",
        action="store_true",
        help=f"also run {BEFORE!r}: ours with the memory settings before issue 22",
    )
    parser.add_argument("--name", default="fills", help="the results file: results/<name>.md")
    parser.add_argument(
        "--rest-api-fills",
        type=int,
        nargs="*",
        default=[],
        help="the fill counts at which rest_api runs, once (none: not at all)",
    )
    return parser.parse_args()


def windows_now() -> list[tuple[str, str | None]]:
    """The fills queries of a whole-history load now, as the source splits them."""
    windows = split_windows(pendulum.parse(HISTORY_START), pendulum.now("UTC"))
    return [(iso(window.start), iso(window.end)) for window in windows]


def measure(sim: SimulatorProcess, pipeline: str, fills: int) -> dict[str, Any]:
    """Runs one pipeline in a fresh process against the simulator; returns its figures."""
    sim.reset_requests()
    child, env = ("ours", BEFORE_ENVIRONMENT) if pipeline.startswith(BEFORE) else (pipeline, {})
    with tempfile.TemporaryDirectory(prefix="bench_fills_") as workdir:
        args = [child, sim.url, API_KEY, workdir, json.dumps(windows_now())]
        report = run_child("benchmarks.fills_pipelines", args, env)
    report.update(pipeline=pipeline, fills=fills, requests=sum(sim.request_counts().values()))
    print(
        f"  {pipeline:8} {fills:>9,} fills: {report['wall_s']:6.2f} s wall, "
        f"{report['cpu_s']:6.2f} s CPU, {report['peak_rss_mb']:6.0f} MB, "
        f"{report['requests']} requests, {report['rows']:,} rows",
        flush=True,
    )
    return report


BEST_FIGURES = ("wall_s", "cpu_s", "process_cpu_s", "peak_rss_mb")


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The best figure of each kind over repeated runs of one pipeline; steps of the fastest."""
    result = dict(min(runs, key=lambda run: run["wall_s"]))
    for figure in BEST_FIGURES:
        if figure in result:
            result[figure] = min(run[figure] for run in runs)
    result["runs"] = len(runs)
    return result


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measures every pipeline at every fill count, then ours' first loads."""
    results = []
    for fills in args.fills:
        print(f"{fills:,} fills: starting the simulator", flush=True)
        with start_simulator_process(fills=fills, api_key=API_KEY, seed=SEED) as sim:
            names = (*FLOORS, "ours", *([BEFORE] if args.before else []))
            runs: dict[str, list[dict[str, Any]]] = {name: [] for name in names}
            for repeat in range(args.repeat):
                order = list(runs)[repeat % len(runs) :] + list(runs)[: repeat % len(runs)]
                for pipeline in order:
                    runs[pipeline].append(measure(sim, pipeline, fills))
            results += [best(pipeline_runs) for pipeline_runs in runs.values()]
            if fills in args.rest_api_fills:
                results.append(best([measure(sim, "rest_api", fills)]))
    for fills in args.first_load_fills:
        print(f"{fills:,} fills, first load: starting the simulator", flush=True)
        with start_simulator_process(fills=fills, api_key=API_KEY, seed=SEED) as sim:
            repeat = args.first_load_repeat or args.repeat
            first_loads = [measure(sim, "ours", fills) for _ in range(repeat)]
            results.append({**best(first_loads), "pipeline": "ours, first load"})
            if args.before:
                before = [measure(sim, BEFORE, fills) for _ in range(repeat)]
                results.append({**best(before), "pipeline": f"{BEFORE}, first load"})
    return results


def figures(results: list[dict[str, Any]], pipeline: str, fills: int) -> dict[str, Any] | None:
    """The figures of one pipeline at one fill count, if it ran."""
    return next((r for r in results if r["pipeline"] == pipeline and r["fills"] == fills), None)


def ratio(value: float, baseline: float) -> float:
    """value / baseline."""
    return value / baseline if baseline else math.inf


def table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table, with ratios to both floors at the same count."""
    rows = []
    for result in sorted(results, key=lambda r: (r["fills"], r["pipeline"])):
        floors = [figures(results, name, result["fills"]) for name in FLOORS]
        rows.append(
            [
                result["pipeline"],
                f"{result['fills']:,}",
                f"{result['rows']:,}",
                result.get("chunks", ""),
                result["wall_s"],
                result["cpu_s"],
                f"{result['peak_rss_mb']:.0f}",
                result["requests"],
                *(
                    f"{ratio(result[key], floor[key]):.2f}x" if floor else ""
                    for floor in floors
                    for key in ("wall_s", "cpu_s", "peak_rss_mb")
                ),
            ]
        )
    header = ["pipeline", "fills", "rows landed", "chunks", "wall s", "CPU s", "peak RSS MB"]
    header += ["requests", "wall vs floor", "CPU vs floor", "RSS vs floor"]
    header += ["wall vs keyed", "CPU vs keyed", "RSS vs keyed"]
    return markdown_table(header, rows)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """Each target, measured: pass or fail, with the figure."""
    lines = []
    for fills in sorted({r["fills"] for r in results}):
        ours, rest = figures(results, "ours", fills), figures(results, "rest_api", fills)
        if ours and rest:
            speedup = ratio(rest["wall_s"], ours["wall_s"])
            text = f"faster than rest_api at {fills:,} (wall)"
            lines.append(verdict(speedup >= TARGET_REST_API_SPEEDUP, text, speedup, "x"))
    for fills in sorted({r["fills"] for r in results}):
        ours, keyed = figures(results, "ours", fills), figures(results, "keyed_floor", fills)
        if ours and keyed:
            value = ratio(ours["peak_rss_mb"], keyed["peak_rss_mb"])
            text = f"peak RSS against the keyed floor at {fills:,}"
            lines.append(verdict(value <= TARGET_PEAK_VS_KEYED_FLOOR, text, value, "x"))
    first_loads = sorted(
        (r for r in results if r["pipeline"] == "ours, first load"), key=lambda r: r["fills"]
    )
    for first_load in first_loads:
        value = first_load["peak_rss_mb"]
        text = f"first-load peak RSS at {first_load['fills']:,}, MB"
        lines.append(verdict(value <= TARGET_FIRST_LOAD_PEAK_MB, text, value, ""))
    smaller = first_loads[0] if first_loads else None
    for larger in first_loads[1:]:
        value = ratio(larger["peak_rss_mb"], smaller["peak_rss_mb"])
        text = f"first-load peak RSS {larger['fills']:,} against {smaller['fills']:,}"
        passed = value <= TARGET_FIRST_LOAD_MEMORY_RATIO
        lines.append(verdict(passed, text, value, "x"))
    for result in results:
        if result["pipeline"].startswith("ours") and result["fills"] >= REQUEST_TARGET_FROM:
            per_1000 = 1000 * result["requests"] / result["fills"]
            text = f"requests per 1,000 fills, {result['pipeline']} at {result['fills']:,}"
            lines.append(verdict(per_1000 <= TARGET_REQUESTS_PER_1000, text, per_1000, ""))
    return lines


def verdict(passed: bool, what: str, value: float, unit: str) -> str:
    """One target's line, to three decimals so that a figure on the line is not shown as on it."""
    shown = f"{value:.3f}" if isinstance(value, float) else str(value)
    return f"- {'PASS' if passed else 'FAIL'}: {what}: {shown}{unit}"


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The markdown report of a run."""
    return "\n".join(
        [
            "# Fills end to end into DuckDB",
            "",
            f"Machine: {machine()}.",
            f"Command: `.venv/bin/python -m benchmarks.bench_fills --fills "
            f"{' '.join(map(str, args.fills))} --first-load-fills "
            f"{' '.join(map(str, args.first_load_fills))} --repeat {args.repeat} "
            f"--first-load-repeat {args.first_load_repeat or args.repeat} "
            f"{'--before ' if args.before else ''}"
            f"--rest-api-fills {' '.join(map(str, args.rest_api_fills))} --name {args.name}`.",
            "",
            table(results),
            "",
            "Wall and CPU: the work, from pipeline start to the last row committed, after the "
            "imports; CPU is user + system of every thread of the pipeline's process. Peak RSS: "
            "the whole process (kernel accounting, wait4). Requests: as the simulator counted "
            f"them. Every pipeline but rest_api: best of {args.repeat} runs each, in turn; "
            "rest_api: one run. Ours runs chunk after chunk until caught up, as `hypertracker "
            "load` does, in one process; chunks: how many load packages that took.",
            "",
            "Targets:",
            "",
            *verdicts(results),
            "",
        ]
    )


def main() -> None:
    """Runs the benchmark, prints the report and writes it under benchmarks/results/."""
    args = parse_args()
    results = run_all(args)
    markdown = report(results, args)
    print(markdown)
    print(f"written to {write_result(args.name, markdown, results)}")


if __name__ == "__main__":
    main()
