"""The /_sim/ control endpoints, for driving a simulator that runs in another process."""

from dataclasses import replace
from datetime import timedelta

import orjson

from .api import Response, error_response, json_response
from .view import SimulatorView

ADMIN_PREFIX = "/_sim/"


def answer_admin(sim: SimulatorView, method: str, path: str, body: bytes) -> Response:
    """The answer of a control endpoint (no auth, no faults, not recorded)."""
    action = (method, path.removeprefix(ADMIN_PREFIX))
    try:
        payload = orjson.loads(body) if body else {}
        if action == ("GET", "requests"):
            return json_response(dict(sim.request_counts()))
        if action == ("POST", "advance"):
            version = sim.advance_state(
                new_fills=payload.get("new_fills", 0),
                late_fills=payload.get("late_fills", 0),
                late_by=timedelta(seconds=payload.get("late_by_seconds", 1800)),
                spread=timedelta(seconds=payload.get("spread_seconds", 60)),
            )
            return json_response({"version": version})
        if action == ("POST", "stall"):
            sim.stall_indexing(ticking_status=payload.get("ticking_status", False))
            return json_response({"version": sim.version})
        if action == ("POST", "release"):
            return json_response({"version": sim.release_indexing()})
        if action == ("POST", "faults"):
            sim.faults = replace(sim.faults, **payload)
            return json_response(vars(sim.faults))
        if action == ("POST", "reset"):
            sim.reset_requests()
            return json_response({"reset": True})
    except (orjson.JSONDecodeError, TypeError, AttributeError) as error:
        return error_response(400, str(error))
    return error_response(404, f"Cannot {method} {path}")
