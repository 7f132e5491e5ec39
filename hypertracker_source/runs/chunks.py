"""A long fills history in chunks: one run each, back to back, until nothing is left to read."""

from collections.abc import Callable
from pathlib import Path

import dlt
import pendulum
from dlt.common.pipeline import LoadInfo
from dlt.extract.source import DltSource
from pendulum import DateTime

from hypertracker_source.config.defaults import FILLS_RESOURCE
from hypertracker_source.exceptions import HyperTrackerError
from hypertracker_source.fills.state import pending_reads, pending_windows, pipeline_fills_state
from hypertracker_source.runs.recovery import finish_left_behind, repair_cut_storage
from hypertracker_source.runs.run_lock import pipeline_lock

ChunkDone = Callable[[int, LoadInfo], None]
"""Called after each chunk with its number (from 1) and what dlt loaded."""


def pending_fill_reads(pipeline: dlt.Pipeline) -> int:
    """How many fills reads (windows, walks) the pipeline's state holds unfinished."""
    return pending_reads(pipeline_fills_state(pipeline))


def pending_span(pipeline: dlt.Pipeline) -> tuple[DateTime, DateTime] | None:
    """The time span the pending fills reads cover, or None when nothing is left."""
    state = pipeline_fills_state(pipeline)
    if not pending_reads(state):
        return None
    windows = pending_windows(state)
    if not windows:
        newest = pendulum.now("UTC")
        return newest, newest
    return min(start for start, _ in windows), max(end for _, end in windows)


def load_until_caught_up(
    pipeline: dlt.Pipeline,
    make_source: Callable[[], DltSource],
    on_chunk: ChunkDone | None = None,
    refresh: bool = False,
    lock_wait: float = 0.0,
    on_left_behind: Callable[[], None] | None = None,
) -> list[LoadInfo]:
    """Runs the source, then its fills alone, until the fills have no read left: "everything now".

    Each run reads at most `max_fills_per_run` fills and lands them as its own load package, with
    the fills state committed in it: a kill costs at most one chunk again. Heatmaps, risk and
    segments load with the first chunk only; `refresh` drops the tables and state before it.
    The pipeline's lock is held throughout (waiting up to `lock_wait` seconds for another run);
    what a killed run left is repaired and finished first, after `on_left_behind` is told.
    """
    with pipeline_lock(pipeline, lock_wait):
        repair_cut_storage(Path(pipeline.working_dir))
        finish_left_behind(pipeline, on_left_behind)
        return load_chunks(pipeline, make_source, on_chunk, refresh)


def load_chunks(
    pipeline: dlt.Pipeline,
    make_source: Callable[[], DltSource],
    on_chunk: ChunkDone | None,
    refresh: bool,
) -> list[LoadInfo]:
    """The chunks of `load_until_caught_up`, once nothing is left pending."""
    # Hand-written: dlt runs one load package per `run`; the loop is what "until caught up" means.
    source = make_source()
    # dlt annotates `refresh` without Optional, though None is its default
    loads = [pipeline.run(source, refresh="drop_sources" if refresh else None)]  # type: ignore[arg-type]
    if on_chunk:
        on_chunk(1, loads[-1])
    follows_fills = FILLS_RESOURCE in source.selected_resources
    while follows_fills and pending_fill_reads(pipeline):
        before = pipeline_fills_state(pipeline)
        loads.append(pipeline.run(make_source().with_resources(FILLS_RESOURCE)))
        if on_chunk:
            on_chunk(len(loads), loads[-1])
        if pipeline_fills_state(pipeline) == before:
            raise HyperTrackerError(
                "A fills chunk moved no read forward: stopping rather than looping; what loaded "
                "stays, and a rerun resumes from the stored cursors"
            )
    return loads
