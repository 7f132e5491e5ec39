"""The report opened in headless Chromium: it renders, logs no error, and shows the database."""

import base64
import json
import os
import re
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dlt
import pytest
from chromium import REPLY_SECONDS, DevTools, headless_chromium, new_tab
from conftest import TwoLoads
from helpers import API_KEY, PipelineFactory, source_for
from oracles import expected_cascades

from hypertracker_simulator import Simulator
from hypertracker_source.config.defaults import DEFAULT_HEATMAP_COINS
from hypertracker_source.report import write_report
from hypertracker_source.report.page import PAGE_TITLE
from hypertracker_source.report.text import NUMBER_RULE

WIDTHS = (1400, 800)

FIGURES_SCRIPT = """
(() => {
  const figures = {};
  document.querySelectorAll(".js-plotly-plot").forEach((plot) => {
    figures[plot.id] = {
      traces: plot.data.map((trace) => ({
        x: trace.x, y: trace.y, size: trace.marker && trace.marker.size, visible: trace.visible,
      })),
      marks: (plot.layout.shapes || []).map((shape) => shape.x0),
      frames: plot._transitionData._frames.map((frame) => frame.name),
    };
  });
  return figures;
})()
"""
"""The data of every chart as plotly.js holds it in the page."""


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One headless Chromium for the module's tests: its DevTools address."""
    with headless_chromium(tmp_path_factory.mktemp("chromium-profile")) as endpoint:
        yield endpoint


@pytest.fixture
def browser(chromium: str) -> Iterator[DevTools]:
    """A tab of the test's own in the shared Chromium, closed after the test."""
    with new_tab(chromium) as session:
        yield session


@pytest.fixture(scope="module")
def report_page(two_loads: TwoLoads, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the shared DuckDB's two loads, written once for the tests that open it."""
    return write_report(two_loads.pipeline.dataset(), tmp_path_factory.mktemp("report") / "r.html")


def open_page(
    session: DevTools, page: Path, width: int, charts: int = len(DEFAULT_HEATMAP_COINS) + 2
) -> None:
    """Loads the page at a window width and waits until every chart is drawn."""
    session.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=1000,
        deviceScaleFactor=1,
        mobile=False,
    )
    session.events = [
        event for event in session.events if event.get("method") != "Page.loadEventFired"
    ]
    session.call("Page.navigate", url=page.as_uri())
    session.wait_for("Page.loadEventFired")
    deadline = time.monotonic() + REPLY_SECONDS
    while session.evaluate("document.querySelectorAll('.main-svg').length") < charts:
        if time.monotonic() > deadline:
            raise TimeoutError("the charts were not drawn")
        time.sleep(0.1)


def screenshot(session: DevTools, path: Path, width: int) -> int:
    """Saves the whole page as a PNG at a width; returns the image's width in pixels."""
    height = session.call("Page.getLayoutMetrics")["cssContentSize"]["height"]
    session.call(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=int(height),
        deviceScaleFactor=1,
        mobile=False,
    )
    image = base64.b64decode(session.call("Page.captureScreenshot", format="png")["data"])
    path.write_bytes(image)
    copies = os.environ.get("HYPERTRACKER_SCREENSHOTS")
    if copies:
        shutil.copy(path, Path(copies) / path.name)
    return struct.unpack(">I", image[16:20])[0]


def query(pipeline: dlt.Pipeline, sql: str) -> list[dict[str, Any]]:
    """Rows of a query on the pipeline's dataset."""
    return pipeline.dataset().query(sql, query_dialect="duckdb").arrow().to_pylist()


