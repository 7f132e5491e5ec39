"""HTTP transport of the simulator: the API and file hosts, faults, rate limit and request log."""

import socket
import struct
import sys
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from math import ceil
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson

from .admin import ADMIN_PREFIX, answer_admin
from .api import Response, answer_api, answer_file, route
from .hostile import drip
from .traffic import RequestRecord
from .view import SimulatorView

WINDOW_SECONDS = 60.0
ERROR_STATUSES = (502, 503, 500)
ERROR_ANSWERS = {
    500: Response(500, b'{"statusCode":500,"message":"Internal server error"}'),
    502: Response(
        502,
        b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway"
        b"</h1></center><hr><center>cloudflare</center></body></html>",
        "text/html",
    ),
    503: Response(
        503,
        b"<html><head><title>503 Service Temporarily Unavailable</title></head><body><center>"
        b"<h1>503 Service Temporarily Unavailable</h1></center></body></html>",
        "text/html",
    ),
}
PROXY_PAGE = Response(
    200,
    b'<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head><body>'
    b"<h1>Checking your browser before accessing ht-api.coinmarketman.com</h1>"
    b"<p>This process is automatic.</p></body></html>",
    "text/html; charset=UTF-8",
)


class SlidingWindowLimit:
    """A rate limit over a sliding window of accepted requests: the API's minute, or a shorter one
    holding as many requests pro rata, so that tests of pacing run in seconds."""

    def __init__(self, per_minute: int, window_seconds: float = WINDOW_SECONDS) -> None:
        self.window_seconds = window_seconds
        self.per_window = max(1, round(per_minute * window_seconds / WINDOW_SECONDS))
        self._accepted: deque[float] = deque()
        self._lock = threading.Lock()

    def admit(self) -> int:
        """0 when a request is accepted (and counted), else whole seconds until a slot frees."""
        now = time.monotonic()
        with self._lock:
            while self._accepted and self._accepted[0] <= now - self.window_seconds:
                self._accepted.popleft()
            if len(self._accepted) < self.per_window:
                self._accepted.append(now)
                return 0
            return max(1, ceil(self._accepted[0] + self.window_seconds - now))


def rate_limited(retry_after: int, with_header: bool) -> Response:
    """A 429 answer: retry_after in the body, and in a Retry-After header only if asked."""
    body = {"error": "rate_limit_exceeded", "message": "Too many requests"}
    headers = (("Retry-After", str(retry_after)),) if with_header else ()
    payload = orjson.dumps({**body, "retry_after": retry_after})
    return Response(429, payload, headers=headers)


LISTEN_BACKLOG = 128
"""Connections a host lets wait to be accepted. socketserver's 5 made the kernel drop the sixth of a
burst of new connections, which the client resent only 1 s later: a real API takes such a burst."""


class HostServer(ThreadingHTTPServer):
    """A threaded HTTP server for one simulated host that can cut its open connections."""

    daemon_threads = True
    request_queue_size = LISTEN_BACKLOG

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], sim: SimulatorView
    ) -> None:
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serves a connection in its own thread, remembering it while open."""
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        """Closes a finished connection and forgets it."""
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Cuts every connection still open, such as idle keep-alive ones."""
        with self._connections_lock:
            open_connections = list(self._connections)
        for connection in open_connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                continue

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Reports a handler's failure, except a client that went away."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class HostHandler(BaseHTTPRequestHandler):
    """What both hosts share: HTTP/1.1 keep-alive, sending answers, recording requests."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: HostServer

    def log_message(self, format: str, *args: Any) -> None:
        """Keeps the console quiet."""

    def request_parts(self) -> tuple[str, dict[str, str]]:
        """The path and query parameters of the request."""
        url = urlsplit(self.path)
        return url.path, dict(parse_qsl(url.query, keep_blank_values=True))

    def record(self, host: str, endpoint: str, status: int, fault: str | None = None) -> None:
        """Adds the request to the simulator's log."""
        path, params = self.request_parts()
        headers = dict(self.headers.items())
        record = RequestRecord(host, endpoint, path, params, status, headers, time.time(), fault)
        self.server.sim.record(record)

    def send(self, response: Response, truncated: bool = False) -> None:
        """Sends an answer; a truncated one stops halfway through its announced body."""
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(response.body[: len(response.body) // 2] if truncated else response.body)
        if truncated:
            self.close_connection = True

    def send_dripped(self, response: Response, seconds_per_byte: float) -> None:
        """Sends a whole answer, status line first, one byte at a time; closes the connection."""
        head = [f"HTTP/1.1 {response.status} {self.responses[response.status][0]}"]
        head += [f"Content-Type: {response.content_type}", f"Content-Length: {len(response.body)}"]
        head += [f"{name}: {value}" for name, value in response.headers]
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + response.body
        self.close_connection = True
        drip(self.wfile, raw, seconds_per_byte)

    def reset_connection(self) -> None:
        """Drops the connection with a TCP RST and no answer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.rfile.close()
        self.connection.close()


class ApiHandler(HostHandler):
    """The API host: vendor endpoints under faults and rate limit, plus /_sim/ control."""

    def do_GET(self) -> None:
        """Answers a GET."""
        self.dispatch("GET")

    def do_POST(self) -> None:
        """Answers a POST."""
        self.dispatch("POST")

    def dispatch(self, method: str) -> None:
        """Answers a control request directly and an API request through faults."""
        path, params = self.request_parts()
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if path.startswith(ADMIN_PREFIX):
            self.send(answer_admin(self.server.sim, method, path, body))
        else:
            self.serve_api(method, path, params)

    def serve_api(self, method: str, path: str, params: dict[str, str]) -> None:
        """Answers an API request: decided and recorded on arrival, delivered after any delay."""
        sim = self.server.sim
        faults = sim.faults
        retry_after = sim.admit()
        draw = sim.draw()
        fault = None if retry_after else faults.pick(draw)
        if retry_after:
            response = rate_limited(retry_after, sim.config.retry_after_header)
        elif fault == "error":
            response = ERROR_ANSWERS[ERROR_STATUSES[int(draw * 1_000_003) % len(ERROR_STATUSES)]]
        elif fault == "rate_limit":
            response = rate_limited(faults.retry_after, sim.config.retry_after_header)
        elif fault == "garbage":
            response = PROXY_PAGE
        else:
            authorization = self.headers.get("Authorization")
            response = answer_api(sim, method, path, params, authorization)
        self.record("api", route(path)[0], 0 if fault == "reset" else response.status, fault)
        time.sleep(faults.latency + (faults.slow_seconds if fault == "slow" else 0.0))
        if fault == "reset":
            self.reset_connection()
        elif faults.drip_seconds:
            self.send_dripped(response, faults.drip_seconds)
        else:
            self.send(response, truncated=fault == "truncate")


class FileHandler(HostHandler):
    """The file host ("S3"): serves pre-signed heatmap files, never faulted."""

    def do_GET(self) -> None:
        """Answers a GET for a pre-signed object."""
        path, params = self.request_parts()
        authorization = self.headers.get("Authorization")
        response = answer_file(self.server.sim, path, params, authorization)
        self.record("files", "download", response.status)
        self.send(response)


def serve_in_background(server: HostServer) -> threading.Thread:
    """Runs a server's loop on a daemon thread."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
    )
    thread.start()
    return thread
