"""A local simulator of the HyperTracker liquidation API, served over real HTTP on 127.0.0.1.

Its own package, apart from the source: it imports neither dlt nor pyarrow, so a simulator process
starts fast, and it models the documented API, not the connector.

Hostile modes, each an explicit opt-in field of `Faults` (`sim.faults.<name> = ...`, or
`SimulatorProcess.set_faults(<name>=...)`), for tests and chaos harnesses to name:
`drip_seconds` (every API answer a byte at a time), `gzip_bomb_mb` (heatmap files that inflate
to that many MB), `huge_field_mb` (a field that large in every fills page), `cursor_generation`
(raised: every cursor handed out before is refused, HTTP 400 "nextCursor is invalid"),
`loop_cursors` (the same fills page again with a new cursor each time), `file_redirect` (the file
host redirects every download there) and `export_link` (the export hands out that link).
"""

from .config import SimulatorConfig
from .process import SimulatorProcess, start_simulator_process
from .simulator import Simulator
from .traffic import Faults, RequestRecord

__all__ = [
    "Faults",
    "RequestRecord",
    "Simulator",
    "SimulatorConfig",
    "SimulatorProcess",
    "start_simulator_process",
]
