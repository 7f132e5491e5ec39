"""One profile per destination type: its checks before an extract and its steps after each load."""

from collections.abc import Callable
from typing import NamedTuple

import dlt
from dlt.common.configuration.container import Container
from dlt.common.configuration.specs import ConnectionStringCredentials
from dlt.common.pipeline import PipelineContext

from hypertracker_source.destinations.duckdb import check_duckdb_dataset
from hypertracker_source.destinations.mysql import index_merge_keys


def _no_check(pipeline: dlt.Pipeline) -> None:
    """Accepts any pipeline."""


def _no_steps(pipeline: dlt.Pipeline) -> list[str]:
    """Does nothing after a load."""
    return []


class DestinationProfile(NamedTuple):
    """What a destination type needs around a load: a check that refuses a pipeline before any
    request, and steps after a load that later loads need (returning the tables they changed)."""

    check: Callable[[dlt.Pipeline], None] = _no_check
    after_load: Callable[[dlt.Pipeline], list[str]] = _no_steps


_MYSQL = DestinationProfile(after_load=index_merge_keys)
PROFILES = {
    "duckdb": DestinationProfile(check=check_duckdb_dataset),
    "mysql": _MYSQL,
    "mariadb": _MYSQL,
}
"""The profiles by destination type; a SQLAlchemy destination's type is its database's."""
_DEFAULT = DestinationProfile()


def _destination_kind(pipeline: dlt.Pipeline) -> str | None:
    """The pipeline's destination type (duckdb, postgres, ...), for SQLAlchemy its database's
    (mysql, mariadb, sqlite, ...); None without a destination."""
    if pipeline.destination is None:
        return None
    kind = pipeline.destination.destination_type.rsplit(".", 1)[-1]
    if kind != "sqlalchemy":
        return kind
    credentials = pipeline.destination_client().config.credentials
    if not isinstance(credentials, ConnectionStringCredentials):
        return kind
    return credentials.drivername.split("+", 1)[0]


def _profile_of(pipeline: dlt.Pipeline) -> DestinationProfile:
    """The profile of the pipeline's destination type; one that does nothing for most."""
    kind = _destination_kind(pipeline)
    return _DEFAULT if kind is None else PROFILES.get(kind, _DEFAULT)


def after_load(pipeline: dlt.Pipeline) -> list[str]:
    """Takes the steps the pipeline's destination needs after a load; returns the tables changed."""
    return _profile_of(pipeline).after_load(pipeline)


def prepare(pipeline: dlt.Pipeline) -> list[str]:
    """Readies a pipeline for a load of the source: its destination's checks, then the steps
    after the previous load, if not taken yet; returns the tables those changed.

    The source calls it before its first request (so `pipeline.run(hypertracker())` needs no
    call of its own); call it to check a pipeline without a request.
    """
    profile = _profile_of(pipeline)
    profile.check(pipeline)
    return profile.after_load(pipeline)


def prepare_running_pipeline() -> None:
    """Readies the pipeline that is running the source, if any (see `prepare`)."""
    context = Container()[PipelineContext]
    if context.is_active() and isinstance(pipeline := context.pipeline(), dlt.Pipeline):
        prepare(pipeline)
