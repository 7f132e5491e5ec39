"""Where a pipeline keeps the fills state, and what it holds unfinished: the one seam to it."""

import copy
from collections.abc import Mapping, MutableMapping
from typing import Any

import dlt
from dlt.common.time import ensure_pendulum_datetime
from pendulum import DateTime

from hypertracker_source.config.defaults import FILLS_RESOURCE
from hypertracker_source.config.settings import SOURCE_NAME
from hypertracker_source.fills.plan import FilterMarks

FILTERS_KEY = "filters"
"""Where the fills state keeps each filter's marks."""
LEGACY_MARKS_KEY = "high_water_marks"
"""Where versions before 0.2 kept one mark per filter: the clock time of its last run."""


def running_fills_state() -> MutableMapping[str, Any]:
    """The fills state of the run being extracted, which its reads update as they go."""
    return dlt.current.resource_state(FILLS_RESOURCE)


def pipeline_fills_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """A copy of the fills state a pipeline has committed: marks and unfinished reads."""
    source = pipeline.state.get("sources", {}).get(SOURCE_NAME, {})
    return copy.deepcopy(source.get("resources", {}).get(FILLS_RESOURCE, {}))


def _filter_marks(state: Mapping[str, Any]) -> dict[str, FilterMarks]:
    """Each filter's marks in a fills state, by the filter's state key."""
    marks: dict[str, FilterMarks] = state.get(FILTERS_KEY, {})
    return marks


def pending_reads(state: Mapping[str, Any]) -> int:
    """How many reads a fills state holds unfinished, over every filter."""
    return sum(len(marks.get("backlog", [])) for marks in _filter_marks(state).values())


def pending_windows(state: Mapping[str, Any]) -> list[tuple[DateTime, DateTime]]:
    """The [start, end] of every unfinished window read in a fills state."""
    return [
        (ensure_pendulum_datetime(start), ensure_pendulum_datetime(end))
        for marks in _filter_marks(state).values()
        for read in marks.get("backlog", [])
        if (start := read.get("start")) and (end := read.get("end"))
    ]
