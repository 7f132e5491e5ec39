"""A simulator in a child process (`python -m hypertracker_simulator`), driven over HTTP."""

import os
import subprocess
import sys
import urllib.request
from collections import Counter
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson

from .config import SimulatorConfig, command_line_flags

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_TIMEOUT_SECONDS = 10.0


class SimulatorProcess:
    """A simulator serving from a child process; its controls go over /_sim/ endpoints."""

    def __init__(self, process: "subprocess.Popen[str]", url: str, file_url: str) -> None:
        self.process = process
        self.url = url
        self.file_url = file_url

    def stop(self) -> None:
        """Ends the child process (SIGTERM, then SIGKILL if it lingers)."""
        self.process.terminate()
        try:
            self.process.wait(STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if self.process.stdout:
            self.process.stdout.close()

    def __enter__(self) -> "SimulatorProcess":
        """The running simulator, for a with block."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stops the simulator at the end of a with block."""
        self.stop()

    def _control(self, action: str, payload: dict[str, Any] | None = None) -> Any:
        """Calls a /_sim/ endpoint: GET without a payload, POST with one."""
        data = None if payload is None else orjson.dumps(payload)
        request = urllib.request.Request(f"{self.url}/_sim/{action}", data=data)
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())

    def request_counts(self) -> Counter[str]:
        """How many requests each endpoint received."""
        return Counter(self._control("requests"))

    def reset_requests(self) -> None:
        """Empties the request log."""
        self._control("reset", {})

    def advance_state(
        self,
        new_fills: int = 0,
        late_fills: int = 0,
        late_by: timedelta = timedelta(minutes=30),
        spread: timedelta = timedelta(minutes=1),
    ) -> int:
        """Makes a new data version with fresh and late fills; returns the current version."""
        payload = {
            "new_fills": new_fills,
            "late_fills": late_fills,
            "late_by_seconds": late_by.total_seconds(),
            "spread_seconds": spread.total_seconds(),
        }
        return self._control("advance", payload)["version"]

    def stall_indexing(self, ticking_status: bool = False) -> None:
        """Stops publishing fills until release_indexing."""
        self._control("stall", {"ticking_status": ticking_status})

    def release_indexing(self) -> int:
        """Publishes every held-back fill at once; returns the new version."""
        return self._control("release", {})["version"]

    def set_faults(self, **fields: Any) -> None:
        """Changes fault settings by name, as the Faults fields."""
        self._control("faults", fields)


def start_simulator_process(
    config: SimulatorConfig | None = None, **settings: Any
) -> SimulatorProcess:
    """Starts a simulator in a child process (a config, or its fields as keywords); returns once
    it serves."""
    config = replace(config or SimulatorConfig(), **settings)
    command = [sys.executable, "-m", "hypertracker_simulator", *command_line_flags(config)]
    python_path = os.pathsep.join(filter(None, [str(PROJECT_ROOT), os.environ.get("PYTHONPATH")]))
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": python_path}
    )
    assert process.stdout is not None
    first_line = process.stdout.readline()
    if not first_line:
        raise RuntimeError(f"the simulator process ended with code {process.wait()}")
    addresses = orjson.loads(first_line)
    return SimulatorProcess(process, addresses["url"], addresses["file_url"])
