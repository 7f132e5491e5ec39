"""The data contract of liquidation fills: which fills load, and the rows set apart with why.

A fill loads when its key columns and `time` are present, its size and price are not negative and
no field is far larger than any real one. Any other fill is set apart, whole and with the reason,
in REJECTED_FILLS_TABLE, keyed by a hash of the fill so that reading it again stores it once.
"""

import hashlib
from collections.abc import Callable
from functools import reduce
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hypertracker_source.config.defaults import FILL_FIELD_MAX_BYTES, REJECTED_FIELD_SHOWN_BYTES
from hypertracker_source.schema import (
    FILL_PRIMARY_KEY,
    TIMESTAMP,
    api_fields,
    arrow_schema,
    column_hints,
)

_REQUIRED_COLUMNS = tuple(dict.fromkeys(("time", *FILL_PRIMARY_KEY)))
"""Columns a fill must have: `time` (the marks and windows follow it) and the key."""
_NON_NEGATIVE_COLUMNS = ("sz", "px")
"""Columns a fill may not hold a negative number in."""

REJECTED_FILL_KEY = "fill_hash"
_REJECTED_FIELDS = api_fields(
    (REJECTED_FILL_KEY, pa.string(), "Hash of the fill as read: a fill read again is stored once"),
    ("field_name", pa.string(), "The first column that broke the contract"),
    ("reason", pa.string(), "How it broke it: address is null, sz is negative, ..."),
    ("time", TIMESTAMP, "The fill's time, when it had one (UTC)"),
    (
        "fill_json",
        pa.string(),
        "The fill as read, one JSON object with the columns of liquidation_fills; a field over "
        f"{FILL_FIELD_MAX_BYTES:,} bytes keeps its first {REJECTED_FIELD_SHOWN_BYTES:,}",
    ),
)
"""The columns of a rejected fill's row."""
_READ_STAMPS = api_fields(
    ("fill_read", pa.string(), "The read that last met it: the filter, and its window or walk"),
    ("data_version", TIMESTAMP, "The API's data version (lastUpdate) of the run that last met it"),
)
"""The columns that say where and when a rejected fill was last read."""
REJECTED_FILL_COLUMNS = column_hints((*_REJECTED_FIELDS, *_READ_STAMPS))
"""The columns of the table of rejected fills, as dlt hints."""


class _FillRule(NamedTuple):
    """One clause of the contract: a column, and where its values break it (None: nowhere)."""

    column: str
    problem: str
    breaks: Callable[[Any], pa.Array | None]

    def broken(self, table: pa.Table) -> pa.Array | None:
        """Where the rows of a table break this rule, or None when none does."""
        return self.breaks(table[self.column])


def _null_rows(column: Any) -> pa.Array | None:
    """Where a column is null (its null count is known without a pass)."""
    return pc.is_null(column) if column.null_count else None


def _negative_rows(column: Any) -> pa.Array | None:
    """Where a numeric column is below zero."""
    lowest = pc.min(column).as_py()
    if lowest is None or lowest >= 0:
        return None
    return pc.fill_null(pc.less(column, 0), False)


def _oversized_rows(column: Any) -> pa.Array | None:
    """Where a text column holds more bytes than any real field (none when all of it is less)."""
    if column.nbytes <= FILL_FIELD_MAX_BYTES:
        return None
    return pc.fill_null(pc.greater(pc.binary_length(column), FILL_FIELD_MAX_BYTES), False)


def _fill_rules(schema: pa.Schema) -> list[_FillRule]:
    """The contract's rules for a page of this schema, in the order a row's reason is chosen."""
    rules = [_FillRule(column, "is null", _null_rows) for column in _REQUIRED_COLUMNS]
    rules += [_FillRule(column, "is negative", _negative_rows) for column in _NON_NEGATIVE_COLUMNS]
    rules += [
        _FillRule(field.name, f"is longer than {FILL_FIELD_MAX_BYTES:,} bytes", _oversized_rows)
        for field in schema
        if field.type == pa.string()
    ]
    return rules


class FillsSplit(NamedTuple):
    """A page's fills that keep the contract, and the rows it rejects."""

    accepted: pa.Table
    rejected: pa.Table


def split_fills(table: pa.Table) -> FillsSplit:
    """Splits a page of fills into those that keep the contract and the rejected rows."""
    # Hand-written: dlt's schema contracts act on tables, columns and types, not values; a
    # `nullable=False` key column is a DDL hint that dlt does not check in Arrow items, and
    # `discard_row` drops a row without a record of it, where a rejected fill must be kept.
    broken_by = [
        (rule, mask)
        for rule in _fill_rules(table.schema)
        if (mask := rule.broken(table)) is not None
    ]
    broken = reduce(pc.or_, (mask for _, mask in broken_by)) if broken_by else None
    indices = pa.array([], pa.uint64()) if broken is None else pc.indices_nonzero(broken)
    if not len(indices):
        return FillsSplit(table, _rejected_table([]))
    rows = table.take(indices).to_pylist()
    reasons = [
        next(rule for rule, mask in broken_by if mask[p].as_py()) for p in indices.to_pylist()
    ]
    return FillsSplit(
        table.filter(pc.invert(broken)),
        _rejected_table(
            [_rejected_row(row, rule) for row, rule in zip(rows, reasons, strict=True)]
        ),
    )


def _rejected_row(fill: dict[str, Any], rule: _FillRule) -> dict[str, Any]:
    """A rejected fill as its row in the table of rejected fills (without the read's stamps)."""
    return {
        REJECTED_FILL_KEY: hashlib.blake2b(_json_bytes(fill), digest_size=16).hexdigest(),
        "field_name": rule.column,
        "reason": f"{rule.column} {rule.problem}",
        "time": fill.get("time"),
        "fill_json": _json_bytes({name: _shown(value) for name, value in fill.items()}).decode(),
    }


def _json_bytes(fill: dict[str, Any]) -> bytes:
    """A fill as JSON, its keys sorted, so that one fill always gives the same bytes."""
    return orjson.dumps(fill, option=orjson.OPT_SORT_KEYS)


def _shown(value: Any) -> Any:
    """A value as a rejected row keeps it: text over the limit cut, with its full length."""
    if isinstance(value, str) and len(value.encode()) > FILL_FIELD_MAX_BYTES:
        cut = value.encode()[:REJECTED_FIELD_SHOWN_BYTES].decode(errors="ignore")
        return f"{cut}... ({len(value.encode()):,} bytes in all)"
    return value


def _rejected_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Rejected rows as an Arrow table."""
    return pa.Table.from_pylist(rows, arrow_schema(_REJECTED_FIELDS))


class RejectedFills(NamedTuple):
    """Rows a read set apart, and the read, for the fills resource to stamp and store."""

    rows: pa.Table
    read: str

    def stamped(self, data_version: Any) -> pa.Table:
        """The rows with the read and the API's data version that met them."""
        rows = self.rows
        for field, value in zip(_READ_STAMPS, (self.read, data_version), strict=True):
            column = pa.array([value] * rows.num_rows, field.arrow_type)
            rows = rows.append_column(field.column, column)
        return rows
