"""The command line's options that set a source setting, derived from the declarations."""

import argparse
from typing import Any

from hypertracker_source.config.settings import SETTINGS, Setting

_FLAGGED = tuple(setting for setting in SETTINGS if setting.flag is not None)


def _dest(setting: Setting) -> str:
    """The name argparse gives the setting's option in the parsed arguments."""
    assert setting.flag is not None
    return setting.flag.option.removeprefix("--").replace("-", "_")


SETTING_FLAGS = {_dest(setting): setting.name for setting in _FLAGGED}
"""The options that set a source setting, by argument name: the setting each sets."""


def add_setting_flags(parser: argparse.ArgumentParser, load_only: bool = False) -> None:
    """Adds the options of the settings: those every loading command takes, or with load_only
    those only `hypertracker load` takes."""
    for setting in _FLAGGED:
        assert setting.flag is not None
        if setting.flag.load_only == load_only:
            parser.add_argument(
                setting.flag.option,
                help=f"{setting.flag.help} ({setting.flag.note}; {setting.variable})",
            )


def flags_to_settings(namespace: argparse.Namespace) -> dict[str, Any]:
    """The settings given as options on the command line, by setting name."""
    return {
        setting: getattr(namespace, arg)
        for arg, setting in SETTING_FLAGS.items()
        if getattr(namespace, arg, None)
    }
