"""MySQL and MariaDB: the indexes that let dlt's merge find the rows it replaces."""

import dlt
from dlt.common.schema.utils import get_columns_names_with_prop

from hypertracker_source.config.defaults import TABLE_NAMES

MYSQL_DIALECTS = ("mysql", "mariadb")
MERGE_KEY_INDEX = "hypertracker_merge_key"
TEXT_PREFIX = 64
"""Characters of a TEXT key column to index: MySQL and MariaDB index TEXT by a prefix only."""


def index_merge_keys(pipeline: dlt.Pipeline) -> list[str]:
    """Indexes the key of each staging table dlt's merge reads; returns the tables indexed now.

    Call it after the first load into MySQL or MariaDB (which creates the staging tables), and
    again after a load that brought a table for the first time; tables already indexed are left.
    """
    # Hand-written: dlt's sqlalchemy destination creates no index, and its merge looks every
    # stored row up in the staging table: without these indexes a rerun costs time in proportion
    # to the stored rows times the rows read (20,000 fills and 2 risk snapshots: 27 s, see
    # docs/destinations.md).
    schema = pipeline.default_schema
    indexed = []
    with pipeline.sql_client() as client, client.with_staging_dataset():
        for table in TABLE_NAMES:
            if table not in schema.tables or not client.execute_sql(
                "SELECT 1 FROM information_schema.tables WHERE table_schema = %s"
                " AND table_name = %s",
                client.staging_dataset_name,
                table,
            ):
                continue
            if client.execute_sql(
                "SELECT 1 FROM information_schema.statistics WHERE table_schema = %s"
                " AND table_name = %s AND index_name = %s",
                client.staging_dataset_name,
                table,
                MERGE_KEY_INDEX,
            ):
                continue
            columns = schema.get_table_columns(table)
            key = [
                client.escape_column_name(name)
                + (f"({TEXT_PREFIX})" if columns[name].get("data_type") == "text" else "")
                for name in get_columns_names_with_prop(schema.tables[table], "primary_key")
            ]
            client.execute_sql(
                f"CREATE INDEX {MERGE_KEY_INDEX} ON {client.make_qualified_table_name(table)}"
                f" ({', '.join(key)})"
            )
            indexed.append(table)
    return indexed


def index_merge_keys_on_mysql(pipeline: dlt.Pipeline) -> list[str]:
    """Indexes the staging tables' keys when the pipeline loads into MySQL or MariaDB."""
    if pipeline.destination.destination_name != "sqlalchemy" or not pipeline.default_schema_name:
        return []
    with pipeline.sql_client() as client:
        if client.dialect_name not in MYSQL_DIALECTS:
            return []
    return index_merge_keys(pipeline)
