"""Every endpoint of the HyperTracker API the source calls: its path, and its name in counts."""

from typing import NamedTuple
from urllib.parse import quote

API_PREFIX = "/api/external"
"""Where every endpoint's path starts, under the API's base URL."""


class Endpoint(NamedTuple):
    """One endpoint of the API: the name its requests are counted under, and its path template."""

    name: str
    path_template: str

    def path(self, **path_args: object) -> str:
        """The endpoint's path under API_PREFIX, with its arguments filled in and URL-encoded.

        The colon of `xyz:MSTR` and the at sign of `@142` stay as they are: the API takes them.
        """
        encoded = {name: quote(str(value), safe=":@") for name, value in path_args.items()}
        return self.path_template.format(**encoded)


FILLS = Endpoint("fills", "/fills/liquidation")
HEATMAP_EXPORT = Endpoint("export", "/exports/coins/{coin}/liquidation-heatmap")
RISK = Endpoint("risk", "/{segment_id}/assets/liquidation-risk")
SEGMENTS = Endpoint("segments", "/segments")
STATUS = Endpoint("status", "/hypertracker/state/status")

ENDPOINTS = (FILLS, HEATMAP_EXPORT, RISK, SEGMENTS, STATUS)
"""Every endpoint, for what must cover them all (the tests of the request counts)."""