@pytest.mark.slow
def test_report_renders_in_chromium_and_shows_the_database(
    browser: DevTools, two_loads: TwoLoads, report_page: Path, tmp_path: Path
):
    simulator, pipeline = two_loads
    open_page(browser, report_page, WIDTHS[0])
    figures = browser.evaluate(FIGURES_SCRIPT)

    assert browser.errors() == []
    snapshots = query(
        pipeline,
        "SELECT coin, snapshot_at, SUM(liquidation_value) AS value FROM liquidation_heatmap "
        "GROUP BY coin, snapshot_at ORDER BY coin, snapshot_at",
    )
    for coin in DEFAULT_HEATMAP_COINS:
        heatmap = figures[f"heatmap-{coin}"]
        older, latest = [row for row in snapshots if row["coin"] == coin]
        (mark,) = query(
            pipeline,
            "SELECT liquidation_mark_px AS px FROM liquidation_fills "
            f"WHERE coin = '{coin}' ORDER BY time DESC, address DESC, start_position DESC LIMIT 1",
        )
        assert sum(heatmap["traces"][0]["y"]) == pytest.approx(latest["value"])
        assert heatmap["marks"] == [mark["px"]]
        assert len(heatmap["frames"]) == 2
        stepped = browser.evaluate(
            f"Plotly.animate('heatmap-{coin}', [{json.dumps(heatmap['frames'][0])}], "
            "{mode: 'immediate', frame: {duration: 0}, transition: {duration: 0}})"
            f".then(() => document.getElementById('heatmap-{coin}').data[0].y"
            ".reduce((a, b) => a + b, 0))"
        )
        print(coin, stepped, older["value"], latest["value"], heatmap["frames"])
        assert stepped == pytest.approx(older["value"])

    sides = {
        row["side"]: row["value"]
        for row in query(
            pipeline, "SELECT side, SUM(px * sz) AS value FROM liquidation_fills GROUP BY side"
        )
    }
    longs, shorts, cascades = figures["liquidations-chart"]["traces"][:3]
    assert sum(longs["y"]) == pytest.approx(sides["A"])
    assert sum(shorts["y"]) == pytest.approx(-sides["B"])
    assert len(cascades["x"]) == len(expected_cascades(simulator.expected_fills()))

    risk = {
        (row["name"], row["coin"]): row["risk_value"]
        for row in query(
            pipeline,
            "SELECT s.name, r.coin, r.risk_value FROM liquidation_risk AS r "
            "JOIN segments AS s ON s.id = r.segment_id WHERE r.snapshot_at = "
            "(SELECT MAX(snapshot_at) FROM liquidation_risk)",
        )
    }
    size_cohorts = figures["risk-chart"]["traces"][0]
    points = list(zip(size_cohorts["y"], size_cohorts["x"], size_cohorts["size"], strict=True))
    assert len(points) > 20
    assert all(size == risk[cohort, coin] for cohort, coin, size in points)

    last_coin = sorted(DEFAULT_HEATMAP_COINS)[-1]
    shown = browser.evaluate(
        "(() => { const picker = document.getElementById('heatmap-coin');"
        f" picker.value = {json.dumps(last_coin)};"
        " picker.dispatchEvent(new Event('change'));"
        " return [...document.querySelectorAll('[data-group=heatmap-coin]')]"
        ".filter((box) => !box.classList.contains('hidden')).map((box) => box.dataset.value); })()"
    )
    assert shown == [last_coin]

    for width in WIDTHS:
        open_page(browser, report_page, width)
        assert browser.evaluate("document.documentElement.scrollWidth") <= width
        assert screenshot(browser, tmp_path / f"report-{width}.png", width) == width
    assert browser.errors() == []


HOSTILE_RISK_COINS = (
    "<script>window.pwned = 'script'</script>",
    '"><img src=x onerror="window.pwned = \'img\'">',
    "</script><!--<script>window.pwned = 'comment'</script>",
)
"""Coin names as an attacker could make the API return them, each setting window.pwned if run."""
HOSTILE_HEATMAP_COIN = 'x")&&(window.pwned="id")&&("'
"""A heatmap coin (no space nor slash: the coins setting refuses them) that runs if an element id
is written unescaped into plotly's script."""

USD_TEXT = re.compile(r"\$\u2212?\d+(\.\d+)?[kMBT]?")
"""A dollar figure as the page writes it everywhere: $0, $912, $3.44M, $102.45k, $\u22125M."""

LABELS_SCRIPT = """
(() => {
  const plot = document.getElementById('risk-chart');
  const area = plot.querySelector('.main-svg').getBoundingClientRect();
  const xa = plot._fullLayout.xaxis, ya = plot._fullLayout.yaxis;
  const labels = [...plot.querySelectorAll('.scatterlayer .textpoint text')]
    .filter((node) => node.textContent)
    .map((node) => { const r = node.getBoundingClientRect();
                     return [node.textContent, r.left, r.top, r.right, r.bottom]; });
  return {labels, plot: [area.left + xa._offset, area.top + ya._offset,
                         area.left + xa._offset + xa._length, area.top + ya._offset + ya._length]};
})()
"""
"""The risk chart's bubble labels as boxes [text, left, top, right, bottom], and its plot area."""

CASCADES_SCRIPT = """
(() => {
  const plot = document.getElementById('liquidations-chart');
  const area = plot.querySelector('.main-svg').getBoundingClientRect();
  const ya = plot._fullLayout.yaxis2;
  const boxes = [...plot.querySelectorAll('.cartesianlayer .xy2 .scatterlayer .points path')]
    .map((node) => node.getBoundingClientRect()).filter((r) => r.width > 0);
  return {count: boxes.length, top: Math.min(...boxes.map((r) => r.top)),
          bottom: Math.max(...boxes.map((r) => r.bottom)),
          area: [area.top + ya._offset, area.top + ya._offset + ya._length]};
})()
"""
"""The cascade markers' extent on screen, and the cascade panel's."""


def overlapping(boxes: list[list[Any]]) -> list[tuple[str, str]]:
    """The pairs of label boxes that overlap."""
    return [
        (a[0], b[0])
        for index, a in enumerate(boxes)
        for b in boxes[index + 1 :]
        if a[1] < b[3] and b[1] < a[3] and a[2] < b[4] and b[2] < a[4]
    ]


