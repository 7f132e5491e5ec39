"""A local simulator of the HyperTracker liquidation API, served over real HTTP on 127.0.0.1."""

from .process import SimulatorProcess, start_simulator_process
from .server import Faults, RequestRecord
from .simulator import Simulator

__all__ = ["Faults", "RequestRecord", "Simulator", "SimulatorProcess", "start_simulator_process"]
