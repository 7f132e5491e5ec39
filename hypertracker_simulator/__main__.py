"""Command line: serve a simulator until SIGTERM or SIGINT, after printing its URLs as JSON."""

import signal
import threading

import orjson

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
        stopping.wait()


if __name__ == "__main__":
    main()
