"""What tests share: the test key, the facts the README states (file names, tables, defaults),
the source for a simulator, what landed and the simulator's ground truth in comparable forms, and
assert_error for an error's type, setting and key phrase. Fixtures live in conftest.py."""

import os
import re
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import dlt
import pendulum
import requests
from dlt.common.normalizers.naming.snake_case import NamingConvention

from hypertracker_simulator import Simulator
from hypertracker_source import hypertracker
from hypertracker_source.exceptions import HyperTrackerConfigError

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
_DLT_COLUMNS = ("_dlt_load_id", "_dlt_id")
FILL_KEY = ("address", "coin", "time", "start_position", "side", "sz", "px")
"""What identifies a fill: the columns liquidation_fills merges on, as the README lists them."""
REJECTED_TABLE = "liquidation_fills_rejected"
"""Where fills that break the data contract are set apart, as the README says."""
TABLES = ("liquidation_fills", "liquidation_heatmap", "liquidation_risk", "segments")
"""The tables the source loads, as the README lists them."""
PIPELINE_NAME = "hypertracker"
"""The pipeline a plain `hypertracker load` loads with."""
LOCAL_DATABASE = "hypertracker_data.duckdb"
"""The DuckDB file a plain `hypertracker load` makes in the folder it runs in."""
HEATMAP_COINS = ("BTC", "ETH", "HYPE")
"""The coins whose heatmaps a load reads unless told otherwise, as the README says."""
CONSOLE_SCRIPT = Path(sys.executable).with_name("hypertracker")
"""The installed `hypertracker` command."""
PAGE_SIZE = 1000
LAG = timedelta(hours=1)
"""The settings page_size and lag unset, as the README's settings table gives them."""
EXIT_PIPELINE_BUSY = 75
"""The exit code of a run that another run's lock kept out, as the README says."""
DEMO_DATABASE = "hypertracker_demo.duckdb"
DEMO_SEED = 7
DEMO_FILLS = 20_000
"""The demo's file, and the simulator it loads: seed 7 and 20,000 fills, as docs/ say."""

_NAMING = NamingConvention()
"""dlt's default naming convention, which turns an API field's name into its column's."""

PipelineFactory = Callable[..., dlt.Pipeline]
"""The make_pipeline fixture: makes a pipeline (destination, name) in the test's own folder."""


def source_for(sim: Simulator, **settings: Any) -> Any:
    """The HyperTracker source pointed at a simulator."""
    return hypertracker(api_key=API_KEY, base_url=sim.url, **settings)


def cohorts(sim: Simulator) -> dict[int, str]:
    """The API's wallet cohorts (segments), id to name: one liquidation_risk resource each."""
    return {segment["id"]: segment["name"] for segment in sim.segments}


def fills_requests(sim: Simulator) -> list[dict[str, str]]:
    """The query parameters of every fills request the simulator answered."""
    return [record.params for record in sim.requests if record.endpoint == "fills"]


def landed(loaded: dlt.Pipeline | dlt.Dataset, table: str) -> list[dict[str, Any]]:
    """Every row of a loaded table (of a pipeline or a dataset), without dlt's bookkeeping."""
    dataset = loaded.dataset() if isinstance(loaded, dlt.Pipeline) else loaded
    rows = dataset[table].arrow().to_pylist()
    return [{k: v for k, v in row.items() if k not in _DLT_COLUMNS} for row in rows]


def comparable(rows: list[dict[str, Any]]) -> list[str]:
    """Rows as sorted strings, timestamps as epoch milliseconds, for comparison across places."""
    return sorted(
        repr({key: _normalised(value) for key, value in sorted(row.items())}) for row in rows
    )


def _normalised(value: object) -> object:
    """A value in a form that compares equal across destinations (naive timestamps are UTC)."""
    return epoch_ms(value) if isinstance(value, datetime) else value


def epoch_ms(moment: str | datetime) -> int:
    """An instant, ISO string or datetime, as epoch milliseconds."""
    parsed = pendulum.parse(moment) if isinstance(moment, str) else pendulum.instance(moment)
    return round(parsed.timestamp() * 1000)


def api_fill_key(fill: dict[str, Any]) -> tuple:
    """The identity of a fill as the API renders it."""
    return landed_fill_key(_as_row(fill) | {"address": fill["address"].lower()})


def landed_fill_key(row: dict[str, Any]) -> tuple:
    """The identity of a landed fill: its FILL_KEY columns, the time as epoch milliseconds."""
    return tuple(epoch_ms(row[column]) if column == "time" else row[column] for column in FILL_KEY)


def _as_row(item: dict[str, Any]) -> dict[str, Any]:
    """An API item under the column names dlt gives its fields (snake_case)."""
    return {_NAMING.normalize_identifier(name): value for name, value in item.items()}


def _api_fill_values(fill: dict[str, Any]) -> tuple:
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


def _landed_fill_values(row: dict[str, Any]) -> tuple:
    """The values of a landed fill, in the order of _api_fill_values."""
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
    landed_by_key = {landed_fill_key(row): _landed_fill_values(row) for row in rows}
    expected_by_key = {api_fill_key(fill): _api_fill_values(fill) for fill in expected}
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


def _as_columns(rows: list[dict[str, Any]], **stamps: Any) -> Counter[tuple]:
    """API items as landed rows, with stamp columns added, comparable as a multiset."""
    return Counter(tuple(sorted((_as_row(row) | stamps).items())) for row in rows)


def assert_snapshots_equal(
    pipeline: dlt.Pipeline, sim: Simulator, coins: Sequence[str], segment_ids: Sequence[int]
) -> None:
    """The landed heatmaps and risk are exactly the simulator's current version of them."""
    stamp = {"snapshot_at": sim.last_update}
    expected_heatmap: Counter[tuple] = Counter()
    for coin in coins:
        expected_heatmap += _as_columns(sim.expected_heatmap(coin), **stamp)
    expected_risk: Counter[tuple] = Counter()
    for segment_id in segment_ids:
        rows = sim.expected_risk(segment_id)
        expected_risk += _as_columns(rows, segment_id=segment_id, **stamp)
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


def free_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def command_env(**variables: str) -> dict[str, str]:
    """The environment of a command run as a user would: dlt's default [runtime] settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RUNTIME__", "SOURCES__"))}
    return {**env, **variables}


def main_without(module: str, argv: list[str]) -> subprocess.CompletedProcess:
    """Runs the `hypertracker` command in a fresh interpreter that cannot import `module`."""
    blocked = (
        f"import sys; sys.modules[{module!r}] = None; from hypertracker_source.commands import main"
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
    text = _error_text(error, kind)
    if setting:
        named = setting if setting.startswith("--") else f"sources.hypertracker.{setting}"
        assert re.search(rf"{re.escape(named)}(?![\w-])", text), f"{named} is not named: {text}"
    if isinstance(error, HyperTrackerConfigError) and setting and not setting.startswith("--"):
        assert error.setting == setting, text
    assert phrase in text, f"{phrase!r} is not said: {text}"
    return text


def _error_text(error: BaseException | str, kind: type[BaseException]) -> str:
    """What an error of the kind says: a raised one's text, or the command's one line after
    `hypertracker: error: Kind: `."""
    if isinstance(error, BaseException):
        assert isinstance(error, kind), f"{type(error).__name__}, not {kind.__name__}: {error}"
        return str(error)
    assert len(error.splitlines()) == 1, f"not one line, or a traceback too: {error}"
    head = f"{CLI_ERROR}{kind.__name__}: "
    assert error.startswith(head), error
    return error.strip().removeprefix(head)
