"""MySQL and MariaDB: the indexes that let dlt's merge find the rows it replaces."""

from typing import Any

import dlt
from dlt.destinations.sql_client import SqlClientBase

from hypertracker_source.tables import TABLES, SourceTable

MERGE_KEY_INDEX = "hypertracker_merge_key"
TEXT_PREFIX = 64
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
        unindexed = [
            table for table in TABLES if table.name in loaded and _needs_index(client, table.name)
        ]
        for table in unindexed:
            client.execute_sql(_create_index(client, pipeline, table))
    return [table.name for table in unindexed]


def _needs_index(client: SqlClientBase[Any], table: str) -> bool:
    """Whether a staging table exists without the merge key index."""
    exists = client.execute_sql(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
        client.staging_dataset_name,
        table,
    )
    indexed = client.execute_sql(
        "SELECT 1 FROM information_schema.statistics WHERE table_schema = %s"
        " AND table_name = %s AND index_name = %s",
        client.staging_dataset_name,
        table,
        MERGE_KEY_INDEX,
    )
    return bool(exists) and not indexed


def _create_index(client: SqlClientBase[Any], pipeline: dlt.Pipeline, table: SourceTable) -> str:
    """The statement that indexes a staging table's key, TEXT columns by their prefix."""
    columns = pipeline.default_schema.get_table_columns(table.name)
    key = [
        client.escape_column_name(name)
        + (f"({TEXT_PREFIX})" if columns[name].get("data_type") == "text" else "")
        for name in table.primary_key
    ]
    return (
        f"CREATE INDEX {MERGE_KEY_INDEX} ON {client.make_qualified_table_name(table.name)}"
        f" ({', '.join(key)})"
    )
