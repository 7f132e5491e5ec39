"""`hypertracker check`: one request that proves the key and the address."""

from dlt.common.configuration import known_sections
from dlt.common.configuration.inject import with_config
from dlt.common.typing import TSecretStrValue

from hypertracker_source.client import RERUN_ADVICE, HyperTrackerClient
from hypertracker_source.endpoints import STATUS
from hypertracker_source.exceptions import HyperTrackerApiError
from hypertracker_source.resolve import (
    check_api_key,
    check_base_url,
    check_requests_per_minute,
    check_response_deadline,
)
from hypertracker_source.settings import API_BASE_URL, DEFAULT_RESPONSE_DEADLINE

CHECK_ADVICE = "Nothing was loaded: check only asks the API's status"
"""What a failed check did, in place of a load's advice."""


@with_config(sections=(known_sections.SOURCES, "hypertracker"))
def configured_client(
    api_key: TSecretStrValue | None = None,
    base_url: str = API_BASE_URL,
    requests_per_minute: str | int | None = None,
    response_deadline: float = DEFAULT_RESPONSE_DEADLINE,
) -> HyperTrackerClient:
    """A client with the key, address and pace that the source resolves from dlt config."""
    return HyperTrackerClient(
        check_base_url(base_url),
        check_api_key(api_key),
        check_requests_per_minute(requests_per_minute),
        response_deadline=check_response_deadline(response_deadline),
    )


def api_status(client: HyperTrackerClient) -> dict[str, str]:
    """The API's state status: lastUpdate, nextUpdate, nextUpdateThreshold (one request)."""
    return client.get_json(STATUS)


def checked_status(client: HyperTrackerClient) -> dict[str, str]:
    """The API's status as `hypertracker check` asks it: its failure says what check did."""
    try:
        return api_status(client)
    except HyperTrackerApiError as error:
        message = str(error).replace(RERUN_ADVICE, CHECK_ADVICE)
        raise type(error)(message, error.status_code) from None
