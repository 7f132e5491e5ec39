"""The source's settings, each declared once: its type, default, meaning, option and check.

In the order they are checked, so that of several bad settings the same one is named. The source's
signature, `resolve_settings`, `check`'s client, the command line's options, the `init` template
and the README's table are derived from these declarations.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from dlt.common.configuration import is_secret_hint
from dlt.common.typing import TSecretStrValue

from hypertracker_source.config.checks import (
    Check,
    ListSetting,
    check_address,
    check_api_key,
    check_base_url,
    check_flag,
    check_lag,
    check_max_body_mb,
    check_requests_per_minute,
    check_response_deadline,
    check_segment_ids,
    check_start_date,
    coin_list,
    one_of,
    parse_instant,
    unset_is_none,
    whole_number,
)
from hypertracker_source.config.defaults import (
    API_BASE_URL,
    DEFAULT_HEATMAP_COINS,
    DEFAULT_LAG,
    DEFAULT_RESPONSE_DEADLINE,
    FILL_SIDES,
    FILLS_MAX_PAGE_SIZE,
    HISTORY_START,
    MAX_BODY_MB,
    MAX_FILLS_PER_RUN,
    MERGE_STRATEGIES,
    PLANS,
    REQUESTS_PER_MINUTE_PLANS,
    SEGMENT_NAMES,
)

SOURCE_NAME = "hypertracker"
"""The source's name: its section of dlt config, [sources.hypertracker]."""
SETTING_VARIABLE = f"SOURCES__{SOURCE_NAME.upper()}__{{}}"
"""The environment variable of a setting, by its name in upper case."""


class Flag(NamedTuple):
    """A command-line option that sets a setting: its help reads `help (note; VARIABLE)`."""

    option: str
    help: str
    note: str
    load_only: bool = False
    """Only `hypertracker load` takes it."""


@dataclass(frozen=True)
class Setting:
    """One setting of the source, as the source's signature, the README and the CLI show it."""

    name: str
    annotation: Any
    """The type dlt resolves a configured value to, as the source's signature declares it."""
    default: Any
    meaning: str
    """What it does, one line (Markdown), as the README's table says."""
    shown_default: str
    """The default as the README's table says it (Markdown)."""
    check: Check
    example: Any = None
    """A value the `init` template shows where the default is none."""
    flag: Flag | None = None
    later_than: str | None = None
    """The setting checked before it whose value this one's, when set, must be later than."""
    client: bool = False
    """The API client takes it: `hypertracker check` resolves it too."""

    @property
    def variable(self) -> str:
        """The environment variable that sets it."""
        return SETTING_VARIABLE.format(self.name.upper())

    @property
    def secret(self) -> bool:
        """Whether it belongs in secrets.toml, never in config.toml."""
        return is_secret_hint(self.annotation)


_PLAN_NAMES = ", ".join(f"`{name}`" for name in PLANS)
_PLAN_RATES = ", ".join(f"`{name}` {rate}" for name, rate in REQUESTS_PER_MINUTE_PLANS.items())


def _request_budget(name: str, period: str, example: int) -> Setting:
    """The setting of the request budget of a UTC day or month."""
    return Setting(
        name,
        int | str | None,
        None,
        f"the most requests (usage tokens) per UTC {period}, retries included, counted across "
        "runs in the pipeline's state; see [Costs](#costs)",
        "none: unlimited",
        unset_is_none(
            whole_number(
                1,
                None,
                "it must be a whole number above 0",
                f"Use a whole number of requests such as {name}=1000, or leave it unset",
            )
        ),
        example=example,
        client=True,
    )


