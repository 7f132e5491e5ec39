"""The registry of tables against what reads or declares the tables: the source's dlt schema, its
resources, the dbt package's sources and the report."""

import pytest
import yaml
from dlt.common.schema.utils import get_columns_names_with_prop
from helpers import API_KEY

from hypertracker_source import hypertracker
from hypertracker_source.commands.models import DBT_PACKAGE
from hypertracker_source.report.queries import REPORT_TABLES
from hypertracker_source.tables import PUBLIC_RESOURCES, TABLE_NAMES, TABLES


@pytest.mark.fast
def test_dbt_sources_list_exactly_the_registrys_public_tables() -> None:
    sources = yaml.safe_load((DBT_PACKAGE / "models" / "staging" / "sources.yml").read_text())
    (source,) = sources["sources"]
    assert sorted(table["name"] for table in source["tables"]) == sorted(TABLE_NAMES)


@pytest.mark.fast
def test_the_sources_schema_holds_the_registrys_tables_with_their_keys() -> None:
    schema = hypertracker(api_key=API_KEY, base_url="http://127.0.0.1:9").discover_schema()
    declared = {
        name: set(get_columns_names_with_prop(schema.tables[name], "primary_key"))
        for name in schema.data_table_names(include_incomplete=True)
    }
    assert declared == {table.name: set(table.primary_key) for table in TABLES if table.public}


@pytest.mark.fast
def test_the_sources_resources_are_the_registrys() -> None:
    source = hypertracker(api_key=API_KEY, base_url="http://127.0.0.1:9")
    assert sorted(source.selected_resources) == sorted(PUBLIC_RESOURCES)
    written = {name: resource.table_name for name, resource in source.selected_resources.items()}
    assert written == {
        resource: table.name for table in TABLES if table.public for resource in table.resources
    }


@pytest.mark.fast
def test_the_report_reads_the_registrys_public_tables() -> None:
    assert sorted(REPORT_TABLES) == sorted(TABLE_NAMES)
