"""The `hypertracker` command end to end: load, demo and report, in a fresh folder each."""

import re
import subprocess
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path

import dlt
import pytest
from helpers import (
    CONSOLE_SCRIPT,
    DEMO_DATABASE,
    DEMO_FILLS,
    DEMO_SEED,
    HEATMAP_COINS,
    LOCAL_DATABASE,
    POSTGRES_URL,
    TABLES,
    PipelineFactory,
    assert_error,
    cohorts,
    main_without,
    source_for,
)
from oracles import expected_cascades, expected_mark

from hypertracker_simulator import Simulator
from hypertracker_source.commands import main
from hypertracker_source.commands.docs import loaded_schema, tables_markdown
from hypertracker_source.exceptions import HyperTrackerConfigError, HyperTrackerError
from hypertracker_source.report import money, price_range
from hypertracker_source.report.settings import (
    REPORT_CASCADE_ROWS,
    REPORT_FILL_COINS,
    REPORT_RISK_COINS,
)
from hypertracker_source.report.text import duration, percent, price


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh folder to run the command in, holding dlt's pipelines and files too."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "dlt"))
    monkeypatch.setenv("DLT_LOCAL_DIR", str(tmp_path))
    monkeypatch.setenv("DLT_PROJECT_DIR", str(tmp_path))
    return tmp_path


def duckdb_counts(path: Path, dataset: str = "hypertracker") -> dict[str, int]:
    """Rows per table of a dataset in a DuckDB file."""
    counts = dlt.dataset(dlt.destinations.duckdb(str(path)), dataset).row_counts().fetchall()
    return {table: count for table, count in counts if table in TABLES}


def expected_counts(sim: Simulator) -> dict[str, int]:
    """Rows per table of a full load of a simulator."""
    return {
        "liquidation_fills": len(sim.expected_fills()),
        "liquidation_heatmap": sum(len(sim.expected_heatmap(c)) for c in HEATMAP_COINS),
        "liquidation_risk": sum(len(sim.expected_risk(s)) for s in cohorts(sim)),
        "segments": len(sim.segments),
    }


def summary_rows(output: str) -> dict[str, int]:
    """The rows per table that the summary printed."""
    return {
        table: int(count.replace(",", ""))
        for table, count in re.findall(r"^  (\w+) +([\d,]+) rows(?: \(.+\))?$", output, re.M)
    }


def summary_requests(output: str) -> tuple[int, Counter[str]]:
    """The total and per-endpoint API requests that the summary printed."""
    total, spent = re.search(r"^API requests: (\d+) \((.*)\)$", output, re.MULTILINE).groups()
    by_endpoint = Counter({name: int(n) for name, n in re.findall(r"(\w+) (\d+)", spent)})
    return int(total), by_endpoint


def test_load_demo_lands_the_simulators_data(workdir: Path, capsys: pytest.CaptureFixture):
    assert main(["load", "--demo"]) == 0

    demo = Simulator(seed=DEMO_SEED, fills=DEMO_FILLS)
    expected = expected_counts(demo)
    output = capsys.readouterr().out
    assert duckdb_counts(workdir / DEMO_DATABASE) == expected
    assert not (workdir / LOCAL_DATABASE).exists()
    assert summary_rows(output) == expected
    total, by_endpoint = summary_requests(output)
    assert total == sum(by_endpoint.values())
    assert by_endpoint["export"] == len(HEATMAP_COINS)
    assert by_endpoint["risk"] == len(cohorts(demo))
    assert by_endpoint["segments"] == by_endpoint["status"] == 1
    assert by_endpoint["fills"] >= DEMO_FILLS // 1000
    assert re.search(r"^Data version: \S+; the API updates next at \S+$", output, re.MULTILINE)


