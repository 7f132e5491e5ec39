"""The API client: its retried, paced, authorised, counted and bounded GET, and file downloads."""

import functools
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import dlt
import orjson
from dlt.common.configuration.inject import with_config
from dlt.common.configuration.specs import RuntimeConfiguration
from dlt.sources.helpers.requests import Client
from dlt.sources.helpers.requests.retry import DEFAULT_RETRY_EXCEPTIONS
from requests import PreparedRequest, RequestException, Response
from requests.auth import AuthBase

from hypertracker_source.api.answers import (
    AnswerBounds,
    AnswerTooLargeError,
    BodyLimit,
    BoundedAdapter,
    bounded,
)
from hypertracker_source.api.budget import SpendLedger
from hypertracker_source.api.endpoints import API_PREFIX, Endpoint
from hypertracker_source.api.errors import (
    AUTH_STATUSES,
    auth_error,
    check_status,
    not_json_error,
    unanswered_error,
    unreachable_cause,
    unreachable_error,
)
from hypertracker_source.api.files import download_file
from hypertracker_source.api.request_flow import GatedAdapter, RequestGate, RequestPacer
from hypertracker_source.config.defaults import (
    BYTES_PER_MB,
    DEFAULT_RESPONSE_DEADLINE,
    MAX_BODY_MB,
    MAX_FILE_REDIRECTS,
)


class _BearerAuth(AuthBase):
    """Adds the API key to API requests only; the file host must never see it."""

    def __init__(self, api_key: str) -> None:
        self._header = f"Bearer {api_key}"

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
        request.headers["Authorization"] = self._header
        return request

    def __repr__(self) -> str:
        return "BearerAuth(<redacted>)"


