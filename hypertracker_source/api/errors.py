"""How the API's answers and failures become the source's errors, each saying what to do."""

import re

import orjson
from requests import RequestException, Response
from requests.exceptions import SSLError
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

from hypertracker_source.exceptions import (
    HyperTrackerApiError,
    HyperTrackerAuthError,
    HyperTrackerUnreachableError,
)

RERUN_ADVICE = (
    "Rerun later: nothing of this run was loaded and the stored high-water marks have not moved"
)
"""What a run that failed on the API's account may do, and why it is safe."""
AUTH_STATUSES = (401, 403)
"""The answers to a key the API does not accept."""


def unreachable_cause(error: RequestException) -> str | None:
    """Says why the API's host could not be reached at all, or None when it answered something."""
    if isinstance(error, SSLError):
        ssl_reason = re.search(r"\[SSL: (\w+)\]", str(error))
        detail = ssl_reason.group(1) if ssl_reason else _innermost_reason(error)
        return f"the TLS handshake failed ({detail}): is it an http:// address?"
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if isinstance(reason, NameResolutionError):
        return f"its host name is unknown ({_innermost_reason(error)})"
    if isinstance(reason, NewConnectionError):
        return f"the connection failed ({_innermost_reason(error)})"
    if isinstance(reason, ConnectTimeoutError):
        return "the connection timed out (RUNTIME__REQUEST_TIMEOUT)"
    return None


def _innermost_reason(error: BaseException) -> str:
    """The last, most specific part of a requests error's text: `[Errno 111] Connection refused`."""
    text = str(getattr(error.args[0], "reason", error) if error.args else error)
    reason = text.rsplit(": ", 1)[-1]
    while reason.endswith(")") and reason.count(")") > reason.count("("):
        reason = reason[:-1]
    return reason.strip("'\" ")


def unreachable_error(base_url: str, attempts: int, cause: str) -> HyperTrackerUnreachableError:
    """The error for an API address that could not be reached on any attempt."""
    return HyperTrackerUnreachableError(
        f"HyperTracker's API at {base_url} cannot be reached: {cause} (on all "
        f"{attempts} attempts). Check sources.hypertracker.base_url "
        "(SOURCES__HYPERTRACKER__BASE_URL; unset, it is https://ht-api.coinmarketman.com) "
        f"and this machine's network. {RERUN_ADVICE}"
    )


def auth_error(status: int, path: str) -> HyperTrackerAuthError:
    """The error for a rejected key."""
    return HyperTrackerAuthError(
        f"HyperTracker rejected the API key (HTTP {status} on {path}). Set a valid token "
        "from the HyperTracker API dashboard as sources.hypertracker.api_key in "
        ".dlt/secrets.toml or SOURCES__HYPERTRACKER__API_KEY.",
        status,
    )


def unanswered_error(path: str, attempts: int, error: RequestException) -> HyperTrackerApiError:
    """The error for a request that got no whole answer on any of its attempts."""
    return HyperTrackerApiError(
        f"HyperTracker gave no whole answer to GET {path} in {attempts} attempts (the last: "
        f"{type(error).__name__}: {error}). {RERUN_ADVICE} (RUNTIME__REQUEST_TIMEOUT and "
        "RUNTIME__REQUEST_MAX_ATTEMPTS set how long and how often to try)"
    )


def check_status(response: Response, path: str, attempts: int) -> None:
    """Raises a clear error for an API answer that is not a success."""
    status = response.status_code
    if status < 400:
        return
    if status in AUTH_STATUSES:
        raise auth_error(status, path)
    message = f"HyperTracker answered HTTP {status} on GET {path}: {_api_message(response)}"
    if status == 429 or status >= 500:
        message = (
            f"{message}, on all {attempts} attempts. {RERUN_ADVICE} "
            "(RUNTIME__REQUEST_MAX_ATTEMPTS sets how often to try)"
        )
    raise HyperTrackerApiError(message, status)


def not_json_error(response: Response, path: str, attempts: int) -> HyperTrackerApiError:
    """The error for an answer whose body never came as whole JSON."""
    return HyperTrackerApiError(
        f"HyperTracker answered GET {path} with a body that is not JSON "
        f"({response.headers.get('Content-Type', 'no content type')}) on all {attempts} "
        f"attempts. {RERUN_ADVICE}",
        response.status_code,
    )


def _api_message(response: Response) -> str:
    """Returns the human part of an error answer, whatever its envelope."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        html = "html" in response.headers.get("Content-Type", "")
        return response.reason if html else response.text[:200]
    if isinstance(body, dict):
        message = body.get("message") or body.get("error") or body
        return "; ".join(message) if isinstance(message, list) else str(message)
    return str(body)[:200]