def test_load_summary_is_what_the_api_served(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    sim = simulator_settings
    assert main(["load", "--heatmap-coins", "BTC", "--segments", "9,10"]) == 0

    output = capsys.readouterr().out
    served = Counter(record.endpoint for record in sim.requests if record.host == "api")
    assert summary_requests(output) == (sum(served.values()), served)
    landed = duckdb_counts(workdir / LOCAL_DATABASE)
    assert summary_rows(output) == landed
    assert landed == {
        "liquidation_fills": len(sim.expected_fills()),
        "liquidation_heatmap": len(sim.expected_heatmap("BTC")),
        "liquidation_risk": len(sim.expected_risk(9)) + len(sim.expected_risk(10)),
        "segments": len(sim.segments),
    }


def test_a_rerun_says_how_many_fills_are_new_and_how_many_were_read_again(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    load = ["load", "--resources", "liquidation_fills"]
    assert main(load) == 0
    first = capsys.readouterr().out
    assert re.search(
        rf"^  liquidation_fills +{len(simulator_settings.expected_fills()):,} rows$", first, re.M
    )

    simulator_settings.advance_state()
    assert main(load) == 0
    again = re.search(
        r"^  liquidation_fills +([\d,]+) rows \((.+)\)$", capsys.readouterr().out, re.M
    )
    assert again is not None
    read = int(again.group(1).replace(",", ""))
    assert read > 0, "the lag re-reads the newest fills"
    assert again.group(2) == f"0 new, {read:,} already stored and read again"

    simulator_settings.advance_state(new_fills=7)
    assert main(load) == 0
    more = re.search(
        r"^  liquidation_fills +([\d,]+) rows \((.+)\)$", capsys.readouterr().out, re.M
    )
    assert more is not None
    read = int(more.group(1).replace(",", ""))
    assert more.group(2) == f"7 new, {read - 7:,} already stored and read again"
    assert duckdb_counts(workdir / LOCAL_DATABASE)["liquidation_fills"] == len(
        simulator_settings.expected_fills()
    )


def test_load_finishes_a_left_over_load_then_loads_new_data(
    workdir: Path, simulator_settings: Simulator, capsys: pytest.CaptureFixture
):
    sim = simulator_settings
    interrupted = dlt.pipeline(
        "hypertracker",
        destination=dlt.destinations.duckdb(str(workdir / LOCAL_DATABASE)),
        dataset_name="hypertracker",
    )
    interrupted.extract(source_for(sim).with_resources("liquidation_fills"))
    interrupted.normalize()
    assert interrupted.has_pending_data
    sim.advance_state(new_fills=25)

    assert main(["load", "--resources", "liquidation_fills"]) == 0

    output = capsys.readouterr().out
    assert "Finishing the load an interrupted run left behind first." in output
    assert summary_rows(output)["liquidation_fills"] >= 25
    landed = duckdb_counts(workdir / LOCAL_DATABASE)
    assert landed["liquidation_fills"] == len(sim.expected_fills())


@pytest.mark.parametrize(
    ("args", "kind", "option", "phrase"),
    [
        (["--segments", "9,99"], HyperTrackerConfigError, "--segments", "'99' is not a segment"),
        (
            ["--destination", "liquidations.duckdb", "--dataset", "liquidations"],
            HyperTrackerError,
            "--dataset",
            "share a name",
        ),
    ],
    ids=["unknown segment", "duckdb file named like the dataset"],
)
def test_bad_setting_exits_with_its_reason_first_and_no_request(
    args: list[str],
    kind: type[HyperTrackerError],
    option: str,
    phrase: str,
    workdir: Path,
    simulator_settings: Simulator,
    capsys: pytest.CaptureFixture,
):
    assert main(["load", *args]) == 1

    assert_error(capsys.readouterr().err, kind, option, phrase)
    assert simulator_settings.requests == []
    assert not list(workdir.glob("*.duckdb"))


def test_demo_command_loads_and_writes_the_report(workdir: Path):
    done = subprocess.run(
        [str(CONSOLE_SCRIPT), "demo", "--fills", "3000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr

    expected = expected_counts(Simulator(seed=DEMO_SEED, fills=3000))
    assert duckdb_counts(workdir / "hypertracker_demo.duckdb") == expected
    assert summary_rows(done.stdout) == expected
    assert re.search(
        r"^Report: hypertracker_demo.html \([\d.]+ MB, works offline", done.stdout, re.M
    )
    query = re.search(r"^Query it: (.+)$", done.stdout, re.M)
    assert query is not None
    answer = subprocess.run(
        query.group(1), shell=True, capture_output=True, text=True, timeout=60, check=True
    )
    fills_by_coin = Counter(
        fill["coin"] for fill in Simulator(seed=DEMO_SEED, fills=3000).expected_fills()
    )
    ((coin, fills),) = fills_by_coin.most_common(1)
    assert re.search(rf"│ {re.escape(coin)} +│ +{fills} │", answer.stdout), answer.stdout
    assert {path.name for path in workdir.iterdir()} == {
        "hypertracker_demo.duckdb",
        "hypertracker_demo.html",
        "dlt",
    }
    text = (workdir / "hypertracker_demo.html").read_text()
    page = ReportPage(text)
    assert [row[0] for row in page.rows("heatmaps-table")] == sorted(HEATMAP_COINS)
    assert_self_contained(text)


def test_demo_without_plotly_loads_and_says_how_to_get_the_report(workdir: Path):
    done = main_without("plotly", ["demo", "--fills", "400"])

    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == (
        "No report: it needs plotly, which is missing. Install it with pip install plotly"
    )
    assert duckdb_counts(workdir / "hypertracker_demo.duckdb")["liquidation_fills"] == 400
    assert not (workdir / "hypertracker_demo.html").exists()


def assert_self_contained(text: str) -> None:
    """A page loads nothing from elsewhere: no script, style or image by URL, plotly.js inside."""
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", text)
    assert "cdn.plot.ly" not in text.split("<script")[0]
    assert "Plotly.newPlot" in text
    assert re.search(r"plotly\.js v\d+\.\d+\.\d+", text)


class ReportPage(HTMLParser):
    """A report page read back: each table's rows by its id, and each section's notes."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.notes: dict[str, list[str]] = {}
        self._section = ""
        self._table: list[list[str]] | None = None
        self._row: list[str] | None = None
        self._text: str | None = None
        self.feed(text)

    def rows(self, table: str) -> list[list[str]]:
        """The rows of a table."""
        return self.tables[table]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Opens a section, table, row, cell or note."""
        attributes = dict(attrs)
        if tag == "section":
            self._section = attributes["id"]
            self.notes[self._section] = []
        elif tag == "table":
            self._table = self.tables.setdefault(attributes["id"], [])
        elif tag == "tr":
            self._row = []
        elif tag == "td" or (tag == "p" and attributes.get("class") == "note"):
            self._text = ""

    def handle_data(self, data: str) -> None:
        """Collects the text of an open cell or note."""
        if self._text is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        """Closes a cell, row, table or note."""
        if tag == "td":
            self._row.append(self._text)
            self._text = None
        elif tag == "tr" and self._row:
            self._table.append(self._row)
        elif tag == "p" and self._text is not None:
            self.notes[self._section].append(self._text)
            self._text = None


def expected_heatmap_rows(sim: Simulator) -> list[list[str]]:
    """The heatmap table of a report of the simulator's default coins, with their marks."""
    names = {segment["id"]: segment["name"] for segment in sim.segments}
    fills = sim.expected_fills()
    rows = []
    for coin in sorted(HEATMAP_COINS):
        bins = sim.expected_heatmap(coin)
        largest = max(bins, key=lambda row: row["liquidationValue"])
        mark = expected_mark(fills, coin)
        below = sum(row["liquidationValue"] for row in bins if row["priceBinEnd"] <= mark)
        above = sum(row["liquidationValue"] for row in bins if row["priceBinEnd"] > mark)
        rows.append(
            [
                coin,
                sim.last_update.strftime("%Y-%m-%d %H:%M"),
                "1",
                f"{len(bins):,}",
                money(sum(row["liquidationValue"] for row in bins)),
                f"{sum(row['positionsCount'] for row in bins):,}",
                price(mark),
                money(below),
                money(above),
                price_range(largest["priceBinStart"], largest["priceBinEnd"]),
                names[largest["mostImpactedSegment"]],
            ]
        )
    return rows


def expected_cascade_rows(sim: Simulator) -> list[list[str]]:
    """The cascades table of a report: the largest cascades of the simulator's fills."""
    cascades = expected_cascades(sim.expected_fills())
    largest = sorted(cascades.items(), key=lambda item: (-item[1]["notional"], item[0][1]))
    return [
        [
            coin,
            datetime.fromtimestamp(start_ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M"),
            duration(timedelta(milliseconds=cascade["ended_ms"] - start_ms)),
            f"{cascade['fills']:,}",
            f"{cascade['wallets']:,}",
            money(cascade["notional"]),
            percent(
                (cascade["last_price"] - cascade["first_price"]) / cascade["first_price"] * 100
            ),
        ]
        for (coin, start_ms), cascade in largest[:REPORT_CASCADE_ROWS]
    ]


def expected_risk_rows(sim: Simulator) -> list[list[str]]:
    """The risk table of a report: the coins most at risk over the size cohorts, then each
    coin's totals over the size cohorts and, apart, over the PnL cohorts."""
    at_risk: dict[tuple[str, str], float] = defaultdict(float)
    open_value: dict[tuple[str, str], float] = defaultdict(float)
    for segment in sim.segments:
        for item in sim.expected_risk(segment["id"]):
            at_risk[segment["category"], item["coin"]] += item["riskValue"]
            open_value[segment["category"], item["coin"]] += item["totalValue"]
    size_coins = {coin for category, coin in at_risk if category == "size"}
    ranked = sorted(size_coins, key=lambda coin: (-at_risk["size", coin], coin))
    return [
        [
            coin,
            *(
                cell
                for key in (("size", coin), ("pnl", coin))
                for cell in (
                    money(at_risk[key]),
                    money(open_value[key]),
                    f"{at_risk[key] / open_value[key]:.1%}",
                )
            ),
        ]
        for coin in ranked[:REPORT_RISK_COINS]
    ]


def expected_fills_rows(sim: Simulator) -> list[list[str]]:
    """The liquidations table of a report: longs and shorts of all coins, then the top ones."""
    fills = sim.expected_fills()
    value: dict[str, float] = defaultdict(float)
    for fill in fills:
        value[fill["coin"]] += fill["px"] * fill["sz"]
    top = sorted(value, key=lambda coin: (-value[coin], coin))[:REPORT_FILL_COINS]
    rows = []
    for label, chosen in [("All coins", fills)] + [
        (coin, [fill for fill in fills if fill["coin"] == coin]) for coin in top
    ]:
        row = [label]
        for side in ("A", "B"):
            side_fills = [fill for fill in chosen if fill["side"] == side]
            row += [f"{len(side_fills):,}", money(sum(f["px"] * f["sz"] for f in side_fills))]
        rows.append(row)
    return rows


@pytest.mark.parametrize("destination", ["duckdb", "postgres"])
def test_report_shows_the_loaded_data(
    destination: str,
    simulator: Simulator,
    make_pipeline: PipelineFactory,
    workdir: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
):
    if destination == "postgres":
        pipeline = make_pipeline(request.getfixturevalue("postgres_destination"))
        monkeypatch.setenv("DESTINATION__POSTGRES__CREDENTIALS", POSTGRES_URL)
    else:
        pipeline = make_pipeline(dlt.destinations.duckdb(str(workdir / "loaded.duckdb")))
        destination = "loaded.duckdb"
    pipeline.run(source_for(simulator))

    output = ["--output", "out/page.html"]
    assert (
        main(["report", "--destination", destination, "--dataset", pipeline.dataset_name, *output])
        == 0
    )

    text = (workdir / "out/page.html").read_text()
    page = ReportPage(text)
    assert page.rows("heatmaps-table") == expected_heatmap_rows(simulator)
    assert page.rows("risk-table") == expected_risk_rows(simulator)
    assert page.rows("liquidations-table") == expected_fills_rows(simulator)
    assert page.rows("cascades-table") == expected_cascade_rows(simulator)
    assert [path.name for path in (workdir / "out").iterdir()] == ["page.html"]
    assert_self_contained(text)
    assert f'id="heatmap-{HEATMAP_COINS[0]}"' in text


def test_report_of_fills_alone_says_what_to_load(
    simulator: Simulator, make_pipeline: PipelineFactory, workdir: Path
):
    pipeline = make_pipeline(dlt.destinations.duckdb(str(workdir / "fills.duckdb")))
    pipeline.run(source_for(simulator).with_resources("liquidation_fills"))

    args = ["--destination", "fills.duckdb", "--dataset", pipeline.dataset_name]
    assert main(["report", *args]) == 0

    page = ReportPage((workdir / "hypertracker_report.html").read_text())
    assert page.notes["heatmaps"] == [
        "This dataset has no liquidation_heatmap table: load it with "
        "`hypertracker load --resources liquidation_heatmap`."
    ]
    assert page.notes["risk"][0].startswith("This dataset has no liquidation_risk")
    assert page.rows("liquidations-table") == expected_fills_rows(simulator)
    assert page.rows("cascades-table") == expected_cascade_rows(simulator)
    assert "heatmaps-table" not in page.tables


def test_report_without_a_database_says_how_to_make_one(
    workdir: Path, capsys: pytest.CaptureFixture
):
    assert main(["report"]) == 1

    assert_error(
        capsys.readouterr().err, HyperTrackerError, phrase=f"No DuckDB file at {LOCAL_DATABASE}"
    )
    assert list(workdir.iterdir()) == []


@pytest.fixture
def segments_report(
    simulator: Simulator, make_pipeline: PipelineFactory, workdir: Path
) -> list[str]:
    """The report command of a DuckDB file, read.duckdb, with the segments loaded."""
    pipeline = make_pipeline(dlt.destinations.duckdb(str(workdir / "read.duckdb")))
    pipeline.run(source_for(simulator).with_resources("segments"))
    return ["report", "--destination", "read.duckdb", "--dataset", pipeline.dataset_name]


def test_report_of_a_dataset_that_is_not_there_names_the_ones_that_are(
    segments_report: list[str], workdir: Path, capsys: pytest.CaptureFixture
):
    *command, dataset = segments_report

    assert main([*command[:-1], "--dataset", "hypertrack"]) == 1

    error = assert_error(capsys.readouterr().err, HyperTrackerError, "--dataset", "'hypertrack'")
    assert f"loaded with dlt there: {dataset})" in error
    assert not (workdir / "hypertracker_report.html").exists()


def test_report_output_never_replaces_the_database_it_reads(
    segments_report: list[str], workdir: Path, capsys: pytest.CaptureFixture
):
    database = (workdir / "read.duckdb").read_bytes()

    assert main([*segments_report, "--output", "./read.duckdb"]) == 1

    phrase = "read.duckdb is the DuckDB file the report reads"
    assert_error(capsys.readouterr().err, HyperTrackerError, "--output", phrase)
    assert (workdir / "read.duckdb").read_bytes() == database


def test_report_output_replaces_only_its_own_reports_unless_forced(
    segments_report: list[str], workdir: Path, capsys: pytest.CaptureFixture
):
    args = segments_report
    notes = workdir / "notes.html"
    notes.write_text("<p>my notes</p>")

    assert main([*args, "--output", "notes.html"]) == 1
    phrase = "notes.html exists and is not a hypertracker report"
    assert_error(capsys.readouterr().err, HyperTrackerError, "--output", phrase)
    assert notes.read_text() == "<p>my notes</p>"

    assert main([*args, "--output", "page.html"]) == 0
    (workdir / "page.html").write_text((workdir / "page.html").read_text() + "<!-- old -->")
    assert main([*args, "--output", "page.html"]) == 0
    assert not (workdir / "page.html").read_text().endswith("<!-- old -->")

    assert main([*args, "--output", "notes.html", "--force"]) == 0
    assert "HyperTracker liquidation report" in notes.read_text()


def test_documented_columns_are_the_generated_ones():
    tables_doc = (Path(__file__).resolve().parents[1] / "docs" / "tables.md").read_text()
    documented = tables_doc.split("<!-- columns:begin -->\n", 1)[1].split(
        "<!-- columns:end -->", 1
    )[0]
    assert documented == tables_markdown(loaded_schema())


def test_load_runs_chunks_until_caught_up_and_shows_each(
    workdir: Path,
    simulator_settings: Simulator,
    capsys: pytest.CaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
):
    sim = simulator_settings
    monkeypatch.setenv("SOURCES__HYPERTRACKER__MAX_FILLS_PER_RUN", "1000")
    monkeypatch.setenv("SOURCES__HYPERTRACKER__PAGE_SIZE", "250")
    assert main(["load", "--resources", "liquidation_fills"]) == 0

    output = capsys.readouterr().out
    chunks = re.findall(
        r"^chunk (\d+): ([\d,]+) fills, (\d+) requests; (.*)$", output, re.MULTILINE
    )
    assert [int(number) for number, *_ in chunks] == list(range(1, len(chunks) + 1))
    assert len(chunks) >= 3
    assert re.fullmatch(r"\d+ reads left, \d{4}-\d\d-\d\d to .*", chunks[0][3])
    assert chunks[-1][3] == "caught up"
    fills = [int(count.replace(",", "")) for _, count, _, _ in chunks]
    assert sum(fills) == summary_rows(output)["liquidation_fills"] == len(sim.expected_fills())
    assert sum(int(spent) for *_, spent, _ in chunks) == summary_requests(output)[0]
    assert duckdb_counts(workdir / LOCAL_DATABASE)["liquidation_fills"] == len(sim.expected_fills())
