"""A local simulator of the HyperTracker liquidation API, served over real HTTP on 127.0.0.1.

Its own package, apart from the source: it imports neither dlt nor pyarrow, so a simulator process
starts fast, and it models the documented API, not the connector.
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
