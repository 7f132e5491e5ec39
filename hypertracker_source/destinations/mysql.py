"""MySQL and MariaDB: the indexes that let dlt's merge find the rows it replaces."""

from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from hypertracker_source.tables import TABLES, SourceTable

MERGE_KEY_INDEX = "hypertracker_merge_key"
_TEXT_PREFIX = 64
"""Characters of a TEXT key column to index: MySQL and MariaDB index TEXT by a prefix only."""


def index_merge_keys(pipeline: dlt.Pipeline) -> list[str]:
    """Indexes the key of each staging table dlt's merge reads; returns the tables indexed now.

    The first load into MySQL or MariaDB creates the staging tables, and a load that brings a
    table for the first time creates its own: each is indexed at the next call, once.
    """
    # Hand-written: dlt's sqlalchemy destination creates no index, and its merge looks every
    # stored row up in the staging table: without these indexes a rerun costs time in proportion
    # to the stored rows times the rows read (20,000 fills and 2 risk snapshots: 27 s, see
    # docs/destinations.md).
    if not pipeline.default_schema_name:
        return []
    loaded = pipeline.default_schema.tables
    with pipeline.sql_client() as client, client.with_staging_dataset():
        staging = client.staging_dataset_name
        present = _table_names(
            client,
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s",
            staging,
        )
        indexed = _table_names(
            client,
            "SELECT table_name FROM information_schema.statistics WHERE table_schema = %s"
            " AND index_name = %s",
            staging,
            MERGE_KEY_INDEX,
        )
        due = [
            table for table in TABLES if table.name in loaded and table.name in present - indexed
        ]
        for table in due:
            client.execute_sql(_create_index(client, pipeline, table))
    return [table.name for table in due]


def _table_names(client: SqlClientBase[Any], sql: str, *params: str) -> set[str]:
    """The table names a query of information_schema returns."""
    return {name for (name,) in client.execute_sql(sql, *params) or []}


def _create_index(client: SqlClientBase[Any], pipeline: dlt.Pipeline, table: SourceTable) -> str:
    """The statement that indexes a staging table's key, TEXT columns by their prefix."""
    columns = pipeline.default_schema.get_table_columns(table.name)
    key = [
        client.escape_column_name(name)
        + (f"({_TEXT_PREFIX})" if columns[name].get("data_type") == "text" else "")
        for name in table.primary_key
    ]
    return (
        f"CREATE INDEX {MERGE_KEY_INDEX} ON {client.make_qualified_table_name(table.name)}"
        f" ({', '.join(key)})"
    )
