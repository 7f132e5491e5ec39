"""Peak memory of a run against hostile answers, with the source's default limits.

    .venv/bin/python -m benchmarks.bench_hostile

Each case is one run of the source (3,000 fills, BTC's heatmap, one cohort) into DuckDB, in a
process of its own whose peak resident memory the kernel reports (wait4); the simulator serves
from another process, so that none of its memory is counted (a child forked from a large parent
would count the parent's pages). The cases: a 3 MB gzip heatmap file that inflates to 3 GiB, a
fills page with a 300 MB field, and the largest of each that the default limits still let
through. Prints a markdown report and writes it to benchmarks/results/hostile.md.
"""

import sys
import tempfile
from typing import Any

import dlt

from benchmarks.measure import (
    machine,
    markdown_table,
    peak_rss_mb,
    report_to_parent,
    run_child,
    write_result,
)
from hypertracker_simulator import start_simulator_process
from hypertracker_source import hypertracker
from hypertracker_source.config.defaults import MAX_BODY_MB
from hypertracker_source.runs.failures import root_cause

API_KEY = "bench-key"
MEMORY_TARGET_MB = 1024.0
CASES: dict[str, dict[str, Any]] = {
    "gzip heatmap inflating to 3 GiB": {"gzip_bomb_mb": 3 * 1024},
    "gzip heatmap inflating to just under its limit": {
        "gzip_bomb_mb": int(MAX_BODY_MB["heatmap_inflated"] * 0.95)
    },
    "fills pages with a 300 MB field": {"huge_field_mb": 300.0},
    "fills pages with a field just under the page limit": {
        "huge_field_mb": MAX_BODY_MB["fills"] * 0.95 - 1
    },
}
"""Each case: the simulator's hostile faults it runs against."""


def child(url: str) -> None:
    """Runs the source once against the simulator at `url`; reports its outcome and memory."""
    with tempfile.TemporaryDirectory() as folder:
        pipeline = dlt.pipeline(
            pipeline_name="hostile",
            destination=dlt.destinations.duckdb(f"{folder}/hostile.duckdb"),
            pipelines_dir=folder,
        )
        source = hypertracker(api_key=API_KEY, base_url=url, heatmap_coins=["BTC"], segment_ids=[9])
        try:
            pipeline.run(source)
            outcome = "loaded"
        except Exception as error:  # the outcome of a hostile run is what it prints
            outcome = str(root_cause(error)).splitlines()[0]
    report_to_parent({"outcome": outcome, "child_rss_mb": peak_rss_mb()})


def main() -> None:
    """Runs every case and writes the report."""
    rows = []
    for name, faults in CASES.items():
        with start_simulator_process(seed=7, fills=3000, api_key=API_KEY, gzip_files=True) as sim:
            sim.set_faults(**faults)
            report = run_child("benchmarks.bench_hostile", ["child", sim.url])
        rows.append((name, report["peak_rss_mb"], report["outcome"][:160]))
        print(rows[-1], flush=True)
    limits = ", ".join(f"{kind} {megabytes:g} MB" for kind, megabytes in MAX_BODY_MB.items())
    markdown = "\n\n".join(
        [
            "# Peak memory against hostile answers",
            f"Machine: {machine()}. Default limits (max_body_mb): {limits}.",
            markdown_table(("case", "peak RSS (MB)", "what the run says"), rows),
            f"Target: every case under {MEMORY_TARGET_MB:.0f} MB.",
        ]
    )
    print(markdown)
    write_result("hostile", markdown + "\n", rows)


if __name__ == "__main__":
    if sys.argv[1:2] == ["child"]:
        child(sys.argv[2])
    else:
        main()
