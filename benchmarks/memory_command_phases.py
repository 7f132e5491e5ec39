"""`hypertracker load` itself, resident memory sampled through each step of each chunk.

    cd <fresh directory with this project's .dlt> && SOURCES__HYPERTRACKER__BASE_URL=<api url> \\
        SOURCES__HYPERTRACKER__API_KEY=<key> DLT_DATA_DIR=$PWD/dlt \\
        PYTHONPATH=<tree>:<this repository> python -m benchmarks.memory_command_phases

runs the command (`load`, default settings and whatever the environment sets) in this process,
as its console script would, and prints one JSON line: the process's peak, CPU and wall time, and
for each step (extract, normalize, load) of each chunk the resident memory at its start and its
peak (benchmarks/memory_phases.py's sampler, wrapped around every dlt pipeline's steps).
"""

import json
import resource
import time
from collections.abc import Callable
from typing import Any

from benchmarks.memory_phases import STEPS, PeakSampler


def sample_every_pipeline(sampler: PeakSampler) -> None:
    """Wraps dlt.Pipeline's extract, normalize and load so that each records its peak."""
    import dlt

    for step in STEPS:
        method: Callable[..., Any] = getattr(dlt.Pipeline, step)

        def wrapped(
            self: Any,
            *args: Any,
            _method: Callable[..., Any] = method,
            _step: str = step,
            **kw: Any,
        ) -> Any:
            with sampler.in_step(_step):
                return _method(self, *args, **kw)

        setattr(dlt.Pipeline, step, wrapped)


def main() -> None:
    """Runs `hypertracker load` with its steps sampled, and prints what they peaked at."""
    start = time.perf_counter()
    from hypertracker_source.commands import main as command

    sampler = PeakSampler()
    sampler.thread.start()
    sample_every_pipeline(sampler)
    code = command(["load"])
    sampler.running = False
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "exit_code": code,
        "peak_rss_mb": usage.ru_maxrss / 1024,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "wall_s": time.perf_counter() - start,
        "steps": sampler.peaks,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()
