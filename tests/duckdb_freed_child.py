"""Prints, as JSON, DuckDB's jemalloc setting and the resident memory a finished query left behind,
in a fresh process of the command."""

import importlib
import json
import os

QUERY = "SELECT count(*) FROM (SELECT range::VARCHAR AS s FROM range(3000000) ORDER BY s)"
"""A one-thread sort that allocates and frees about 100 MB inside DuckDB."""


def resident_mb() -> float:
    """This process's resident memory now, in MB (VmRSS)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def main() -> None:
    """Imports the command's entry point as its console script does, then runs the query."""
    importlib.import_module("hypertracker_source.commands")
    import duckdb

    from hypertracker_source.runs.malloc import DUCKDB_JEMALLOC_VARIABLE

    connection = duckdb.connect(config={"threads": 1})
    before = resident_mb()
    connection.sql(QUERY).fetchall()
    left = resident_mb() - before
    print(json.dumps({"conf": os.environ.get(DUCKDB_JEMALLOC_VARIABLE), "left_mb": left}))


if __name__ == "__main__":
    main()
