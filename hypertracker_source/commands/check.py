"""`hypertracker check`: one request that proves the key and the address."""

import argparse
import sys
from typing import Any

import dlt
from dlt.common.configuration import known_sections
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue

from hypertracker_source.api.budget import pipeline_ledger
from hypertracker_source.api.client import RERUN_ADVICE, HyperTrackerClient
from hypertracker_source.api.endpoints import STATUS
from hypertracker_source.commands.options import SETTING_VARIABLE, AddCommand
from hypertracker_source.config.defaults import (
    API_BASE_URL,
    DEFAULT_HEATMAP_COINS,
    DEFAULT_LAG,
    DEFAULT_RESPONSE_DEADLINE,
    FILLS_MAX_PAGE_SIZE,
    HISTORY_START,
    MAX_FILLS_PER_RUN,
)
from hypertracker_source.config.resolve import (
    ListSetting,
    SourceSettings,
    check_api_key,
    check_base_url,
    check_request_budget,
    check_requests_per_minute,
    check_response_deadline,
    plan_rate,
    resolve_settings,
)
from hypertracker_source.exceptions import HyperTrackerApiError, HyperTrackerBudgetError

_CHECK_ADVICE = "Nothing was loaded: check only asks the API's status"
"""What a failed check did, in place of a load's advice."""


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


@with_config(sections=(known_sections.SOURCES, "hypertracker"))
def configured_client(
    api_key: TSecretStrValue | None = None,
    base_url: str = API_BASE_URL,
    requests_per_minute: str | int | None = None,
    response_deadline: float = DEFAULT_RESPONSE_DEADLINE,
    plan: str | None = None,
    daily_request_budget: int | str | None = None,
    monthly_request_budget: int | str | None = None,
    pipeline: Any = None,
) -> HyperTrackerClient:
    """A client with the key, address, pace, answer deadline and request budget that the source
    resolves from dlt config; its requests count into the pipeline's spend when one is given."""
    url = check_base_url(base_url)
    key = check_api_key(api_key)
    budget = check_request_budget(plan, daily_request_budget, monthly_request_budget)
    rate = check_requests_per_minute(requests_per_minute) or plan_rate(budget)
    ledger = pipeline_ledger(pipeline, budget) if pipeline is not None else None
    deadline = check_response_deadline(response_deadline)
    return HyperTrackerClient(url, key, rate, response_deadline=deadline, ledger=ledger)


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


@with_config(sections=(known_sections.SOURCES, "hypertracker"))
def configured_settings(
    api_key: TSecretStrValue | None = None,
    base_url: str = API_BASE_URL,
    start_date: str | None = HISTORY_START,
    coins: ListSetting = None,
    address: str | None = None,
    side: str | None = None,
    heatmap_coins: ListSetting = DEFAULT_HEATMAP_COINS,
    segment_ids: ListSetting = None,
    page_size: int = FILLS_MAX_PAGE_SIZE,
    lag: float = DEFAULT_LAG.total_seconds(),
    max_fills_per_run: int = MAX_FILLS_PER_RUN,
    requests_per_minute: str | int | None = None,
    refresh_snapshots: bool = False,
    plan: str | None = None,
    daily_request_budget: int | str | None = None,
    monthly_request_budget: int | str | None = None,
) -> SourceSettings:
    """The source's settings as `hypertracker()` resolves them from dlt config, for the commands
    that plan a run without running it."""
    return resolve_settings(
        api_key=api_key,
        base_url=base_url,
        start_date=start_date,
        end_date=None,
        coins=coins,
        address=address,
        side=side,
        heatmap_coins=heatmap_coins,
        segment_ids=segment_ids,
        page_size=page_size,
        lag=lag,
        max_fills_per_run=max_fills_per_run,
        requests_per_minute=requests_per_minute,
        refresh_snapshots=refresh_snapshots,
        merge_strategy="delete-insert",
        plan=plan,
        daily_request_budget=daily_request_budget,
        monthly_request_budget=monthly_request_budget,
    )
