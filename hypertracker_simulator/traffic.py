"""The API host's traffic: the faults it injects, request by request, and its log of requests."""

from dataclasses import dataclass

from .hostile import BAD_FILL_KINDS


@dataclass
class Faults:
    """Faults the API host injects, each decided per request; change them at any time."""

    error_rate: float = 0.0
    reset_rate: float = 0.0
    rate_limit_rate: float = 0.0
    retry_after: int = 1
    truncate_rate: float = 0.0
    garbage_rate: float = 0.0
    latency: float = 0.0
    slow_rate: float = 0.0
    slow_seconds: float = 0.0
    expire_next_links: int = 0
    string_field: str = ""
    """A fills field sent as a string instead of its type, as if the API changed it ("": none)."""
    new_field: str = ""
    """A field the API added to fills: an integer in some rows, an object in others ("": none)."""
    bad_fill_rate: float = 0.0
    """Hostile data: the share of fills served broken, each the same way on every read."""
    bad_fill_kinds: tuple[str, ...] = BAD_FILL_KINDS
    """Hostile data: the ways a broken fill is broken (hostile.BAD_FILL_KINDS), one per fill."""
    oversized_field_bytes: int = 1_000_000
    """Hostile data: the size of an oversized field."""
    drip_seconds: float = 0.0
    """Hostile: seconds between the bytes of every API answer, status line first (0: none)."""
    gzip_bomb_mb: int = 0
    """Hostile: every heatmap file is a ~1000:1 gzip that inflates to this many MB (0: none)."""
    huge_field_mb: float = 0.0
    """Hostile: the first fill of every page carries a `hash` of this many MB (0: none)."""
    cursor_generation: int = 0
    """Raise it to make the API refuse every cursor it handed out before (HTTP 400 "nextCursor is
    invalid"), as after an API release that changed their format."""
    loop_cursors: bool = False
    """Hostile: every fills page is the query's first page again, with a new cursor each time."""
    file_redirect: str = ""
    """Hostile: the file host answers every download with a 302 to this URL ("": none)."""
    export_link: str = ""
    """Hostile: the export endpoint hands out this link instead of a pre-signed one ("": none)."""

    def pick(self, draw: float) -> str | None:
        """The fault a request suffers for a uniform draw in [0, 1), if any."""
        threshold = 0.0
        for kind, rate in (
            ("error", self.error_rate),
            ("reset", self.reset_rate),
            ("rate_limit", self.rate_limit_rate),
            ("truncate", self.truncate_rate),
            ("garbage", self.garbage_rate),
            ("slow", self.slow_rate),
        ):
            threshold += rate
            if draw < threshold:
                return kind
        return None


@dataclass(frozen=True)
class RequestRecord:
    """One request a simulated host received, with the status it answered (0: reset).

    `time` is when it arrived (epoch seconds); `fault` is the fault it suffered, if any.
    """

    host: str
    endpoint: str
    path: str
    params: dict[str, str]
    status: int
    headers: dict[str, str]
    time: float
    fault: str | None = None