def outside(boxes: list[list[Any]], area: list[float]) -> list[str]:
    """The label boxes that reach outside an area [left, top, right, bottom]."""
    left, top, right, bottom = area
    return [
        box[0]
        for box in boxes
        if box[1] < left or box[3] > right or box[2] < top or box[4] > bottom
    ]


@pytest.mark.slow
def test_report_fits_800_px_in_one_number_format_with_risk_groups_apart(
    browser: DevTools, report_page: Path
):
    for width in WIDTHS:
        open_page(browser, report_page, width)
        for group in (0, 1):
            browser.evaluate(
                f"Plotly.restyle('risk-chart', {{visible: {json.dumps([group == 0, group == 1])}}})"
                ".then(() => null)"
            )
            risk = browser.evaluate(LABELS_SCRIPT)
            assert len(risk["labels"]) >= 5
            assert overlapping(risk["labels"]) == []
            assert outside(risk["labels"], risk["plot"]) == []
        cascades = browser.evaluate(CASCADES_SCRIPT)
        assert cascades["count"] > 0
        assert cascades["area"][0] < cascades["top"] and cascades["bottom"] < cascades["area"][1]
        for coin in DEFAULT_HEATMAP_COINS:
            tallest, top = browser.evaluate(
                f"(() => {{ const plot = document.getElementById('heatmap-{coin}');"
                " return [Math.max(...plot.data[0].y), plot._fullLayout.yaxis.range[1]]; })()"
            )
            assert top >= 1.1 * tallest
    assert browser.errors() == []

    figures = browser.evaluate(
        "[...document.querySelectorAll('td, .ytick text, .xtick text, .textpoint text')]"
        ".map((node) => node.textContent).filter((text) => text.includes('$'))"
    )
    assert len(figures) > 100
    for text in figures:
        assert all(USD_TEXT.fullmatch(part) for part in text.split(" to ")), text
    assert NUMBER_RULE in browser.evaluate("document.body.textContent")
    headers = browser.evaluate(
        "[...document.querySelectorAll('#risk-table th')].map((node) => node.textContent)"
    )
    assert headers == [
        "coin",
        *(
            f"{column}, {group}"
            for group in ("size cohorts", "PnL cohorts")
            for column in ("value at risk", "open value", "share at risk")
        ),
    ]
    intro = browser.evaluate("document.querySelector('#risk p').textContent")
    assert "shown apart and never summed together" in intro


def test_report_shows_hostile_coin_names_as_text_and_runs_none_of_them(
    browser: DevTools, make_pipeline: PipelineFactory, tmp_path: Path
):
    heatmap_coins = ("BTC", HOSTILE_HEATMAP_COIN)
    with Simulator(
        seed=7,
        fills=400,
        api_key=API_KEY,
        heatmap_coins=heatmap_coins,
        extra_coins=HOSTILE_RISK_COINS,
    ) as simulator:
        pipeline = make_pipeline()
        pipeline.run(source_for(simulator, heatmap_coins=list(heatmap_coins)))
    page = write_report(pipeline.dataset(), tmp_path / "hostile.html")

    open_page(browser, page, WIDTHS[0], charts=len(heatmap_coins) + 2)

    assert browser.evaluate("typeof window.pwned") == "undefined"
    assert browser.evaluate("document.title") == PAGE_TITLE
    assert browser.evaluate("document.querySelectorAll('img').length") == 0
    assert browser.errors() == []
    texts = browser.evaluate(
        "(() => { const texts = (selector) => [...document.querySelectorAll(selector)]"
        ".map((node) => node.textContent);"
        " return {heatmaps: texts('#heatmaps-table td:first-child'),"
        " options: texts('#heatmap-coin option'), risk: texts('#risk-table td:first-child'),"
        " ticks: texts('#risk-chart .xtick text'), titles: texts('.gtitle'),"
        " plots: [...document.querySelectorAll('.js-plotly-plot')].map((node) => node.id)}; })()"
    )
    assert texts["heatmaps"] == texts["options"] == sorted(heatmap_coins)
    assert set(HOSTILE_RISK_COINS) <= set(texts["risk"])
    assert set(HOSTILE_RISK_COINS) <= set(texts["ticks"])
    assert f"{HOSTILE_HEATMAP_COIN}: USD liquidated at each price" in texts["titles"]
    assert len(texts["plots"]) == len(heatmap_coins) + 2
    assert all(re.fullmatch(r"[A-Za-z0-9:._-]+", plot_id) for plot_id in texts["plots"])
    shown = browser.evaluate(
        "(() => { const picker = document.getElementById('heatmap-coin');"
        f" picker.value = {json.dumps(HOSTILE_HEATMAP_COIN)};"
        " picker.dispatchEvent(new Event('change'));"
        " return [...document.querySelectorAll('[data-group=heatmap-coin]')]"
        ".filter((box) => !box.classList.contains('hidden')).map((box) => box.dataset.value); })()"
    )
    assert shown == [HOSTILE_HEATMAP_COIN]
