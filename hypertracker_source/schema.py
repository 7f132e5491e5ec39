"""The tables' column types, declared once as Arrow schemas, and API rows converted to them."""

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json
from dlt.common.libs.pyarrow import py_arrow_to_table_schema_columns
from dlt.common.normalizers.naming.snake_case import NamingConvention
from dlt.common.schema.typing import TTableSchemaColumns

from hypertracker_source.exceptions import HyperTrackerApiError, HyperTrackerError

TIMESTAMP = pa.timestamp("us", tz="UTC")
"""Microseconds, dlt's default precision, so no destination is asked for a special type."""


class ApiField(NamedTuple):
    """One field of an API row: its name in the API, its column name and its type."""

    api_name: str
    column: str
    arrow_type: pa.DataType


def api_fields(*fields: tuple[str, pa.DataType]) -> tuple[ApiField, ...]:
    """Declares API fields, naming each column in dlt's snake_case."""
    return tuple(
        ApiField(name, SNAKE_CASE.normalize_identifier(name), type_) for name, type_ in fields
    )


SNAKE_CASE = NamingConvention()

FILL_FIELDS = api_fields(
    ("time", TIMESTAMP),
    ("address", pa.string()),
    ("coin", pa.string()),
    ("fullCoinName", pa.string()),
    ("fillType", pa.string()),
    ("side", pa.string()),
    ("dir", pa.string()),
    ("px", pa.float64()),
    ("sz", pa.float64()),
    ("startPosition", pa.float64()),
    ("closedPnl", pa.float64()),
    ("fee", pa.float64()),
    ("builderFee", pa.float64()),
    ("feeToken", pa.string()),
    ("builder", pa.string()),
    ("crossed", pa.bool_()),
    ("hash", pa.string()),
    ("oid", pa.int64()),
    ("tid", pa.int64()),
    ("liquidatedUser", pa.string()),
    ("liquidationMarkPx", pa.float64()),
    ("liquidationMethod", pa.string()),
)

FILL_PRIMARY_KEY = ("address", "coin", "time", "start_position", "side", "sz", "px")
"""What identifies a liquidation fill, present on every row (unlike `tid` and `oid`).

Only the liquidated wallet's side of a trade is returned, so one wallet, coin and millisecond hold
one fill per piece of the liquidation order; the pieces of one order share `time`, `hash` and `oid`
but each starts from the position the previous piece left (`start_position`). `tid` would identify
a fill with `address`, but rows may lack it, and a key column must never be null.
"""

HEATMAP_FIELDS = api_fields(
    ("coin", pa.string()),
    ("priceBinIndex", pa.int64()),
    ("priceBinStart", pa.float64()),
    ("priceBinEnd", pa.float64()),
    ("liquidationValue", pa.float64()),
    ("positionsCount", pa.int64()),
    ("mostImpactedSegment", pa.int64()),
)
HEATMAP_PRIMARY_KEY = ("coin", "price_bin_index", "snapshot_at")

RISK_FIELDS = api_fields(
    ("coin", pa.string()),
    ("totalValue", pa.float64()),
    ("riskValue", pa.float64()),
    ("percentRisk", pa.float64()),
)
RISK_PRIMARY_KEY = ("segment_id", "coin", "snapshot_at")

SEGMENT_COLUMNS: TTableSchemaColumns = {
    "id": {"data_type": "bigint", "nullable": False},
    "name": {"data_type": "text"},
    "category": {"data_type": "text"},
    "emoji": {"data_type": "text"},
}

SNAPSHOT_AT = ApiField("snapshotAt", "snapshot_at", TIMESTAMP)
SEGMENT_ID = ApiField("segmentId", "segment_id", pa.int64())


def arrow_schema(fields: Sequence[ApiField]) -> pa.Schema:
    """Returns the Arrow schema of a table's declared columns."""
    return pa.schema([pa.field(field.column, field.arrow_type) for field in fields])


def column_hints(fields: Sequence[ApiField]) -> TTableSchemaColumns:
    """Returns dlt column hints for declared columns, so the schema exists before any data."""
    return py_arrow_to_table_schema_columns(arrow_schema(fields))


def rows_to_arrow(
    rows: list[dict[str, Any]], fields: Sequence[ApiField], **constants: pa.Scalar
) -> pa.Table:
    """Converts API rows to an Arrow table of the declared types, keeping any undeclared field.

    A declared field missing from a row is null; an undeclared one (the API added it) is kept as a
    JSON text column, a type that cannot clash between pages whatever values it takes.
    """
    columns = declared_columns(wire_columns(rows, fields), fields)
    names = [field.column for field in fields]
    for api_name in undeclared_fields(rows, fields):
        columns.append(pa.array([json_text(row.get(api_name)) for row in rows], pa.string()))
        names.append(SNAKE_CASE.normalize_identifier(api_name))
    for column, scalar in constants.items():
        columns.append(pa.array([scalar.as_py()] * len(rows), scalar.type))
        names.append(column)
    return pa.Table.from_arrays(columns, names=names)


