"""How strings that came from the API enter the page: HTML text and attributes, element ids,
plotly's text, and JSON inside a script, each escaped for its context.

Coin and cohort names are the API's: a name such as `BTC"><img src=x onerror=...>` must show as
text, never run. plotly.io escapes the JSON it writes into scripts; ids it writes unescaped.
"""

import html
import re

_SAFE_ID_CHARACTERS = re.compile(r"[A-Za-z0-9:.-]")
"""Characters an element id keeps as they are; every other one is written as _ and its code."""


def html_text(text: str) -> str:
    """Text for HTML content or a quoted attribute value: &, <, >, " and ' escaped."""
    return html.escape(text, quote=True)


def element_id(prefix: str, name: str) -> str:
    """An element id for a name, made only of letters, digits, : . - and _, one id per name.

    Hand-written: an injective slug (BTC stays BTC; `<` becomes _3c, `_` itself _5f), so that two
    names never share an id and no id needs quoting in HTML, CSS selectors or scripts.
    """
    slug = "".join(
        char if _SAFE_ID_CHARACTERS.fullmatch(char) else f"_{ord(char):x}_" for char in name
    )
    return f"{prefix}{slug}"


def chart_text(text: str) -> str:
    """Text for a plotly title, label, tick or hover: plotly.js reads <b>, <br> and entities in
    them as markup, so <, > and & are written as entities and show as themselves."""
    return html.escape(text, quote=False)
