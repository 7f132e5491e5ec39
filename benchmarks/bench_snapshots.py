"""Snapshots in parallel against one at a time, and pacing against the API's rate limit.

    .venv/bin/python -m benchmarks.bench_snapshots

Part 1: with 50 ms of latency on every API answer, the heatmaps of 20 coins and the risk of the
16 segments, loaded by the source one at a time (EXTRACT__WORKERS=1: dlt's pool of one worker
runs each snapshot after the last), with dlt's default 5 extract workers, and as this project
configures it (.dlt/config.toml: 16 workers), and so again against an API without latency (the
run's own work, which bounds what concurrency can gain); best of `--repeat`. Part 2: everything
(fills in pages of 100, so that the run makes about `--rate` requests) with requests_per_minute=R
against a simulator that allows R a minute.
Each run is a process of its own; the simulator serves from this one and counts every answer.
Prints a markdown report and writes it to benchmarks/results/snapshots.md.
"""

import argparse
import json
import tempfile
from typing import Any

from benchmarks.measure import machine, markdown_table, run_child, write_result
from hypertracker_simulator import Simulator
from hypertracker_simulator.catalog import MARKETS

API_KEY = "bench-key"
SEED = 7
LATENCY = 0.05
TARGET_SPEEDUP = 4.0
TARGET_RATE_SHARE = 0.9
SERIAL = "one at a time (1 worker)"
DLT_DEFAULT = "dlt's default (5 workers)"
CONFIGURED = "as configured (16 workers)"
NO_LATENCY = "as configured, API without latency"
WORKER_SETTINGS = {
    SERIAL: {"EXTRACT__WORKERS": "1"},
    DLT_DEFAULT: {"EXTRACT__WORKERS": "5"},
    CONFIGURED: {},
    NO_LATENCY: {},
}
"""How each way runs: the environment its process gets (CONFIGURED: .dlt/config.toml's)."""
LATENCY_OF = {NO_LATENCY: 0.0}
"""A way whose API answers without the 50 ms: the run's own work, which no concurrency hides, and
so the most that any concurrency could gain over one at a time."""


def parse_args() -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_snapshots")
    parser.add_argument("--coins", type=int, default=20, help="heatmap coins (20)")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each way (2)")
    parser.add_argument("--rate", type=int, default=300, help="R, requests a minute (300)")
    return parser.parse_args()


def run(sim: Simulator, resources: str, settings: dict, env: dict | None = None) -> dict[str, Any]:
    """Runs the source in a fresh process; returns its figures and the simulator's statuses."""
    sim.reset_requests()
    with tempfile.TemporaryDirectory(prefix="bench_snapshots_") as workdir:
        args = [resources, sim.url, API_KEY, workdir, json.dumps(settings)]
        report = run_child("benchmarks.snapshot_pipelines", args, env)
    statuses = [record.status for record in sim.requests if record.host == "api"]
    report["api_requests"] = len(statuses)
    report["answers_429"] = statuses.count(429)
    return report


