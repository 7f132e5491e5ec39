"""The fills pipelines the benchmark compares, each run in a process of its own.

`python -m benchmarks.fills_pipelines <pipeline> <api url> <api key> <workdir> <windows as JSON>`
(pipeline: floor, keyed_floor, rest_api or ours) loads every fill of the windows into a DuckDB
file in workdir and prints one JSON line: the wall and CPU seconds of the work (after the
imports), and the rows that landed.
"""

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from benchmarks.measure import measured, peak_rss_mb, report_to_parent

FILLS_URL_PATH = "/api/external/fills/liquidation"
PAGE_SIZE = 1000
TABLE = "liquidation_fills"
DATASET = "hypertracker"
DATABASE = "fills.duckdb"

Windows = list[tuple[str, str | None]]
"""Each fills query as its `start` and `end` parameters (None: up to now)."""


KEY = ("address", "coin", "time", "startPosition", "side", "sz", "px")
"""The fill key, as ours merges on it, for the keyed floor."""


def floor(url: str, api_key: str, workdir: Path, windows: Windows) -> dict[str, Any]:
    """The raw floor: requests, orjson, pyarrow, and one streaming DuckDB insert; no dlt, no key."""
    return raw_load(url, api_key, workdir, windows, keyed=False)


def keyed_floor(url: str, api_key: str, workdir: Path, windows: Windows) -> dict[str, Any]:
    """The raw floor with ours' guarantee: a primary key on the fill, `INSERT OR IGNORE` into it."""
    return raw_load(url, api_key, workdir, windows, keyed=True)


def raw_load(
    url: str, api_key: str, workdir: Path, windows: Windows, keyed: bool
) -> dict[str, Any]:
    """Every fill of the windows, paged with requests and orjson, into DuckDB as Arrow batches."""
    import duckdb
    import orjson
    import pyarrow as pa
    import requests

    # the API's fields with their wire types, written out so that the floor imports nothing of ours
    string, double, integer = pa.string(), pa.float64(), pa.int64()
    wire = pa.schema(
        [
            ("time", string),
            *[(name, string) for name in ("address", "coin", "fullCoinName", "fillType")],
            *[(name, string) for name in ("side", "dir")],
            *[(name, double) for name in ("px", "sz", "startPosition", "closedPnl", "fee")],
            ("builderFee", double),
            ("feeToken", string),
            ("builder", string),
            ("crossed", pa.bool_()),
            ("hash", string),
            ("oid", integer),
            ("tid", integer),
            ("liquidatedUser", string),
            ("liquidationMarkPx", double),
            ("liquidationMethod", string),
        ]
    )
    timestamp = pa.timestamp("us", tz="UTC")
    stored = wire.set(0, pa.field("time", timestamp))
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {api_key}"

    def batches() -> Any:
        for start, end in windows:
            params = {"limit": PAGE_SIZE, "start": start, **({"end": end} if end else {})}
            while True:
                page = orjson.loads(session.get(url + FILLS_URL_PATH, params=params).content)
                table = pa.Table.from_pylist(page["fills"], schema=wire)
                yield from table.set_column(0, "time", table["time"].cast(timestamp)).to_batches()
                if not page.get("nextCursor"):
                    break
                params = {**params, "nextCursor": page["nextCursor"]}

    with duckdb.connect(str(workdir / DATABASE)) as connection:
        connection.register("pages", pa.RecordBatchReader.from_batches(stored, batches()))
        connection.execute(f"CREATE SCHEMA {DATASET}")
        if not keyed:
            connection.execute(f"CREATE TABLE {DATASET}.{TABLE} AS SELECT * FROM pages")
            return {}
        sql_types = {
            string: "VARCHAR",
            double: "DOUBLE",
            integer: "BIGINT",
            timestamp: "TIMESTAMPTZ",
        }
        columns = [f'"{f.name}" {sql_types.get(f.type, "BOOLEAN")}' for f in stored]
        key = ", ".join(f'"{name}"' for name in KEY)
        connection.execute(
            f"CREATE TABLE {DATASET}.{TABLE} ({', '.join(columns)}, PRIMARY KEY ({key}))"
        )
        connection.execute(f"INSERT OR IGNORE INTO {DATASET}.{TABLE} SELECT * FROM pages")
    return {}


