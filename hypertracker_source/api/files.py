"""Downloads of the API's pre-signed files: without the key, over http(s), on their own host."""

from typing import Any
from urllib.parse import urljoin, urlsplit

from dlt.sources.helpers.requests import Client
from requests import RequestException, Response
from requests.exceptions import TooManyRedirects

from hypertracker_source.api.errors import unanswered_error
from hypertracker_source.config.defaults import MAX_FILE_REDIRECTS
from hypertracker_source.exceptions import HyperTrackerApiError

HEATMAP_FILE = "the pre-signed heatmap file"
"""What the errors about a heatmap file call it."""


def download_file(files: Client, url: str, attempts: int) -> Response:
    """GETs a pre-signed file URL with a client that holds no key; it may redirect only to its
    own host, a few times."""
    _check_file_link(url)
    hooks = {"response": [_refuse_redirect_elsewhere]}
    try:
        return files.get(url, allow_redirects=True, hooks=hooks)
    except TooManyRedirects:
        raise _file_link_error(url, f"it redirected more than {MAX_FILE_REDIRECTS} times") from None
    except RequestException as error:
        raise unanswered_error(HEATMAP_FILE, attempts, error) from None


def _check_file_link(url: str) -> None:
    """Refuses a file link that is not http(s): the API's link must never open a local file."""
    if urlsplit(url).scheme not in ("http", "https"):
        raise _file_link_error(url, "it is not an http(s) URL")


def _refuse_redirect_elsewhere(response: Response, *args: Any, **kwargs: Any) -> Response:
    """Refuses a file host's redirect to another host or scheme, before it is followed."""
    if response.is_redirect:
        target = urljoin(response.url, response.headers["Location"])
        if urlsplit(target)[:2] != urlsplit(response.url)[:2]:
            response.close()
            raise _file_link_error(target, "the file host redirected to another host or scheme")
    return response


def _file_link_error(url: str, problem: str) -> HyperTrackerApiError:
    """The error for a heatmap file link that is not followed."""
    parts = urlsplit(url)
    return HyperTrackerApiError(
        f"HyperTracker's heatmap file link was not followed to {parts.scheme}://{parts.netloc}: "
        f"{problem}; a "
        "pre-signed link is only followed over http(s), on its own host. Report it to "
        "HyperTracker if it persists"
    )
