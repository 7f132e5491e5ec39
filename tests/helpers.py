"""Reading back what landed, and the simulator's ground truth, in comparable forms."""

from datetime import datetime
from typing import Any

import dlt
import pendulum

DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")


def landed(pipeline: dlt.Pipeline, table: str) -> list[dict[str, Any]]:
    """Every row of a loaded table, without dlt's bookkeeping columns."""
    rows = pipeline.dataset()[table].arrow().to_pylist()
    return [{k: v for k, v in row.items() if k not in DLT_COLUMNS} for row in rows]


def epoch_ms(moment: str | datetime) -> int:
    """An instant, ISO string or datetime, as epoch milliseconds."""
    parsed = pendulum.parse(moment) if isinstance(moment, str) else pendulum.instance(moment)
    return round(parsed.timestamp() * 1000)


def api_fill_key(fill: dict[str, Any]) -> tuple:
    """The identity of a fill as the API renders it."""
    return (
        fill["address"].lower(),
        fill["coin"],
        epoch_ms(fill["time"]),
        fill["startPosition"],
        fill["side"],
        fill["sz"],
        fill["px"],
    )


def landed_fill_key(row: dict[str, Any]) -> tuple:
    """The identity of a landed fill."""
    return (
        row["address"],
        row["coin"],
        epoch_ms(row["time"]),
        row["start_position"],
        row["side"],
        row["sz"],
        row["px"],
    )


def api_fill_values(fill: dict[str, Any]) -> tuple:
    """The values of a fill as the API renders it, missing fields as None."""
    return (
        fill.get("tid"),
        fill.get("oid"),
        fill["closedPnl"],
        None if fill.get("builderFee") is None else float(fill["builderFee"]),
        float(fill["fee"]),
        fill["hash"],
        fill["liquidationMethod"],
        fill.get("crossed"),
        fill["liquidatedUser"].lower(),
    )


def landed_fill_values(row: dict[str, Any]) -> tuple:
    """The values of a landed fill, in the order of api_fill_values."""
    return (
        row["tid"],
        row["oid"],
        row["closed_pnl"],
        row["builder_fee"],
        row["fee"],
        row["hash"],
        row["liquidation_method"],
        row["crossed"],
        row["liquidated_user"],
    )


def assert_fills_equal(pipeline: dlt.Pipeline, expected: list[dict[str, Any]]) -> None:
    """The landed fills are exactly the expected ones: same identities, values, no duplicate."""
    rows = landed(pipeline, "liquidation_fills")
    keys = [landed_fill_key(row) for row in rows]
    assert len(keys) == len(set(keys)), "duplicate fills landed"
    landed_by_key = {landed_fill_key(row): landed_fill_values(row) for row in rows}
    expected_by_key = {api_fill_key(fill): api_fill_values(fill) for fill in expected}
    assert len(expected_by_key) == len(expected)
    assert landed_by_key.keys() == expected_by_key.keys()
    assert landed_by_key == expected_by_key
