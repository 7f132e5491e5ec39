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
    """One field of an API row: its name in the API, its column name, type and meaning."""

    api_name: str
    column: str
    arrow_type: pa.DataType
    description: str = ""


def api_fields(*fields: tuple[str, pa.DataType, str]) -> tuple[ApiField, ...]:
    """Declares API fields, naming each column in dlt's snake_case."""
    return tuple(
        ApiField(name, SNAKE_CASE.normalize_identifier(name), type_, description)
        for name, type_, description in fields
    )


SNAKE_CASE = NamingConvention()

FILL_FIELDS = api_fields(
    ("time", TIMESTAMP, "When the fill happened on chain (UTC, to the millisecond)"),
    ("address", pa.string(), "The liquidated wallet (0x address, lower case)"),
    ("coin", pa.string(), "The market, spelled as the API does: BTC, kPEPE, xyz:MSTR"),
    ("fullCoinName", pa.string(), "The market's full name (for HIP-3 markets, with its dex)"),
    ("fillType", pa.string(), "The kind of market: perp (perpetual) or spot"),
    ("side", pa.string(), "A (ask: the wallet sold, closing a long) or B (bid: it bought)"),
    ("dir", pa.string(), "What the fill did to the position: Close Long, Close Short, ..."),
    ("px", pa.float64(), "Fill price (USD per coin)"),
    ("sz", pa.float64(), "Fill size (coins)"),
    ("startPosition", pa.float64(), "Position before the fill (coins; negative: short)"),
    ("closedPnl", pa.float64(), "Profit or loss the fill realised (USD; negative: a loss)"),
    ("fee", pa.float64(), "Fee paid for the fill (in fee_token)"),
    ("builderFee", pa.float64(), "Fee paid to the order's builder (in fee_token)"),
    ("feeToken", pa.string(), "Token the fees are paid in, such as USDC"),
    ("builder", pa.string(), "The builder (front end) that routed the order, if any"),
    ("crossed", pa.bool_(), "Whether the fill took liquidity (true: taker, false: maker)"),
    ("hash", pa.string(), "Transaction hash (all zeros for TWAP fills)"),
    ("oid", pa.int64(), "Order id, shared by the pieces of one order"),
    ("tid", pa.int64(), "Trade id, shared by the two sides of a trade"),
    ("liquidatedUser", pa.string(), "The liquidated wallet, the same as address (lower case)"),
    ("liquidationMarkPx", pa.float64(), "Mark price that triggered the liquidation (USD)"),
    (
        "liquidationMethod",
        pa.string(),
        "How the position was liquidated: market (order book) or backstop (vault)",
    ),
)

FILL_PRIMARY_KEY = ("address", "coin", "time", "start_position", "side", "sz", "px")
"""What identifies a liquidation fill, present on every row (unlike `tid` and `oid`).

Only the liquidated wallet's side of a trade is returned, so one wallet, coin and millisecond hold
one fill per piece of the liquidation order; the pieces of one order share `time`, `hash` and `oid`
but each starts from the position the previous piece left (`start_position`). `tid` would identify
a fill with `address`, but rows may lack it, and a key column must never be null.
"""

HEATMAP_FIELDS = api_fields(
    ("coin", pa.string(), "The market whose open positions the heatmap maps"),
    ("priceBinIndex", pa.int64(), "Number of the price bin, from 0 at the lowest prices"),
    ("priceBinStart", pa.float64(), "Lowest price of the bin (USD)"),
    ("priceBinEnd", pa.float64(), "Highest price of the bin (USD)"),
    (
        "liquidationValue",
        pa.float64(),
        "Value of open positions whose liquidation price is in the bin (USD)",
    ),
    (
        "positionsCount",
        pa.int64(),
        "Number of open positions whose liquidation price is in the bin",
    ),
    ("mostImpactedSegment", pa.int64(), "The cohort with the most value in the bin (segments.id)"),
)
HEATMAP_PRIMARY_KEY = ("coin", "price_bin_index", "snapshot_at")

