"""The data contract of fills: a fill that breaks it is set apart once, with its reason, never
stored twice nor dropped without a word, and every sound fill lands exactly once."""

import logging
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from helpers import (
    API_KEY,
    REJECTED_TABLE,
    PipelineFactory,
    assert_fills_equal,
    epoch_ms,
    fills_state,
    high_water_marks,
    landed,
    source_for,
)

from hypertracker_simulator import Simulator
from hypertracker_simulator.hostile import BAD_FILL_KINDS, OVERSIZED_FIELD, break_fill
from hypertracker_source.commands import main
from hypertracker_source.config.defaults import (
    FILL_FIELD_MAX_BYTES,
    REJECTED_FIELD_SHOWN_BYTES,
)

BAD_RATE = 0.02
"""One fill in 50 broken, as in the issue."""
NEW_FILLS_PER_RUN = 30
REASONS = {
    "null_address": "address is null",
    "null_time": "time is null",
    "negative_sz": "sz is negative",
    "negative_px": "px is negative",
    "oversized_field": f"{OVERSIZED_FIELD} is longer than {FILL_FIELD_MAX_BYTES:,} bytes",
}


def make_hostile(sim: Simulator, *kinds: str) -> None:
    """Breaks one fill in 50, in these ways, on every read of it."""
    sim.faults.bad_fill_rate = BAD_RATE
    sim.faults.bad_fill_kinds = kinds


def sound_and_broken(sim: Simulator) -> tuple[list[dict[str, Any]], list[tuple[dict, str]]]:
    """The simulator's sound fills, and its broken ones as served with how they are broken."""
    sound, broken = [], []
    for fill, kind in zip(sim.expected_fills(), sim.bad_fill_kinds(), strict=True):
        if kind is None:
            sound.append(fill)
        else:
            broken.append((break_fill(fill, kind, sim.faults.oversized_field_bytes), kind))
    return sound, broken


def identity(fill: dict[str, Any], *names: str) -> tuple:
    """What tells a broken fill apart, from a row served (API names) or set apart (columns)."""
    time = fill.get("time")
    return (*(fill.get(name) for name in names), None if time is None else epoch_ms(time))


def served_identity(fill: dict[str, Any]) -> tuple:
    """The identity of a fill as served."""
    return identity(fill, "coin", "startPosition", "side", "sz", "px", "tid")


def rejected_identity(row: dict[str, Any]) -> tuple:
    """The identity of a fill set apart, read back from its JSON."""
    return identity(
        orjson.loads(row["fill_json"]), "coin", "start_position", "side", "sz", "px", "tid"
    )


def run_three_times(sim: Simulator, make_pipeline: PipelineFactory, **settings: Any) -> Any:
    """Three runs of the fills, with new fills published before the second and third."""
    pipeline = make_pipeline(**settings)
    for run in range(3):
        if run:
            sim.advance_state(new_fills=NEW_FILLS_PER_RUN)
        pipeline.run(source_for(sim).with_resources("liquidation_fills"))
    return pipeline


def assert_contract_kept(pipeline: Any, sim: Simulator) -> list[dict[str, Any]]:
    """Every sound fill landed once, every broken one is set apart once with its reason."""
    sound, broken = sound_and_broken(sim)
    assert broken
    assert_fills_equal(pipeline, sound)
    rejected = landed(pipeline, REJECTED_TABLE)
    assert len({row["fill_hash"] for row in rejected}) == len(rejected)
    assert Counter(rejected_identity(row) for row in rejected) == Counter(
        served_identity(fill) for fill, _ in broken
    )
    reasons = {rejected_identity(row): row["reason"] for row in rejected}
    assert {served_identity(fill): REASONS[kind] for fill, kind in broken} == reasons
    return rejected


@pytest.mark.parametrize("kind", ["null_address", "null_time"])
def test_fills_missing_a_key_or_time_are_set_apart_once_over_three_runs(
    kind: str, simulator: Simulator, make_pipeline: PipelineFactory
):
    make_hostile(simulator, kind)

    pipeline = run_three_times(simulator, make_pipeline)

    assert len(simulator.expected_fills()) == 3000 + 2 * NEW_FILLS_PER_RUN
    rejected = assert_contract_kept(pipeline, simulator)
    assert {row["field_name"] for row in rejected} == {kind.removeprefix("null_")}
    assert all(row["data_version"] is not None and row["fill_read"] for row in rejected)


def test_every_kind_of_broken_fill_is_set_apart_with_its_reason_and_warned_of(
    simulator: Simulator, make_pipeline: PipelineFactory, caplog: pytest.LogCaptureFixture
):
    make_hostile(simulator, *BAD_FILL_KINDS)

    with caplog.at_level(logging.WARNING, logger="hypertracker_source.fills.reads"):
        pipeline = run_three_times(simulator, make_pipeline)

    rejected = assert_contract_kept(pipeline, simulator)
    assert {row["reason"] for row in rejected} == set(REASONS.values())
    oversized = [row for row in rejected if row["field_name"] == OVERSIZED_FIELD]
    assert all(len(row["fill_json"]) < 2 * REJECTED_FIELD_SHOWN_BYTES for row in oversized)
    warned = [r.getMessage() for r in caplog.records if "break the data contract" in r.message]
    assert warned
    assert all(REJECTED_TABLE in message for message in warned)


def test_broken_fills_move_no_mark(simulator: Simulator, make_pipeline: PipelineFactory):
    simulator.faults.bad_fill_rate = 1.0
    simulator.faults.bad_fill_kinds = ("negative_sz",)
    pipeline = make_pipeline()

    pipeline.run(source_for(simulator).with_resources("liquidation_fills"))

    assert landed(pipeline, "liquidation_fills") == []
    assert len(landed(pipeline, REJECTED_TABLE)) == len(simulator.expected_fills())
    assert all(marks.get("newest") is None for marks in fills_state(pipeline).values())
    assert high_water_marks(pipeline) == {
        key: marks["history_until"] for key, marks in fills_state(pipeline).items()
    }


def test_broken_fills_on_postgres_are_set_apart_once(
    simulator: Simulator, make_pipeline: PipelineFactory, postgres_destination: Any
):
    make_hostile(simulator, *BAD_FILL_KINDS)

    pipeline = run_three_times(simulator, make_pipeline, destination=postgres_destination)

    assert_contract_kept(pipeline, simulator)


def test_load_command_says_how_many_fills_were_set_apart_and_where(
    simulator_settings: Simulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    make_hostile(simulator_settings, "null_address")
    _, broken = sound_and_broken(simulator_settings)

    assert main(["load", "--resources", "liquidation_fills"]) == 0

    output = capsys.readouterr().out
    assert (
        f"  {REJECTED_TABLE} {len(broken):,} rows: fills that break the data contract, "
        "set apart and not loaded (see docs/data-contract.md)"
    ) in output.splitlines()
    assert API_KEY not in output
