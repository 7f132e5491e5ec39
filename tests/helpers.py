"""What tests share: the test key, the source for a simulator, and reading back what landed and
the simulator's ground truth in comparable forms. Fixtures live in conftest.py."""

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import Any

import dlt
import pendulum
import requests

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.exceptions import HyperTrackerConfigError
from hypertracker_source.schema import HEATMAP_FIELDS, RISK_FIELDS, ApiField

CLI_ERROR = "hypertracker: error: "
"""How the command's one line of a failure begins, before the error's type."""
API_KEY = "sim-test-key-7f3a"
FILLS = "/api/external/fills/liquidation"
SEGMENTS = "/api/external/segments"
STATUS = "/api/external/hypertracker/state/status"
POSTGRES_URL = "postgresql://postgres:trust@127.0.0.1:5432/test"
"""The local server trusts every connection; dlt insists on a password, so one is given."""
MARIADB_URL = "mysql+pymysql://root:@127.0.0.1:3306/test"
"""The local MariaDB server: user root, no password, through dlt's sqlalchemy destination."""
DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")
TABLES = ("liquidation_fills", "liquidation_heatmap", "liquidation_risk", "segments")
"""The tables the source loads, as the README lists them."""
LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file a plain `hypertracker load` makes in the folder it runs in."""
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_SEED = 7
DEMO_FILLS = 20_000
"""The demo's file, and the simulator it loads: seed 7 and 20,000 fills, as docs/ say."""

PipelineFactory = Callable[..., dlt.Pipeline]
"""The make_pipeline fixture: makes a pipeline (destination, name) in the test's own folder."""


def source_for(sim: Simulator, **settings: Any) -> Any:
    """The HyperTracker source pointed at a simulator."""
    return hypertracker(api_key=API_KEY, base_url=sim.url, **settings)


def fills_requests(sim: Simulator) -> list[dict[str, str]]:
    """The query parameters of every fills request the simulator answered."""
    return [record.params for record in sim.requests if record.endpoint == "fills"]


def landed(loaded: dlt.Pipeline | dlt.Dataset, table: str) -> list[dict[str, Any]]:
    """Every row of a loaded table (of a pipeline or a dataset), without dlt's bookkeeping."""
    dataset = loaded.dataset() if isinstance(loaded, dlt.Pipeline) else loaded
    rows = dataset[table].arrow().to_pylist()
    return [{k: v for k, v in row.items() if k not in DLT_COLUMNS} for row in rows]