SETTINGS = (
    Setting(
        "base_url",
        str,
        API_BASE_URL,
        "the API's address (http or https)",
        f"`{API_BASE_URL}`",
        check_base_url,
        client=True,
    ),
    Setting(
        "api_key",
        TSecretStrValue | None,
        None,
        "the API token",
        "none: required",
        check_api_key,
        client=True,
    ),
    Setting(
        "plan",
        str | None,
        None,
        f"the API plan ({_PLAN_NAMES}): sets the two budgets below and `requests_per_minute`, "
        "each unless set on its own",
        "none",
        unset_is_none(
            one_of(
                tuple(PLANS), "it is not a plan of the API", f"Use one of {', '.join(PLANS)}", True
            )
        ),
        example="pulse",
        client=True,
    ),
    _request_budget("daily_request_budget", "day", example=100),
    _request_budget("monthly_request_budget", "month", example=50_000),
    Setting(
        "requests_per_minute",
        str | int | None,
        None,
        f"pace every request of the source to this rate: a number or a plan name ({_PLAN_RATES})",
        "unpaced",
        unset_is_none(check_requests_per_minute),
        example="pulse",
        client=True,
    ),
    Setting(
        "start_date",
        str | datetime | None,
        HISTORY_START,
        "where fill history starts; ISO 8601; earlier dates are clamped to the first day; moved "
        "earlier later on, the next run loads the history it adds",
        f"`{HISTORY_START}` (the API's first day)",
        check_start_date,
        flag=Flag(
            "--start-date",
            "where fill history starts",
            f"default: {HISTORY_START[:10]}, the API's first day",
        ),
    ),
    Setting(
        "coins",
        ListSetting,
        None,
        "fills of these coins only, each with its own high-water mark; case-sensitive (`BTC`, "
        "`kPEPE`, `xyz:MSTR`)",
        "all markets",
        coin_list(case_sensitive=True),
        example=["BTC", "ETH"],
        flag=Flag(
            "--coins",
            "comma-separated coins whose fills to load, case-sensitive",
            "default: all markets",
        ),
    ),
    Setting(
        "address",
        str | None,
        None,
        "fills of one wallet only",
        "any wallet",
        unset_is_none(check_address),
        example="0x...",
    ),
    Setting(
        "side",
        str | None,
        None,
        "`A` (ask, sell) or `B` (bid, buy)",
        "both",
        unset_is_none(
            one_of(
                FILL_SIDES,
                "the API knows only A (ask, sell) and B (bid, buy), in upper case",
                "Use side='A' or side='B', or leave it unset for both",
            )
        ),
        example="A",
    ),
    Setting(
        "end_date",
        str | datetime | None,
        None,
        "makes the run a back-fill of the fills from `start_date` up to (not including) "
        "`end_date`, leaving the incremental marks alone (the Dagster example's daily partitions)",
        "none: incremental",
        unset_is_none(parse_instant),
        example="2026-01-01",
        flag=Flag(
            "--end-date",
            "with --start-date: back-fill the fills from start to end date",
            "marks stay put",
            load_only=True,
        ),
        later_than="start_date",
    ),
    Setting(
        "lag",
        float,
        DEFAULT_LAG.total_seconds(),
        "how far below the newest fill it had read each run reads again, for fills the API "
        "indexes late",
        f"`{DEFAULT_LAG.total_seconds():g}` seconds",
        check_lag,
    ),
    Setting(
        "page_size",
        int,
        FILLS_MAX_PAGE_SIZE,
        f"fills per request, 1 to {FILLS_MAX_PAGE_SIZE}",
        f"`{FILLS_MAX_PAGE_SIZE}` (the API maximum)",
        whole_number(
            1,
            FILLS_MAX_PAGE_SIZE,
            f"the API takes 1 to {FILLS_MAX_PAGE_SIZE} fills a page",
            f"Leave it unset for {FILLS_MAX_PAGE_SIZE}, the cheapest in requests",
        ),
    ),
    Setting(
        "max_fills_per_run",
        int,
        MAX_FILLS_PER_RUN,
        "the most fills one run reads (a chunk, about one request per 1,000 fills); a longer "
        "history loads over several runs, and `hypertracker load` runs them back to back; `0`: "
        "no limit",
        f"`{MAX_FILLS_PER_RUN}`",
        whole_number(
            0,
            None,
            "it must be a whole number, 0 or more",
            "Use for example max_fills_per_run=250000, or 0 for no limit",
        ),
    ),
    Setting(
        "heatmap_coins",
        ListSetting,
        DEFAULT_HEATMAP_COINS,
        "coins whose liquidation heatmap to load",
        ", ".join(f"`{coin}`" for coin in DEFAULT_HEATMAP_COINS),
        coin_list(case_sensitive=False),
        flag=Flag(
            "--heatmap-coins",
            "comma-separated coins whose heatmap to load",
            f"default: {','.join(DEFAULT_HEATMAP_COINS)}",
        ),
    ),
    Setting(
        "refresh_snapshots",
        bool,
        False,
        "fetch heatmaps and risk even when their data version is already loaded",
        "`false`",
        check_flag,
    ),
    Setting(
        "segment_ids",
        ListSetting,
        None,
        "cohorts whose liquidation risk to load",
        f"all {len(SEGMENT_NAMES)}",
        check_segment_ids,
        example=[9, 10],
        flag=Flag(
            "--segments",
            "comma-separated segment ids whose risk to load",
            f"default: all {len(SEGMENT_NAMES)}",
        ),
    ),
    Setting(
        "merge_strategy",
        str,
        MERGE_STRATEGIES[0],
        "how every table merges on its key: `delete-insert` for SQL databases, `upsert` for delta "
        "or iceberg tables on the filesystem destination",
        f"`{MERGE_STRATEGIES[0]}`",
        one_of(
            MERGE_STRATEGIES,
            f"it is not one of {', '.join(MERGE_STRATEGIES)}",
            "Use delete-insert for SQL databases, upsert for delta or iceberg tables on a bucket",
        ),
    ),
    Setting(
        "response_deadline",
        float,
        DEFAULT_RESPONSE_DEADLINE,
        "the longest one answer may take, connection to last byte (a dripping answer is cut and "
        "retried like a timeout)",
        f"`{DEFAULT_RESPONSE_DEADLINE:g}` seconds",
        check_response_deadline,
        client=True,
    ),
    Setting(
        "max_body_mb",
        dict[str, float] | None,
        None,
        'megabytes an answer\'s body may hold, by kind, checked while reading: `{"fills": 16}` '
        "changes one; [docs/limits.md](docs/limits.md)",
        f"fills page {MAX_BODY_MB['fills']:g}, heatmap file {MAX_BODY_MB['heatmap_file']:g} "
        f"({MAX_BODY_MB['heatmap_inflated']:g} inflated), ...",
        check_max_body_mb,
        example={"fills": 16},
        client=True,
    ),
)
"""Every setting of the source, in the order they are checked."""
