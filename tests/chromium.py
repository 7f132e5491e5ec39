"""Headless Chromium over the Chrome DevTools Protocol: one browser, a fresh tab per test."""

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests

websocket = pytest.importorskip("websocket", reason="websocket-client is in the test extra")

STARTUP_SECONDS = 30
REPLY_SECONDS = 30


class DevTools:
    """A Chrome DevTools Protocol session with one page: commands, and the events seen meanwhile.

    Hand-written: websocket-client carries the messages; the protocol's request/reply pairing is
    a few lines, and the Python CDP packages either download their own browser or need asyncio.
    """

    def __init__(self, url: str) -> None:
        self.socket = websocket.create_connection(url, timeout=REPLY_SECONDS, suppress_origin=True)
        self.events: list[dict[str, Any]] = []
        self.last_id = 0

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """Sends a command and returns its result, keeping the events that arrive before it."""
        self.last_id += 1
        self.socket.send(json.dumps({"id": self.last_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message["result"]
            self.events.append(message)

    def wait_for(self, method: str) -> dict[str, Any]:
        """Waits for an event (or finds it among those already seen)."""
        deadline = time.monotonic() + REPLY_SECONDS
        while time.monotonic() < deadline:
            for event in self.events:
                if event.get("method") == method:
                    return event
            self.events.append(json.loads(self.socket.recv()))
        raise TimeoutError(f"no {method} within {REPLY_SECONDS} s")

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:60]}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def errors(self) -> list[dict[str, Any]]:
        """The console errors and uncaught exceptions seen so far."""
        return [
            event
            for event in self.events
            if event.get("method") == "Runtime.exceptionThrown"
            or (
                event.get("method") == "Runtime.consoleAPICalled"
                and event["params"]["type"] in ("error", "assert")
            )
            or (
                event.get("method") == "Log.entryAdded"
                and event["params"]["entry"]["level"] == "error"
            )
        ]


def chromium_path() -> str:
    """Debian's Chromium; the test is skipped without it, unless CI demands the browser."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        if os.environ.get("HYPERTRACKER_REQUIRE_BROWSER"):
            pytest.fail("HYPERTRACKER_REQUIRE_BROWSER is set but no chromium is on PATH")
        pytest.skip("no chromium on PATH: apt-get install chromium to run the browser test")
    return path


@contextmanager
def headless_chromium(profile: Path) -> Iterator[str]:
    """Headless Chromium with a fresh profile; yields the address of its DevTools endpoint."""
    process = subprocess.Popen(
        [
            chromium_path(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--hide-scrollbars",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        port = debugging_port(profile / "DevToolsActivePort", process)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.kill()
        process.wait(timeout=30)


def debugging_port(port_file: Path, process: subprocess.Popen) -> int:
    """The DevTools port Chromium chose, from the file it writes once it listens."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with {process.returncode} at start")
        if port_file.exists() and port_file.read_text().strip():
            return int(port_file.read_text().splitlines()[0])
        time.sleep(0.1)
    raise TimeoutError(f"chromium wrote no {port_file.name} within {STARTUP_SECONDS} s")


@contextmanager
def new_tab(endpoint: str) -> Iterator[DevTools]:
    """A new blank tab of the browser, with a DevTools session that sees its page, console and
    log events; the tab is closed afterwards."""
    target = requests.put(f"{endpoint}/json/new?about:blank", timeout=REPLY_SECONDS).json()
    session = DevTools(target["webSocketDebuggerUrl"])
    try:
        for domain in ("Runtime", "Log", "Page"):
            session.call(f"{domain}.enable")
        yield session
    finally:
        session.socket.close()
        requests.get(f"{endpoint}/json/close/{target['id']}", timeout=REPLY_SECONDS)