def rest_api(url: str, api_key: str, workdir: Path, windows: Windows) -> dict[str, Any]:
    """dlt's declarative rest_api source for the same endpoint and windows, with its defaults."""
    from dlt.sources.rest_api import rest_api_source

    paginator = {"type": "cursor", "cursor_path": "nextCursor", "cursor_param": "nextCursor"}
    resources: list[Any] = [
        {
            "name": f"{TABLE}_{number}",
            "table_name": TABLE,
            "endpoint": {
                "path": FILLS_URL_PATH.removeprefix("/api/external/"),
                "params": {"limit": PAGE_SIZE, "start": start, **({"end": end} if end else {})},
                "data_selector": "fills",
                "paginator": paginator,
            },
        }
        for number, (start, end) in enumerate(windows)
    ]
    source = rest_api_source(
        {
            "client": {
                "base_url": f"{url}/api/external/",
                "auth": {"type": "bearer", "token": api_key},
            },
            "resources": resources,
        }
    )
    return run_pipeline("rest_api", source, workdir)


def ours(url: str, api_key: str, workdir: Path, windows: Windows) -> dict[str, Any]:
    """This project's source, fills only, with its defaults, run chunk after chunk until caught
    up as `hypertracker load` does (it splits the windows itself)."""
    import dlt

    from hypertracker_source import hypertracker, load_until_caught_up

    pipeline = dlt.pipeline(
        pipeline_name="bench_ours",
        destination=dlt.destinations.duckdb(str(workdir / DATABASE)),
        dataset_name=DATASET,
        pipelines_dir=str(workdir / "pipelines"),
    )
    loads = load_until_caught_up(
        pipeline, lambda: hypertracker(api_key=api_key, base_url=url).with_resources(TABLE)
    )
    return {"chunks": len(loads)}


def run_pipeline(name: str, source: Any, workdir: Path) -> dict[str, Any]:
    """Runs a source into the DuckDB file with dlt's defaults, step by step as `run` does.

    Returns each step's wall and CPU seconds, and the peak memory before the load step: what the
    pipeline itself holds, before DuckDB merges.
    """
    import dlt

    pipeline = dlt.pipeline(
        pipeline_name=f"bench_{name}",
        destination=dlt.destinations.duckdb(str(workdir / DATABASE)),
        dataset_name=DATASET,
        pipelines_dir=str(workdir / "pipelines"),
    )
    figures: dict[str, Any] = {}
    with measured() as figures["extract"]:
        pipeline.extract(source)
    with measured() as figures["normalize"]:
        pipeline.normalize()
    figures["peak_rss_before_load_mb"] = peak_rss_mb()
    with measured() as figures["load"]:
        pipeline.load()
    return figures


def landed_rows(workdir: Path) -> int:
    """How many fills the DuckDB file holds."""
    import duckdb

    with duckdb.connect(str(workdir / DATABASE), read_only=True) as connection:
        return connection.execute(f"SELECT count(*) FROM {DATASET}.{TABLE}").fetchone()[0]


PIPELINES = {"floor": floor, "keyed_floor": keyed_floor, "rest_api": rest_api, "ours": ours}
DLT_ON_FIRST_USE = ("duckdb", "dlt.common.libs.sql_alchemy_compat")
IMPORTS = {
    "floor": ("duckdb", "orjson", "pyarrow", "requests"),
    "keyed_floor": ("duckdb", "orjson", "pyarrow", "requests"),
    "rest_api": ("dlt", "dlt.sources.rest_api", *DLT_ON_FIRST_USE),
    "ours": ("dlt", "hypertracker_source", *DLT_ON_FIRST_USE),
}
"""What each pipeline imports, dlt's imports on first use included, imported before the clock
starts: a process's startup is not the work (it is in `process_cpu_s`)."""


def main(argv: list[str]) -> None:
    """Runs one pipeline and reports its measurements to the parent."""
    name, url, api_key, workdir, windows = argv
    for module in IMPORTS[name]:
        importlib.import_module(module)
    with measured() as report:
        figures = PIPELINES[name](url, api_key, Path(workdir), json.loads(windows))
    report_to_parent({**report, **figures, "rows": landed_rows(Path(workdir))})


if __name__ == "__main__":
    main(sys.argv[1:])