def comparable(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted strings, timestamps as epoch milliseconds, for comparison across places."""
    return sorted(
        repr({key: normalised(value) for key, value in sorted(row.items())}) for row in rows
    )


def normalised(value: object) -> object:
    """A value in a form that compares equal across destinations (naive timestamps are UTC)."""
    return epoch_ms(value) if isinstance(value, datetime) else value


def epoch_ms(moment: str | datetime) -> int:
    """An instant, ISO string or datetime, as epoch milliseconds."""
    parsed = pendulum.parse(moment) if isinstance(moment, str) else pendulum.instance(moment)
    return round(parsed.timestamp() * 1000)


def api_fill_key(fill: dict[str, Any]) -> tuple:
    """The identity of a fill as the API renders it."""
    return (
        fill["address"].lower(),
        fill["coin"],
        epoch_ms(fill["time"]),
        fill["startPosition"],
        fill["side"],
        fill["sz"],
        fill["px"],
    )


def landed_fill_key(row: dict[str, Any]) -> tuple:
    """The identity of a landed fill."""
    return (
        row["address"],
        row["coin"],
        epoch_ms(row["time"]),
        row["start_position"],
        row["side"],
        row["sz"],
        row["px"],
    )


def api_fill_values(fill: dict[str, Any]) -> tuple:
    """The values of a fill as the API renders it, missing fields as None."""
    return (
        fill.get("tid"),
        fill.get("oid"),
        fill["closedPnl"],
        None if fill.get("builderFee") is None else float(fill["builderFee"]),
        float(fill["fee"]),
        fill["hash"],
        fill["liquidationMethod"],
        fill.get("crossed"),
        fill["liquidatedUser"].lower(),
    )


def landed_fill_values(row: dict[str, Any]) -> tuple:
    """The values of a landed fill, in the order of api_fill_values."""
    return (
        row["tid"],
        row["oid"],
        row["closed_pnl"],
        row["builder_fee"],
        row["fee"],
        row["hash"],
        row["liquidation_method"],
        row["crossed"],
        row["liquidated_user"],
    )


def assert_fills_equal(
    pipeline: dlt.Pipeline | dlt.Dataset, expected: list[dict[str, Any]]
) -> None:
    """The landed fills are exactly the expected ones: same identities, values, no duplicate."""
    rows = landed(pipeline, "liquidation_fills")
    keys = [landed_fill_key(row) for row in rows]
    assert len(keys) == len(set(keys)), "duplicate fills landed"
    landed_by_key = {landed_fill_key(row): landed_fill_values(row) for row in rows}
    expected_by_key = {api_fill_key(fill): api_fill_values(fill) for fill in expected}
    assert len(expected_by_key) == len(expected)
    assert landed_by_key.keys() == expected_by_key.keys()
    assert landed_by_key == expected_by_key


def fills_state(pipeline: dlt.Pipeline) -> dict[str, Any]:
    """The fills resource's state in a pipeline: each filter's marks and unfinished reads."""
    sources = pipeline.state.get("sources", {})
    resources = sources.get("hypertracker", {}).get("resources", {})
    return dict(resources.get("liquidation_fills", {}).get("filters", {}))


def high_water_marks(pipeline: dlt.Pipeline) -> dict[str, str]:
    """Each filter's mark: the newest fill its finished reads read, else its history's end."""
    return {
        key: marks.get("newest") or marks["history_until"]
        for key, marks in fills_state(pipeline).items()
    }


def as_columns(
    rows: list[dict[str, Any]], fields: Sequence[ApiField], **stamps: Any
) -> Counter[tuple]:
    """API rows as their column values, with stamp columns added, comparable as a multiset."""
    return Counter(
        tuple(sorted(({f.column: row.get(f.api_name) for f in fields} | stamps).items()))
        for row in rows
    )


def assert_snapshots_equal(
    pipeline: dlt.Pipeline, sim: Simulator, coins: Sequence[str], segment_ids: Sequence[int]
) -> None:
    """The landed heatmaps and risk are exactly the simulator's current version of them."""
    stamp = {"snapshot_at": sim.last_update}
    expected_heatmap: Counter[tuple] = Counter()
    for coin in coins:
        expected_heatmap += as_columns(sim.expected_heatmap(coin), HEATMAP_FIELDS, **stamp)
    expected_risk: Counter[tuple] = Counter()
    for segment_id in segment_ids:
        rows = sim.expected_risk(segment_id)
        expected_risk += as_columns(rows, RISK_FIELDS, segment_id=segment_id, **stamp)
    landed_heatmap = Counter(
        tuple(sorted(r.items())) for r in landed(pipeline, "liquidation_heatmap")
    )
    landed_risk = Counter(tuple(sorted(r.items())) for r in landed(pipeline, "liquidation_risk"))
    assert landed_heatmap == expected_heatmap
    assert landed_risk == expected_risk


def heatmap_path(coin: str) -> str:
    """The API path of a coin's heatmap export."""
    return f"/api/external/exports/coins/{coin}/liquidation-heatmap"


def risk_path(segment_id: int | str) -> str:
    """The API path of a cohort's liquidation risk."""
    return f"/api/external/{segment_id}/assets/liquidation-risk"


def iso(value_ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 string."""
    moment = datetime.fromtimestamp(value_ms / 1000, timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def fetch(
    client: requests.Session,
    sim: Simulator,
    path: str,
    allow_redirects: bool = True,
    **params: Any,
) -> requests.Response:
    """A GET of an API path."""
    return client.get(sim.url + path, params=params, allow_redirects=allow_redirects, timeout=10)


def all_pages(
    client: requests.Session, sim: Simulator, **params: Any
) -> tuple[list[dict[str, Any]], int]:
    """Every fill of a query, following nextCursor, and how many pages it took."""
    fills: list[dict[str, Any]] = []
    pages = 0
    cursor = None
    while True:
        page_params = params if cursor is None else {**params, "nextCursor": cursor}
        answer = fetch(client, sim, FILLS, **page_params)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages += 1
        assert body["fills"] or pages == 1, "a cursor led to an empty page"
        fills += body["fills"]
        cursor = body["nextCursor"]
        if cursor is None:
            return fills, pages


def main_without(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Runs the `hypertracker` command in a fresh interpreter that cannot import `module`."""
    blocked = (
        f"import sys; sys.modules[{module!r}] = None; "
        "from hypertracker_source.commands.cli import main"
    )
    return subprocess.run(
        [sys.executable, "-c", f"{blocked}; sys.exit(main({argv!r}))"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def assert_error(
    error: BaseException | str,
    kind: type[BaseException],
    setting: str | None = None,
    phrase: str = "",
) -> str:
    """An error, raised or the command's one line of stderr, is of its kind, names its setting
    (`page_size`) or option (`--segments`) and says its key phrase; returns what it says."""
    if isinstance(error, BaseException):
        assert isinstance(error, kind), f"{type(error).__name__}, not {kind.__name__}: {error}"
        text = str(error)
        if setting and not setting.startswith("--") and isinstance(error, HyperTrackerConfigError):
            assert error.setting == setting, text
    else:
        (line,) = error.splitlines()
        assert line.startswith(f"{CLI_ERROR}{kind.__name__}: "), line
        text = line.removeprefix(f"{CLI_ERROR}{kind.__name__}: ")
    if setting:
        named = setting if setting.startswith("--") else f"sources.hypertracker.{setting}"
        assert re.search(rf"{re.escape(named)}(?![\w-])", text), f"{named} is not named: {text}"
    assert phrase in text, f"{phrase!r} is not said: {text}"
    return text
