"""The tables and columns of docs/tables.md, generated from the dlt schema.

`python -m hypertracker_source.commands.docs` loads the bundled simulator into a throwaway DuckDB
file, as `hypertracker demo` does, and prints what dlt made of it: the documented columns, types
and keys cannot drift from the code.
"""

import tempfile
from pathlib import Path

import dlt
from dlt.common.schema.typing import TColumnSchema

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker

_KEY_HINTS = {"primary_key": "primary key", "merge_key": "merge key", "row_key": "row key"}
_DLT_COLUMN_MEANINGS = {
    "_dlt_load_id": "The dlt load that wrote the row (_dlt_loads.load_id)",
    "_dlt_id": "dlt's unique id of the row",
}
"""What dlt's own columns hold: dlt adds them, so the source declares no description for them."""
_DOC_FILLS = 200
"""Enough simulated fills for every column of the source to appear."""


def loaded_schema() -> dlt.Schema:
    """The schema dlt keeps after a full load of the simulator into a throwaway DuckDB file."""
    with tempfile.TemporaryDirectory() as folder, Simulator(fills=_DOC_FILLS) as simulator:
        pipeline = dlt.pipeline(
            pipeline_name="hypertracker_docs",
            destination=dlt.destinations.duckdb(str(Path(folder) / "docs.duckdb")),
            dataset_name="hypertracker",
            pipelines_dir=folder,
        )
        pipeline.run(hypertracker(api_key=simulator.config.api_key, base_url=simulator.url))
        return pipeline.default_schema.clone()


def column_type(column: TColumnSchema) -> str:
    """A column's dlt data type, with its time zone when it has one."""
    data_type = column.get("data_type") or ""
    return (
        f"{data_type} (UTC)"
        if data_type == "timestamp" and column.get("timezone", True)
        else data_type
    )


def _column_keys(column: TColumnSchema) -> str:
    """The key hints a column carries, in words."""
    return ", ".join(words for hint, words in _KEY_HINTS.items() if column.get(hint))


def column_meaning(name: str, column: TColumnSchema) -> str:
    """A column's one-line description, with its unit."""
    description = column.get("description")
    return description if description else _DLT_COLUMN_MEANINGS.get(name, "")


def tables_markdown(schema: dlt.Schema) -> str:
    """A markdown section per data table: how it is written, then its columns."""
    lines = []
    for name in sorted(schema.data_table_names()):
        table = schema.get_table(name)
        disposition = table.get("write_disposition", "append")
        strategy = table.get("x-merge-strategy")
        written = f"{disposition} ({strategy})" if strategy else disposition
        lines += [f"#### `{name}`", "", f"Write disposition: {written}.", ""]
        lines += ["| column | type | key | nullable | meaning |", "|---|---|---|---|---|"]
        for column_name, column in table["columns"].items():
            nullable = "yes" if column.get("nullable", True) else "no"
            lines.append(
                f"| `{column_name}` | {column_type(column)} | {_column_keys(column)} | {nullable} "
                f"| {column_meaning(column_name, column)} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    print(tables_markdown(loaded_schema()), end="")
