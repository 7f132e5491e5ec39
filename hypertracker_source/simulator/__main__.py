"""Command line: serve a simulator until SIGTERM or SIGINT, after printing its URLs as JSON."""

import argparse
import signal
import threading
from typing import Any

import orjson

from .simulator import EXPORT_MODES, FILL_ORDERS, Simulator


def argument_parser() -> argparse.ArgumentParser:
    """The command line's options, named after Simulator's keyword arguments."""
    parser = argparse.ArgumentParser(prog="python -m hypertracker_source.simulator")
    parser.add_argument("--port", type=int, default=0, help="API port (0: any free one)")
    parser.add_argument("--file-port", type=int, default=0, help="file host port (0: any)")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--fills", type=int, default=5000)
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--history-start", default="2025-07-27T00:00:00Z")
    parser.add_argument("--fill-order", choices=FILL_ORDERS, default="newest")
    parser.add_argument("--export-mode", choices=EXPORT_MODES, default="redirect")
    parser.add_argument("--gzip-files", action="store_true")
    parser.add_argument("--link-ttl", type=float, default=30.0)
    parser.add_argument("--heatmap-coins", type=lambda text: text.split(","), default=None)
    parser.add_argument("--risk-coins", type=int, default=294)
    parser.add_argument("--rate-limit-per-minute", type=int, default=None)
    parser.add_argument(
        "--rate-limit-window", type=float, default=60.0, help="seconds the rate limit counts over"
    )
    parser.add_argument("--retry-after-header", action="store_true")
    return parser


def main(argv: list[str] | None = None) -> None:
    """Serves a simulator configured by the command line until told to stop."""
    settings: dict[str, Any] = vars(argument_parser().parse_args(argv))
    ports = settings.pop("port"), settings.pop("file_port")
    latency = settings.pop("latency")
    stopping = threading.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signal_number, lambda *_: stopping.set())
    with Simulator(**settings).start(*ports) as sim:
        sim.faults.latency = latency
        print(orjson.dumps({"url": sim.url, "file_url": sim.file_url}).decode(), flush=True)
        stopping.wait()


if __name__ == "__main__":
    main()