def read_page(content: bytes, rows_key: str, fields: Sequence[ApiField]) -> dict[str, Any] | None:
    """Reads a JSON page straight into Arrow: its rows as a table of the declared types.

    The page's other members (such as `nextCursor`) come as Python values. Returns None for a page
    whose rows do not fit the declared columns (an undeclared field, a value of another type) or
    that is not one JSON object: `rows_to_arrow` then takes the rows from orjson, and keeps the new
    field as text or names the changed one, so that both ways give the same columns.
    """
    # Hand-written: Arrow's JSON reader types a page in one pass without a Python object per value,
    # for less CPU than orjson plus pa.array; dlt has no typed JSON reader.
    try:
        page = pyarrow.json.read_json(
            pa.BufferReader(content),
            read_options=pyarrow.json.ReadOptions(use_threads=False, block_size=len(content) + 1),
            parse_options=page_parse_options(rows_key, tuple(fields)),
        )
    except pa.ArrowException:
        return None
    rows = page.column(rows_key)
    if page.num_rows != 1 or rows.type != page_rows_type(tuple(fields)):
        return None
    members = {name: page.column(name)[0].as_py() for name in page.column_names if name != rows_key}
    columns = declared_columns(rows.combine_chunks().flatten().flatten(), fields)
    return {**members, rows_key: pa.Table.from_arrays(columns, [field.column for field in fields])}


@lru_cache
def page_rows_type(fields: tuple[ApiField, ...]) -> pa.ListType:
    """Returns the Arrow type of a page's rows as the JSON reader makes them."""
    return pa.list_(pa.struct([pa.field(field.api_name, field.arrow_type) for field in fields]))


@lru_cache
def page_parse_options(rows_key: str, fields: tuple[ApiField, ...]) -> pyarrow.json.ParseOptions:
    """Returns how the JSON reader reads a page: its rows as declared, anything else as it finds."""
    schema = pa.schema([pa.field(rows_key, page_rows_type(fields))])
    return pyarrow.json.ParseOptions(explicit_schema=schema, unexpected_field_behavior="infer")


def declared_columns(columns: Sequence[pa.Array], fields: Sequence[ApiField]) -> list[pa.Array]:
    """Returns each column of a declared field as its declared type."""
    return [as_declared(column, field) for column, field in zip(columns, fields, strict=True)]


def wire_columns(rows: list[dict[str, Any]], fields: Sequence[ApiField]) -> list[pa.Array]:
    """Parses rows into one Arrow column per declared field, typed as on the wire."""
    try:
        return pa.array(rows, wire_type(fields)).flatten()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        raise changed_type_error(rows, fields) from None


def changed_type_error(rows: list[dict[str, Any]], fields: Sequence[ApiField]) -> HyperTrackerError:
    """Names the field, and a value of it, whose type is no longer the declared one."""
    for field, type_ in zip(fields, wire_type(fields), strict=True):
        for row in rows:
            try:
                pa.array([row.get(field.api_name)], type_.type)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return HyperTrackerApiError(
                    f"The API sent {field.api_name} = {row[field.api_name]!r} where a "
                    f"{type_.type} was declared: the field changed type. Nothing of this run "
                    "was loaded and the stored cursor has not moved; upgrade hypertracker-source "
                    "or report the change"
                )
    return HyperTrackerApiError("The API sent rows that do not fit the declared columns")


def wire_type(fields: Sequence[ApiField]) -> pa.StructType:
    """Returns the Arrow type of a row as it comes over the wire: timestamps are ISO strings."""
    return pa.struct(
        pa.field(field.api_name, pa.string() if field.arrow_type == TIMESTAMP else field.arrow_type)
        for field in fields
    )


def as_declared(column: pa.Array, field: ApiField) -> pa.Array:
    """Casts a wire column to its declared type, an empty string to null.

    Empty strings become null because dlt's PostgreSQL loader cannot tell them apart, and every
    destination must hold the same rows (the API sends `builder: ""` for "no builder").
    """
    if field.arrow_type == pa.string():
        return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    return column.cast(field.arrow_type) if column.type != field.arrow_type else column


def undeclared_fields(rows: list[dict[str, Any]], fields: Sequence[ApiField]) -> list[str]:
    """Returns, sorted, the row keys that no declared field names."""
    return sorted(set().union(*rows).difference(field.api_name for field in fields))


def json_text(value: Any) -> str | None:
    """Returns a value as text: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
