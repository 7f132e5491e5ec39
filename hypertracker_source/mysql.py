"""MySQL and MariaDB: the index that lets dlt's merge find the fills it replaces."""

import dlt

FILL_KEY_INDEX = "hypertracker_fill_key"
FILL_KEY_INDEX_COLUMNS = "address(42), coin(32), time"
"""A prefix of the fill key: TEXT columns are indexed by their first characters only."""


def index_fill_keys(pipeline: dlt.Pipeline) -> bool:
    """Indexes the fill key of the staging table dlt's merge reads; False if it already was.

    Call it once, after the first load into MySQL or MariaDB (which creates the staging table).
    """
    # Hand-written: dlt's sqlalchemy destination creates no index, and its merge looks every
    # stored fill up in the staging table: without this index a rerun costs time in proportion to
    # the stored fills times the fills read (20,000 fills: 15 s against 0.8 s with it).
    with pipeline.sql_client() as client, client.with_staging_dataset():
        table = client.make_qualified_table_name("liquidation_fills")
        existing = client.execute_sql(
            "SELECT 1 FROM information_schema.statistics"
            " WHERE table_schema = %s AND table_name = %s AND index_name = %s",
            client.staging_dataset_name,
            "liquidation_fills",
            FILL_KEY_INDEX,
        )
        if existing:
            return False
        client.execute_sql(f"CREATE INDEX {FILL_KEY_INDEX} ON {table} ({FILL_KEY_INDEX_COLUMNS})")
    return True
