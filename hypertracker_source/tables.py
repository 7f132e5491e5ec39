"""The registry of the tables the source loads and the resources that write them: one list.

The source declares its resources from it; the summary, the report's queries, the models check,
the MySQL indexes and `--resources` read their names from it; a test holds the dbt package's
sources and the source's dlt schema to it.
"""

from typing import NamedTuple

from dlt.common.schema.typing import TTableSchemaColumns

from hypertracker_source.config.defaults import FILLS_RESOURCE, REJECTED_FILLS_TABLE, SEGMENT_NAMES
from hypertracker_source.fills.contract import REJECTED_FILL_COLUMNS, REJECTED_FILL_KEY
from hypertracker_source.schema import (
    FILL_FIELDS,
    FILL_PRIMARY_KEY,
    HEATMAP_FIELDS,
    HEATMAP_PRIMARY_KEY,
    RISK_FIELDS,
    RISK_PRIMARY_KEY,
    SEGMENT_COLUMNS,
    SEGMENT_ID,
    SNAPSHOT_AT,
    column_hints,
)
from hypertracker_source.snapshots.risk import risk_resource_name


class SourceTable(NamedTuple):
    """A table the source loads: its name, the resources that write it, the key it merges on,
    its column hints, whether users see it (public) and whether it holds API snapshots."""

    name: str
    resources: tuple[str, ...]
    primary_key: tuple[str, ...]
    columns: TTableSchemaColumns
    public: bool = True
    snapshot: bool = False


FILLS = SourceTable(FILLS_RESOURCE, (FILLS_RESOURCE,), FILL_PRIMARY_KEY, column_hints(FILL_FIELDS))
HEATMAP = SourceTable(
    "liquidation_heatmap",
    ("liquidation_heatmap",),
    HEATMAP_PRIMARY_KEY,
    column_hints((*HEATMAP_FIELDS, SNAPSHOT_AT)),
    snapshot=True,
)
RISK = SourceTable(
    "liquidation_risk",
    tuple(risk_resource_name(segment_id) for segment_id in sorted(SEGMENT_NAMES)),
    RISK_PRIMARY_KEY,
    column_hints((*RISK_FIELDS, SEGMENT_ID, SNAPSHOT_AT)),
    snapshot=True,
)
"""One resource per cohort, every one into the one table."""
SEGMENTS = SourceTable("segments", ("segments",), ("id",), SEGMENT_COLUMNS)
REJECTED_FILLS = SourceTable(
    REJECTED_FILLS_TABLE,
    (FILLS_RESOURCE,),
    (REJECTED_FILL_KEY,),
    REJECTED_FILL_COLUMNS,
    public=False,
)
"""Fills that break the data contract (docs/data-contract.md): the fills resource's second table,
made the first time a fill is set apart."""

TABLES = (FILLS, HEATMAP, RISK, SEGMENTS, REJECTED_FILLS)
"""Every table the source loads, in the order the summary shows them."""

TABLE_NAMES = tuple(table.name for table in TABLES if table.public)
"""The tables users query: the raw tables of the dbt package, the report and the summary."""

PUBLIC_RESOURCES = tuple(
    resource for table in TABLES if table.public for resource in table.resources
)
"""The resources `--resources` takes; `liquidation_risk` stands for every cohort's."""
SNAPSHOT_RESOURCES = frozenset(
    resource for table in TABLES if table.snapshot for resource in table.resources
)
"""The resources that fetch a table the API rebuilds at each data version: the heatmaps', and
each cohort's risk."""
