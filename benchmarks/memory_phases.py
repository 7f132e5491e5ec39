"""Where ours' memory peaks: resident memory sampled through each step of each chunk.

`python -m benchmarks.memory_phases <api url> <api key> <workdir>` runs ours (fills only, its
defaults and whatever dlt config the environment sets) chunk after chunk until caught up, as
`hypertracker load` does, and prints one JSON line: the resident memory after the imports, and
for each step (extract, normalize, load) of each chunk the resident memory at its start and its
peak, sampled every few milliseconds.
"""

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.fills_pipelines import DATABASE, DATASET, IMPORTS, TABLE, landed_rows
from benchmarks.measure import measured, report_to_parent

SAMPLE_SECONDS = 0.005
STEPS = ("extract", "normalize", "load")


def resident_mb() -> float:
    """This process's resident memory now, in MB (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


class PeakSampler:
    """Samples resident memory on a thread; keeps each step's start and peak."""

    def __init__(self) -> None:
        self.step = "setup"
        self.peaks: list[tuple[str, float, float]] = []
        self.peak = 0.0
        self.running = True
        self.thread = threading.Thread(target=self.sample, daemon=True)

    def sample(self) -> None:
        """Keeps the highest resident memory of the current step."""
        while self.running:
            self.peak = max(self.peak, resident_mb())
            time.sleep(SAMPLE_SECONDS)

    @contextmanager
    def in_step(self, step: str) -> Iterator[None]:
        """Records the peak of the block as one step's."""
        self.peak = start = resident_mb()
        try:
            yield
        finally:
            self.peaks.append((step, start, max(self.peak, resident_mb())))


def sampled(pipeline: Any, sampler: PeakSampler) -> None:
    """Wraps the pipeline's extract, normalize and load so that each records its peak."""
    for step in STEPS:
        method: Callable[..., Any] = getattr(pipeline, step)

        def wrapped(
            *args: Any, _method: Callable[..., Any] = method, _step: str = step, **kwargs: Any
        ) -> Any:
            with sampler.in_step(_step):
                return _method(*args, **kwargs)

        setattr(pipeline, step, wrapped)


def main(argv: list[str]) -> None:
    """Runs ours, its steps sampled, and reports the peaks."""
    import importlib

    url, api_key, workdir = argv
    for module in IMPORTS["ours"]:
        importlib.import_module(module)
    after_imports = resident_mb()
    import dlt

    from hypertracker_source import hypertracker, load_until_caught_up

    sampler = PeakSampler()
    sampler.thread.start()
    pipeline = dlt.pipeline(
        pipeline_name="memory_phases",
        destination=dlt.destinations.duckdb(str(Path(workdir) / DATABASE)),
        dataset_name=DATASET,
        pipelines_dir=str(Path(workdir) / "pipelines"),
    )
    sampled(pipeline, sampler)
    with measured() as report:
        loads = load_until_caught_up(
            pipeline, lambda: hypertracker(api_key=api_key, base_url=url).with_resources(TABLE)
        )
    sampler.running = False
    report_to_parent(
        {
            **report,
            "after_imports_mb": after_imports,
            "chunks": len(loads),
            "steps": sampler.peaks,
            "rows": landed_rows(Path(workdir)),
        }
    )


if __name__ == "__main__":
    main(sys.argv[1:])