def parallel_part(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The snapshot resources both ways, best of the repeats for each figure."""
    coins = [market.coin for market in MARKETS[: args.coins]]
    results: dict[str, list[dict[str, Any]]] = {way: [] for way in WORKER_SETTINGS}
    with Simulator(seed=SEED, fills=100, api_key=API_KEY) as sim:
        for repeat in range(args.repeat):
            ways = list(WORKER_SETTINGS)[:: 1 if repeat % 2 == 0 else -1]
            for way in ways:
                sim.faults.latency = LATENCY_OF.get(way, LATENCY)
                report = run(sim, "snapshots", {"heatmap_coins": coins}, WORKER_SETTINGS[way])
                print(f"  {way}: {report['extract_s']:.2f} s extract, {report['wall_s']:.2f} s")
                results[way].append(report)
    return {
        way: {
            **runs[0],
            **{key: min(r[key] for r in runs) for key in ("extract_s", "wall_s", "cpu_s")},
        }
        for way, runs in results.items()
    }


def pacing_part(args: argparse.Namespace) -> dict[str, Any]:
    """Everything, paced at R against a simulator that allows R requests a minute."""
    fills = (args.rate - 50) * 100
    with Simulator(seed=SEED, fills=fills, api_key=API_KEY, rate_limit_per_minute=args.rate) as sim:
        sim.faults.latency = LATENCY
        settings = {
            "heatmap_coins": [market.coin for market in MARKETS[: args.coins]],
            "page_size": 100,
            "requests_per_minute": args.rate,
        }
        report = run(sim, "everything", settings)
    report["fills"] = fills
    report["rate_per_minute"] = 60 * report["api_requests"] / report["extract_s"]
    return report


def report_markdown(
    ways: dict[str, dict[str, Any]], pacing: dict[str, Any], args: argparse.Namespace
) -> str:
    """The markdown report of a run."""
    serial = ways[SERIAL]
    rows = [
        [
            way,
            figures["extract_s"],
            figures["wall_s"],
            f"{serial['extract_s'] / figures['extract_s']:.2f}x",
            f"{serial['wall_s'] / figures['wall_s']:.2f}x",
            sum(figures["requests"].values()),
            figures["rows"].get("liquidation_heatmap", 0)
            + figures["rows"].get("liquidation_risk", 0),
        ]
        for way, figures in ways.items()
    ]
    parallel = ways[CONFIGURED]
    fetch_speedup = serial["extract_s"] / parallel["extract_s"]
    run_speedup = serial["wall_s"] / parallel["wall_s"]
    run_bound = serial["wall_s"] / ways[NO_LATENCY]["wall_s"]
    share = pacing["rate_per_minute"] / args.rate
    pacing_row = [
        args.rate,
        pacing["api_requests"],
        pacing["extract_s"],
        f"{pacing['rate_per_minute']:.0f}",
        f"{100 * share:.0f}%",
        pacing["answers_429"],
    ]
    return "\n".join(
        [
            "# Snapshots in parallel, and pacing",
            "",
            f"Machine: {machine()}.",
            f"Command: `.venv/bin/python -m benchmarks.bench_snapshots --coins {args.coins} "
            f"--repeat {args.repeat} --rate {args.rate}`.",
            "",
            f"## {args.coins} heatmap coins and 16 segments, {LATENCY * 1000:.0f} ms latency",
            "",
            markdown_table(
                [
                    "way",
                    "extract s",
                    "whole run s",
                    "extract speed-up",
                    "run speed-up",
                    "requests",
                    "rows",
                ],
                rows,
            ),
            "",
            "extract: the step that makes every request; whole run: extract, normalize and load "
            f"into DuckDB. Best of {args.repeat} runs each, in alternating order. The last row is "
            "the same run against an API that answers at once: the work no concurrency hides. "
            f"One at a time over it, {run_bound:.2f}x, is the most that a whole run could gain.",
            "",
            f"## Pacing: requests_per_minute={args.rate} against a limit of {args.rate} a minute",
            "",
            markdown_table(
                ["R", "API requests", "extract s", "sustained / min", "share of R", "429s"],
                [pacing_row],
            ),
            "",
            f"Everything: {pacing['fills']:,} fills in pages of 100, {args.coins} heatmaps, 16 "
            "segments; sustained rate = API requests / extract seconds (a lower bound).",
            "",
            "Targets:",
            "",
            verdict(fetch_speedup >= TARGET_SPEEDUP, "as configured, extract", fetch_speedup),
            verdict(run_speedup >= TARGET_SPEEDUP, "as configured, whole run", run_speedup)
            + f" (at most {run_bound:.2f}x: the run without API latency)",
            f"- {'PASS' if share >= TARGET_RATE_SHARE else 'FAIL'}: pacing sustains "
            f"{100 * share:.0f}% of R",
            f"- {'PASS' if pacing['answers_429'] == 0 else 'FAIL'}: pacing gets "
            f"{pacing['answers_429']} 429s",
            "",
        ]
    )


def verdict(passed: bool, what: str, speedup: float) -> str:
    """One speed-up target's line."""
    return f"- {'PASS' if passed else 'FAIL'}: {what} {speedup:.2f}x faster than one at a time"


def main() -> None:
    """Runs both parts, prints the report and writes it under benchmarks/results/."""
    args = parse_args()
    print(f"{args.coins} heatmaps and 16 segments, {LATENCY * 1000:.0f} ms latency", flush=True)
    ways = parallel_part(args)
    print(f"everything paced at {args.rate} a minute", flush=True)
    pacing = pacing_part(args)
    markdown = report_markdown(ways, pacing, args)
    print(markdown)
    print(f"written to {write_result('snapshots', markdown, {'ways': ways, 'pacing': pacing})}")


if __name__ == "__main__":
    main()
