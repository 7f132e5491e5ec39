"""Fills end to end: the raw floor, dlt's rest_api source and ours, on the same simulated data.

    .venv/bin/python -m benchmarks.bench_fills --fills 100000 200000 1000000

For each fill count, a simulator runs in a process of its own (its CPU is not the client's) and
each pipeline runs in a fresh process (so that peak memory is its own), floor and ours alternately,
`--repeat` times; each figure is the best of the repeats. rest_api runs once at each count of
`--rest-api-fills` (at 200,000 fills it takes about a minute; at 1,000,000 about six).
Prints a markdown report and writes it to benchmarks/results/fills.md (see `--name`).
"""

import argparse
import json
import math
import tempfile
from typing import Any

import pendulum

from benchmarks.fills_pipelines import PAGE_SIZE
from benchmarks.measure import machine, markdown_table, run_child, write_result
from hypertracker_simulator import SimulatorProcess, start_simulator_process
from hypertracker_source.fills import iso, split_windows
from hypertracker_source.settings import HISTORY_START

API_KEY = "bench-key"
SEED = 7
TARGET_TIME_RATIO = 1.15
TARGET_REST_API_SPEEDUP = 10.0
TARGET_MEMORY_RATIO = 1.5
TARGET_MEMORY_GROWTH = 0.20


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_fills")
    parser.add_argument(
        "--fills", type=int, nargs="+", default=[100_000, 200_000, 1_000_000], help="fill counts"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of floor and ours per count")
    parser.add_argument("--name", default="fills", help="the results file: results/<name>.md")
    parser.add_argument(
        "--rest-api-fills",
        type=int,
        nargs="*",
        default=[200_000],
        help="the fill counts at which rest_api runs, once (none: not at all)",
    )
    return parser.parse_args()


def windows_now() -> list[tuple[str, str | None]]:
    """The fills queries of a whole-history load now, as the source splits them."""
    windows = split_windows(pendulum.parse(HISTORY_START), pendulum.now("UTC"))
    return [(iso(window.start), window.end and iso(window.end)) for window in windows]


def measure(sim: SimulatorProcess, pipeline: str, fills: int) -> dict[str, Any]:
    """Runs one pipeline in a fresh process against the simulator; returns its figures."""
    sim.reset_requests()
    with tempfile.TemporaryDirectory(prefix=f"bench_{pipeline}_") as workdir:
        args = [pipeline, sim.url, API_KEY, workdir, json.dumps(windows_now())]
        report = run_child("benchmarks.fills_pipelines", args)
    report.update(pipeline=pipeline, fills=fills, requests=sum(sim.request_counts().values()))
    print(
        f"  {pipeline:8} {fills:>9,} fills: {report['wall_s']:6.2f} s wall, "
        f"{report['cpu_s']:6.2f} s CPU, {report['peak_rss_mb']:6.0f} MB, "
        f"{report['requests']} requests, {report['rows']:,} rows",
        flush=True,
    )
    return report


BEST_FIGURES = ("wall_s", "cpu_s", "process_cpu_s", "peak_rss_mb", "peak_rss_before_load_mb")


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The best figure of each kind over repeated runs of one pipeline; steps of the fastest."""
    result = dict(min(runs, key=lambda run: run["wall_s"]))
    for figure in BEST_FIGURES:
        if figure in result:
            result[figure] = min(run[figure] for run in runs)
    result["runs"] = len(runs)
    return result


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Measures every pipeline at every fill count."""
    results = []
    for fills in args.fills:
        print(f"{fills:,} fills: starting the simulator", flush=True)
        with start_simulator_process(fills=fills, api_key=API_KEY, seed=SEED) as sim:
            runs: dict[str, list[dict[str, Any]]] = {"floor": [], "ours": []}
            for repeat in range(args.repeat):
                order = ("floor", "ours") if repeat % 2 == 0 else ("ours", "floor")
                for pipeline in order:
                    runs[pipeline].append(measure(sim, pipeline, fills))
            results += [best(runs["floor"]), best(runs["ours"])]
            if fills in args.rest_api_fills:
                results.append(best([measure(sim, "rest_api", fills)]))
    return results


def figures(results: list[dict[str, Any]], pipeline: str, fills: int) -> dict[str, Any] | None:
    """The figures of one pipeline at one fill count, if it ran."""
    return next((r for r in results if r["pipeline"] == pipeline and r["fills"] == fills), None)


def ratio(value: float, baseline: float) -> float:
    """value / baseline."""
    return value / baseline if baseline else math.inf


def table(results: list[dict[str, Any]]) -> str:
    """The results as a markdown table, with ratios to the floor at the same count."""
    rows = []
    for result in sorted(results, key=lambda r: (r["fills"], r["pipeline"] != "floor")):
        floor = figures(results, "floor", result["fills"])
        before_load = result.get("peak_rss_before_load_mb")
        rows.append(
            [
                result["pipeline"],
                f"{result['fills']:,}",
                f"{result['rows']:,}",
                result["wall_s"],
                result["cpu_s"],
                f"{result['peak_rss_mb']:.0f}",
                "" if before_load is None else f"{before_load:.0f}",
                result["requests"],
                *(
                    f"{ratio(result[key], floor[key]):.2f}x" if floor else ""
                    for key in ("wall_s", "cpu_s", "peak_rss_mb")
                ),
            ]
        )
    header = ["pipeline", "fills", "rows landed", "wall s", "CPU s", "peak RSS MB"]
    header += ["RSS before load MB", "requests"]
    return markdown_table([*header, "wall vs floor", "CPU vs floor", "RSS vs floor"], rows)


def steps_table(results: list[dict[str, Any]]) -> str:
    """The dlt pipelines' time by step, against the floor's whole run at the same count."""
    rows = []
    for result in sorted(results, key=lambda r: (r["fills"], r["pipeline"])):
        floor = figures(results, "floor", result["fills"])
        if "extract" not in result or not floor:
            continue
        cells = [result["pipeline"], f"{result['fills']:,}"]
        for step in ("extract", "normalize", "load"):
            cells += [result[step]["wall_s"], result[step]["cpu_s"]]
        rows.append([*cells, floor["wall_s"], floor["cpu_s"]])
    header = ["pipeline", "fills"]
    for step in ("extract", "normalize", "load"):
        header += [f"{step} wall s", f"{step} CPU s"]
    return markdown_table([*header, "floor wall s", "floor CPU s"], rows)


def verdicts(results: list[dict[str, Any]]) -> list[str]:
    """Each target of the issue, measured: pass or fail, with the figure."""
    lines = []
    counts = sorted({r["fills"] for r in results})
    for fills in counts:
        ours, floor = figures(results, "ours", fills), figures(results, "floor", fills)
        if ours and floor and fills >= 200_000:
            for key, name in (("wall_s", "wall"), ("cpu_s", "CPU")):
                value = ratio(ours[key], floor[key])
                lines.append(
                    verdict(value <= TARGET_TIME_RATIO, f"{name} at {fills:,}", value, "x floor")
                )
    for fills in counts:
        ours, rest = figures(results, "ours", fills), figures(results, "rest_api", fills)
        if ours and rest:
            speedup = ratio(rest["wall_s"], ours["wall_s"])
            text = f"faster than rest_api at {fills:,} (wall)"
            lines.append(verdict(speedup >= TARGET_REST_API_SPEEDUP, text, speedup, "x"))
    largest, smallest = counts[-1], counts[0]
    ours_large, floor_large = figures(results, "ours", largest), figures(results, "floor", largest)
    if ours_large and floor_large:
        value = ratio(ours_large["peak_rss_mb"], floor_large["peak_rss_mb"])
        text = f"peak RSS at {largest:,}"
        lines.append(verdict(value <= TARGET_MEMORY_RATIO, text, value, "x floor"))
    ours_small = figures(results, "ours", smallest)
    if ours_large and ours_small and largest > smallest:
        growth = ratio(ours_large["peak_rss_mb"], ours_small["peak_rss_mb"]) - 1
        text = f"peak RSS growth {smallest:,} -> {largest:,}"
        lines.append(verdict(growth < TARGET_MEMORY_GROWTH, text, 100 * growth, "%"))
        before = "peak_rss_before_load_mb"
        growth = ratio(ours_large[before], ours_small[before]) - 1
        text = f"(not a target) peak RSS before the load step, growth {smallest:,} -> {largest:,}"
        lines.append(verdict(growth < TARGET_MEMORY_GROWTH, text, 100 * growth, "%"))
    for fills in counts:
        ours = figures(results, "ours", fills)
        if ours:
            pages = math.ceil(fills / PAGE_SIZE)
            text = f"requests at {fills:,} ({pages} full pages + {len(windows_now())} windows)"
            limit = 1.01 * pages + len(windows_now())
            lines.append(verdict(ours["requests"] <= limit, text, ours["requests"], ""))
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
            f"{' '.join(map(str, args.fills))} --repeat {args.repeat} "
            f"--rest-api-fills {' '.join(map(str, args.rest_api_fills))} --name {args.name}`.",
            "",
            table(results),
            "",
            "Where the dlt pipelines spend it, step by step:",
            "",
            steps_table(results),
            "",
            "Wall and CPU: the work, from pipeline start to the last row committed, after the "
            "imports; CPU is user + system of every thread of the pipeline's process. Peak RSS: "
            "the whole process (kernel accounting, wait4); before load: the same, when the load "
            "step starts (what the pipeline holds before DuckDB merges). Requests: as the "
            "simulator counted "
            f"them. floor and ours: best of {args.repeat} runs each, alternating; rest_api: one "
            "run.",
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
