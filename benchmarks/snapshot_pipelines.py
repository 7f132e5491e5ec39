"""One run of the snapshot resources (or of everything, paced), in a process of its own.

`python -m benchmarks.snapshot_pipelines <snapshots|everything> <api url> <api key> <workdir>
<source settings as JSON>` runs the source into a DuckDB file in workdir, step by step, and prints
one JSON line: the seconds of the run and of its extract step, the rows and the requests spent.
"""

import json
import sys
import time
from pathlib import Path

import dlt

from benchmarks.measure import measured, report_to_parent
from hypertracker_source import RunStats, hypertracker
from hypertracker_source.config.defaults import SEGMENT_NAMES
from hypertracker_source.snapshots.risk import risk_resource_name


def main(argv: list[str]) -> None:
    """Runs the source's snapshot resources, or all of it, and reports to the parent."""
    resources, url, api_key, workdir, settings = argv
    stats = RunStats()
    source = hypertracker(api_key=api_key, base_url=url, run_stats=stats, **json.loads(settings))
    if resources == "snapshots":
        source = source.with_resources(
            "liquidation_heatmap", *map(risk_resource_name, SEGMENT_NAMES)
        )
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{resources}",
        destination=dlt.destinations.duckdb(str(Path(workdir) / "snapshots.duckdb")),
        dataset_name="hypertracker",
        pipelines_dir=str(Path(workdir) / "pipelines"),
    )
    with measured() as report:
        started = time.perf_counter()
        pipeline.extract(source)
        report["extract_s"] = time.perf_counter() - started
        rows = pipeline.normalize().row_counts
        pipeline.load()
    report_to_parent(
        {
            **report,
            "rows": {table: count for table, count in rows.items() if not table.startswith("_dlt")},
            "requests": dict(stats.requests),
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:])