class RetryingClient(Client):
    """dlt's retrying requests client, with the API's host gated, and paced when a rate is set."""

    def __init__(self, gated_url: str | None, adapter: GatedAdapter | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._adapter = BoundedAdapter(pool_maxsize=50)
        self._gated_url = gated_url
        self._gated_adapter = adapter

    def _make_session(self) -> Any:
        """Makes dlt's per-thread session and mounts the gated pool on the API's host."""
        session = super()._make_session()
        if self._gated_url and self._gated_adapter:
            session.mount(self._gated_url, self._gated_adapter)
        return session


def _copy_retry_after(response: Response, *args: Any, **kwargs: Any) -> Response:
    """Gives a 429's body `retry_after` to the Retry-After header that dlt's retry honours."""
    if response.status_code == 429 and "Retry-After" not in response.headers:
        try:
            seconds = int(orjson.loads(response.content)["retry_after"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return response
        response.headers["Retry-After"] = str(max(seconds, 1))
    return response


_Decode = Callable[[bytes], Any]
"""Turns a whole JSON body into what its endpoint's reader wants; raises ValueError if it cannot."""


class _BrokenAnswer(RequestException):
    """A 200 whose body is not the JSON it claims (cut short, or a proxy's HTML page): retried."""

    def __init__(self, answer: Response) -> None:
        super().__init__(f"a 200 that is not JSON ({answer.headers.get('Content-Type')})")
        self.answer = answer


class ApiAnswer(NamedTuple):
    """An API request's last answer, and its body as decoded for whoever asked (None unless a
    200 with a JSON body)."""

    response: Response
    body: Any
    path: str


class _BodyDecoder:
    """A request's response hook that decodes each 200's JSON body once, and fails a broken one.

    A broken body raises _BrokenAnswer, which the retrying client retries like a dropped
    connection; the decoded body of the last answer waits in `body` for the request's caller.
    """

    # Hand-written: dlt's retry conditions see a response but cannot hand back what they parsed,
    # and a fills page is too large to parse twice.
    def __init__(self, decode: _Decode) -> None:
        self._decode = decode
        self.body: Any = None

    def __call__(self, response: Response, *args: Any, **kwargs: Any) -> Response:
        """Decodes a 200's JSON body into `body`, or raises _BrokenAnswer for a broken one."""
        self.body = None
        if response.status_code != 200:
            return response
        content_type = response.headers.get("Content-Type", "")
        if "html" in content_type:
            response.close()
            raise _BrokenAnswer(response)
        if "json" in content_type:
            try:
                self.body = self._decode(response.content)
            except ValueError:
                raise _BrokenAnswer(response) from None
        return response


@with_config(spec=RuntimeConfiguration)
def _runtime_settings(config: RuntimeConfiguration = dlt.config.value) -> RuntimeConfiguration:
    """dlt's [runtime] settings: request timeout, attempts and backoff (RUNTIME__REQUEST_*)."""
    return config


@dataclass
class RunStats:
    """What a source run spent and saw: API requests by endpoint, the API's state status, and the
    rows landed per table (added up over its chunks by whoever runs it); the ledger of its
    request budget, once a client counted into it."""

    requests: Counter[str] = field(default_factory=Counter)
    status: dict[str, str] | None = None
    rows: Counter[str] = field(default_factory=Counter)
    ledger: SpendLedger | None = None


class HyperTrackerClient:
    """Talks to the API with retries, pacing and the key, and to the file host without the key.

    `before_first_request` runs once, before the client's first request: a check that needs the
    running pipeline, such as its destination, and must cost no request.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        requests_per_minute: int | None = None,
        stats: RunStats | None = None,
        before_first_request: Callable[[], None] | None = None,
        response_deadline: float = DEFAULT_RESPONSE_DEADLINE,
        max_body_bytes: Mapping[str, int] | None = None,
        ledger: SpendLedger | None = None,
    ) -> None:
        self.base_url = base_url
        self._api_url = base_url + API_PREFIX
        self.stats = RunStats() if stats is None else stats
        self.ledger = ledger
        if ledger is not None:
            self.stats.ledger = ledger
        self._count_lock = threading.Lock()
        self._auth = _BearerAuth(api_key)
        self.gate = RequestGate(before_first_request)
        pacer = RequestPacer(requests_per_minute) if requests_per_minute else None
        self._api = RetryingClient(
            base_url,
            GatedAdapter(self.gate, pacer, pool_maxsize=50, budget=ledger),
            raise_for_status=False,
            exceptions=(*DEFAULT_RETRY_EXCEPTIONS, _BrokenAnswer),
        )
        self._files = RetryingClient(
            None, None, raise_for_status=False, session_attrs={"max_redirects": MAX_FILE_REDIRECTS}
        )
        self.response_deadline = response_deadline
        self._max_body_bytes = max_body_bytes or {
            kind: int(megabytes * BYTES_PER_MB) for kind, megabytes in MAX_BODY_MB.items()
        }
        runtime = _runtime_settings()
        self.attempts = runtime.request_max_attempts
        self._api.update_from_config(runtime)
        self._files.update_from_config(runtime)

    def body_limit(self, kind: str) -> BodyLimit:
        """The size limit of one kind of answer body (an endpoint's name, or a heatmap file's)."""
        return BodyLimit(kind, self._max_body_bytes[kind])

    def _bounds(self, kind: str) -> AnswerBounds:
        """What an answer of this kind may take: the deadline, and its body's size limit."""
        return AnswerBounds(self.response_deadline, self.body_limit(kind))

    def _count_request(self, endpoint: Endpoint) -> Callable[..., Response]:
        """A response hook that counts an answered request, retries included: each costs a token."""

        def count(response: Response, *args: Any, **kwargs: Any) -> Response:
            """Counts one answer of the endpoint."""
            self._count_one(endpoint)
            return response

        return count

    def _count_one(self, endpoint: Endpoint) -> None:
        """Counts one request of the endpoint: answered, or cut short by its deadline or size."""
        with self._count_lock:
            self.stats.requests[endpoint.name] += 1

    def get_json(
        self,
        endpoint: Endpoint,
        params: dict[str, Any] | None = None,
        path_args: dict[str, Any] | None = None,
        decode: _Decode = orjson.loads,
    ) -> Any:
        """GETs an endpoint and returns its decoded JSON body, or raises a clear error."""
        answer = self.get(endpoint, params, path_args, decode)
        check_status(answer.response, answer.path, self.attempts)
        if answer.body is None:
            raise not_json_error(answer.response, answer.path, self.attempts)
        return answer.body

    def get(
        self,
        endpoint: Endpoint,
        params: dict[str, Any] | None = None,
        path_args: dict[str, Any] | None = None,
        decode: _Decode = orjson.loads,
    ) -> ApiAnswer:
        """GETs an endpoint without following redirects, retried, paced, authorised and counted.

        A rejected key, an address that cannot be reached or an answer too large stops the client:
        every later request fails at once with the same error, as the run cannot succeed.
        """
        path = endpoint.path(**(path_args or {}))
        decoder = _BodyDecoder(decode)
        # A request's hooks replace its session's for the same event (requests' merge_hooks):
        # dlt's session has none, which a test pins.
        hooks: dict[str, list[Callable[..., Response]]] = {
            "response": [self._count_request(endpoint), _copy_retry_after, decoder]
        }
        count_cut = functools.partial(self._count_one, endpoint)
        with self.gate.turn(), bounded(self._bounds(endpoint.name), count_cut):
            try:
                response = self._api.get(
                    self._api_url + path,
                    params=params,
                    auth=self._auth,
                    allow_redirects=False,
                    hooks=hooks,
                )
            except AnswerTooLargeError as too_large:
                raise self.gate.stop(too_large) from None
            except _BrokenAnswer as broken:
                raise not_json_error(broken.answer, path, self.attempts) from None
            except RequestException as error:
                cause = unreachable_cause(error)
                if cause is None:
                    raise unanswered_error(path, self.attempts, error) from None
                raise self.gate.stop(
                    unreachable_error(self.base_url, self.attempts, cause)
                ) from None
            if response.status_code in AUTH_STATUSES:
                raise self.gate.stop(auth_error(response.status_code, path))
            return ApiAnswer(response, decoder.body, path)

    def download(self, url: str) -> Response:
        """GETs a pre-signed file URL, without the key, retried on server errors, within the
        file's bounds (see files.download_file)."""
        self.gate.raise_if_stopped()
        with bounded(self._bounds("heatmap_file")):
            return download_file(self._files, url, self.attempts)
