"""The declared settings as dlt injects them into the source: given, or from its config section."""

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from dlt.common.configuration import known_sections
from dlt.common.configuration.inject import with_config

from hypertracker_source.config.settings import SOURCE_NAME, Setting


def _settings_signature(settings: Iterable[Setting]) -> inspect.Signature:
    """The keyword parameters of these settings: name, type and default, as the source's."""
    return inspect.Signature(
        [
            inspect.Parameter(
                setting.name,
                inspect.Parameter.KEYWORD_ONLY,
                default=setting.default,
                annotation=setting.annotation,
            )
            for setting in settings
        ]
    )


def injected_settings(settings: Iterable[Setting], name: str) -> Callable[..., dict[str, Any]]:
    """A function, named so, that returns these settings by name: each given to it, or resolved
    from dlt config as the source resolves it."""

    def settings_as_resolved(**resolved: Any) -> dict[str, Any]:
        return resolved

    # Hand-written: dlt's with_config derives what it injects from a function's signature only;
    # this function's is made from the declarations. dlt names its configuration after the name.
    settings_as_resolved.__qualname__ = name
    settings_as_resolved.__signature__ = _settings_signature(settings)  # type: ignore[attr-defined]
    return with_config(settings_as_resolved, sections=(known_sections.SOURCES, SOURCE_NAME))
