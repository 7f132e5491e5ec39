"""`hypertracker check`: one request that proves the key and the address."""

import argparse
import sys
from typing import Any

import dlt

from hypertracker_source.api.budget import pipeline_ledger
from hypertracker_source.api.client import HyperTrackerClient
from hypertracker_source.api.endpoints import STATUS
from hypertracker_source.api.errors import RERUN_ADVICE
from hypertracker_source.commands.options import AddCommand
from hypertracker_source.config.injection import injected_settings
from hypertracker_source.config.resolve import (
    CLIENT_SETTINGS,
    SourceSettings,
    resolve_client_settings,
    resolve_settings,
)
from hypertracker_source.config.settings import SETTING_VARIABLE, SETTINGS
from hypertracker_source.exceptions import HyperTrackerApiError, HyperTrackerBudgetError

_CHECK_ADVICE = "Nothing was loaded: check only asks the API's status"
"""What a failed check did, in place of a load's advice."""


_client_settings = injected_settings(CLIENT_SETTINGS, "client_settings")
_planned_settings = injected_settings(
    [setting for setting in SETTINGS if setting.name != "end_date"], "planned_settings"
)


def configured_client(pipeline: Any = None, **given: Any) -> HyperTrackerClient:
    """A client with the key, address, pace, answer limits and request budget that the source
    resolves from dlt config, or of the settings given (the client's, of any); its requests count
    into the pipeline's spend when one is given."""
    own = {setting.name for setting in CLIENT_SETTINGS}
    settings = resolve_client_settings(
        **_client_settings(**{name: value for name, value in given.items() if name in own})
    )
    ledger = pipeline_ledger(pipeline, settings.budget) if pipeline is not None else None
    return HyperTrackerClient(
        settings.base_url,
        settings.api_key,
        settings.requests_per_minute,
        response_deadline=settings.response_deadline,
        max_body_bytes=settings.max_body_bytes,
        ledger=ledger,
    )


def register(add_command: AddCommand) -> None:
    """Adds `check` to the command line."""
    check = add_command(
        "check",
        help="one API request that proves the key and the address, and shows the data version",
        description="Send one request to the API's status with the key and address that "
        f"`hypertracker load` would use ({SETTING_VARIABLE.format('API_KEY')}, "
        f"{SETTING_VARIABLE.format('BASE_URL')}, or .dlt/secrets.toml and .dlt/config.toml), "
        "and print the API's data version. Nothing is loaded.",
    )
    check.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker check`: one request to the API's status, with the configured key."""
    client = configured_client()
    print(
        f"Asking HyperTracker at {client.base_url} for its status (1 request, up to "
        f"{client.attempts} attempts)...",
        flush=True,
    )
    status = _checked_status(client)
    print(
        f"HyperTracker at {client.base_url} accepted the key (1 request). Data version: "
        f"{status.get('lastUpdate')}; the API updates next at {status.get('nextUpdate')}"
    )


def _api_status(client: HyperTrackerClient) -> dict[str, str]:
    """The API's state status: lastUpdate, nextUpdate, nextUpdateThreshold (one request)."""
    return client.get_json(STATUS)


def status_within_budget(pipeline: dlt.Pipeline) -> dict[str, str] | None:
    """The API's status (one request, counted in the pipeline's spend), or None when the
    request budget is spent, which it says."""
    try:
        return _api_status(configured_client(pipeline=pipeline))
    except HyperTrackerBudgetError as spent:
        print(f"Not asking the API: {spent}", file=sys.stderr)
        return None


def _checked_status(client: HyperTrackerClient) -> dict[str, str]:
    """The API's status as `hypertracker check` asks it: its failure says what check did."""
    try:
        return _api_status(client)
    except HyperTrackerApiError as error:
        message = str(error).replace(RERUN_ADVICE, _CHECK_ADVICE)
        raise type(error)(message, error.status_code) from None


def configured_settings(**given: Any) -> SourceSettings:
    """The source's settings as `hypertracker()` resolves them from dlt config, or given, for the
    commands that plan an incremental run without running it."""
    return resolve_settings(**_planned_settings(**given))
