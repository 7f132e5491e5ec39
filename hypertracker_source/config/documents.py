"""The settings as the README's table and the `init` template show them, from the declarations."""

import re
import textwrap
from typing import Any

import tomlkit

from hypertracker_source.config.settings import SETTINGS, Setting

_LINK = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
"""A Markdown link: its text is what a plain-text comment keeps."""

_TABLE_HEAD = "| setting | default | what it does |\n|---|---|---|\n"


def settings_table() -> str:
    """The README's table of the settings: name, default and meaning, one row each."""
    return _TABLE_HEAD + "".join(
        f"| `{setting.name}`{' (secret)' if setting.secret else ''} | {setting.shown_default} | "
        f"{setting.meaning} |\n"
        for setting in SETTINGS
    )


def config_lines() -> str:
    """The `init` template's commented lines of every setting that is no secret: what it does,
    its default, and its line with the default or an example."""
    return "".join(_config_line(setting) for setting in SETTINGS if not setting.secret)


def _config_line(setting: Setting) -> str:
    """A setting's comment and commented line in config.toml: the default, or an example of a
    setting whose default is none, said so."""
    about = setting.meaning[0].upper() + setting.meaning[1:]
    shown = setting.default
    if shown is None:
        about, shown = f"{about} (default: {setting.shown_default})", setting.example
    comment = textwrap.fill(
        _plain(about) + ":", width=100, initial_indent="# ", subsequent_indent="# "
    )
    return f"{comment}\n# {setting.name} = {_toml(shown)}\n"


def _plain(markdown: str) -> str:
    """Markdown as plain text: no code marks, a link as its text (a README section's, so said)."""
    return _LINK.sub(_plain_link, markdown).replace("`", "")


def _plain_link(link: re.Match[str]) -> str:
    """A Markdown link as plain text."""
    text, target = link.groups()
    return f"{text} in the README" if target.startswith("#") else text


def _toml(value: Any) -> str:
    """A value as TOML writes it on one line; a whole number of seconds without a fraction."""
    if isinstance(value, dict):
        table = tomlkit.inline_table()
        table.update(value)
        return table.as_string()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return tomlkit.item(list(value) if isinstance(value, tuple) else value).as_string()