RISK_FIELDS = api_fields(
    ("coin", pa.string(), "The market"),
    ("totalValue", pa.float64(), "The cohort's open position value on the coin (USD)"),
    ("riskValue", pa.float64(), "Of that, the value within 75% of its liquidation threshold (USD)"),
    ("percentRisk", pa.float64(), "risk_value as a share of total_value (percent, 0 to 100)"),
)
RISK_PRIMARY_KEY = ("segment_id", "coin", "snapshot_at")

SEGMENT_COLUMNS: TTableSchemaColumns = {
    "id": {"data_type": "bigint", "nullable": False, "description": "The cohort's id"},
    "name": {"data_type": "text", "description": "The cohort's name, such as Smart Money"},
    "category": {
        "data_type": "text",
        "description": "size (by perp equity) or pnl (by all-time perp PnL); a wallet is in one "
        "cohort of each",
    },
    "emoji": {"data_type": "text", "description": "The cohort's emoji"},
    "criteria__min_equity": {"description": "Size cohorts: lowest perp equity (USD)"},
    "criteria__max_equity": {"description": "Size cohorts: highest perp equity (USD; null: none)"},
    "criteria__min_pnl": {"description": "PnL cohorts: lowest all-time PnL (USD; null: none)"},
    "criteria__max_pnl": {"description": "PnL cohorts: highest all-time PnL (USD; null: none)"},
}

SNAPSHOT_AT = ApiField(
    "snapshotAt",
    "snapshot_at",
    TIMESTAMP,
    "The API's data version the row belongs to: its lastUpdate (UTC)",
)
SEGMENT_ID = ApiField("segmentId", "segment_id", pa.int64(), "The cohort (segments.id)")


def arrow_schema(fields: Sequence[ApiField]) -> pa.Schema:
    """Returns the Arrow schema of a table's declared columns."""
    return pa.schema([pa.field(field.column, field.arrow_type) for field in fields])


def column_hints(fields: Sequence[ApiField]) -> TTableSchemaColumns:
    """Returns dlt column hints for declared columns, so the schema exists before any data."""
    columns = py_arrow_to_table_schema_columns(arrow_schema(fields))
    for field in fields:
        columns[field.column]["description"] = field.description
    return columns


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
    """Casts a wire column to its declared type, an empty string to null, or names a value that
    does not cast (a `time` that is not a date).

    Empty strings become null because dlt's PostgreSQL loader cannot tell them apart, and every
    destination must hold the same rows (the API sends `builder: ""` for "no builder").
    """
    if field.arrow_type == pa.string():
        return pc.if_else(pc.equal(column, ""), pa.scalar(None, pa.string()), column)
    if column.type == field.arrow_type:
        return column
    try:
        return column.cast(field.arrow_type)
    except pa.ArrowInvalid:
        value = next(v for v in column.to_pylist() if not casts(v, field.arrow_type))
        raise HyperTrackerApiError(
            f"The API sent {field.api_name} = {value!r}, which is not a {field.arrow_type}. "
            "Nothing of this run was loaded and the stored cursor has not moved; rerun later, "
            "and report it to HyperTracker if it stays (see docs/data-contract.md)"
        ) from None


def casts(value: Any, arrow_type: pa.DataType) -> bool:
    """Whether one wire value casts to a declared type."""
    try:
        pa.array([value]).cast(arrow_type)
    except pa.ArrowInvalid:
        return False
    return True


def undeclared_fields(rows: list[dict[str, Any]], fields: Sequence[ApiField]) -> list[str]:
    """Returns, sorted, the row keys that no declared field names."""
    return sorted(set().union(*rows).difference(field.api_name for field in fields))


def json_text(value: Any) -> str | None:
    """Returns a value as text: strings as they are, anything else as JSON."""
    if value is None or isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
