"""Command line: serve a simulator until SIGTERM or SIGINT, after printing its URLs as JSON (on
stdout, for programs) and how to use it (on stderr, for people)."""

import signal
import sys
import threading

import orjson

from .admin import ADMIN_PREFIX
from .config import config_of
from .simulator import Simulator


def main(argv: list[str] | None = None) -> None:
    """Serves a simulator configured by the command line until told to stop."""
    config = config_of(argv)
    stopping = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stopping.set())
    with Simulator(config).start() as sim:
        print(orjson.dumps({"url": sim.url, "file_url": sim.file_url}).decode(), flush=True)
        print(usage(sim.url, config.api_key), file=sys.stderr, flush=True)
        stopping.wait()


def usage(url: str, api_key: str) -> str:
    """What a person needs to rehearse against the simulator: its address, its key, and how to
    make a new data version."""
    return (
        f"HyperTracker simulator at {url}, API key {api_key} (Ctrl-C stops it)\n"
        f"Load from it:     SOURCES__HYPERTRACKER__BASE_URL={url} "
        f"SOURCES__HYPERTRACKER__API_KEY={api_key} hypertracker load\n"
        f"New data version: curl -X POST {url}{ADMIN_PREFIX}advance -d '{{\"new_fills\": 20}}'"
    )


if __name__ == "__main__":
    main()
