"""Unit tests of how the report writes figures and escapes the API's strings."""

import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hypertracker_source.report.markup import chart_text, element_id, html_text
from hypertracker_source.report.text import duration, money, price, price_range

HOSTILE = (
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "</script><!--",
    "x')&&(alert(1))&&('",
    "a&b",
)


@pytest.mark.parametrize(
    ("value", "amount", "quoted_price"),
    [
        (0, "$0", "$0"),
        (0.0118342, "$0.0118", "$0.011834"),
        (42.5, "$42.5", "$42.5"),
        (912, "$912", "$912"),
        (999.6, "$1k", "$999.6"),
        (3_620.8, "$3.62k", "$3.6208k"),
        (60_000, "$60k", "$60k"),
        (102_450, "$102k", "$102.45k"),
        (999_999, "$1M", "$1M"),
        (3_440_000, "$3.44M", "$3.44M"),
        (1.27e9, "$1.27B", "$1.27B"),
        (-5e6, "$\u22125M", "$\u22125M"),
    ],
)
def test_amounts_and_prices_are_written_as_the_charts_axes_write_them(
    value: float, amount: str, quoted_price: str
):
    assert money(value) == amount
    assert price(value) == quoted_price


def test_a_price_range_tells_neighbouring_bins_apart():
    assert price_range(99_843.2, 100_712.0) == "$99.843k to $100.71k"
    assert price_range(3_708.1, 3_755.0) == "$3.7081k to $3.755k"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0, "0 s"), (42.4, "42 s"), (185, "3 min 05 s"), (3_720, "1 h 02 min")],
)
def test_durations_are_written_to_the_second(seconds: float, text: str):
    assert duration(timedelta(seconds=seconds)) == text


@given(st.text(min_size=1, max_size=20), st.text(min_size=1, max_size=20))
def test_element_ids_are_safe_and_one_per_name(first: str, second: str):
    for name in (first, second):
        assert re.fullmatch(r"heatmap-[A-Za-z0-9:._-]+", element_id("heatmap-", name))
    if first != second:
        assert element_id("heatmap-", first) != element_id("heatmap-", second)


def test_plain_coin_names_keep_their_ids():
    assert element_id("heatmap-", "BTC") == "heatmap-BTC"
    assert element_id("heatmap-", "xyz:MSTR") == "heatmap-xyz:MSTR"


class TextOnly(HTMLParser):
    """An HTML fragment read back: its tags, and its text with entities decoded."""

    def __init__(self, fragment: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.text = ""
        self.feed(fragment)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        """Records a tag."""
        self.tags.append(tag)

    def handle_data(self, data: str) -> None:
        """Collects text."""
        self.text += data


@pytest.mark.parametrize("name", HOSTILE)
def test_api_strings_stay_text_in_html_attributes_and_charts(name: str):
    cell = TextOnly(f"<td>{html_text(name)}</td>")
    assert (cell.tags, cell.text) == (["td"], name)
    attribute = TextOnly(f'<option value="{html_text(name)}">x</option>')
    assert attribute.tags == ["option"]
    assert "<" not in chart_text(name) and ">" not in chart_text(name)
    assert TextOnly(chart_text(name)).text == name
