"""Runs one job of the Dagster example in its own process, as a Dagster run launcher would."""

import runpy
import sys
from pathlib import Path

from dagster import DagsterInstance

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "dagster_definitions.py"


def main(job_name: str, partition_key: str | None = None) -> int:
    """Executes the job (one partition of it, if given); 0 when it succeeded."""
    defs = runpy.run_path(str(EXAMPLE))["defs"]
    result = defs.get_job_def(job_name).execute_in_process(
        partition_key=partition_key, instance=DagsterInstance.ephemeral(), raise_on_error=False
    )
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
