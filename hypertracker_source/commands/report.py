"""`hypertracker report`: one self-contained HTML page of a loaded dataset."""

import argparse
from pathlib import Path

from hypertracker_source.commands.options import (
    DATASET,
    DEMO_DATABASE,
    LOCAL_DATABASE,
    AddCommand,
    destination_arg,
)
from hypertracker_source.exceptions import HyperTrackerError

_REPORT_PAGE = "hypertracker_report.html"


def register(add_command: AddCommand) -> None:
    """Adds `report` and its options to the command line."""
    report = add_command(
        "report",
        help="write an interactive HTML page (one self-contained file) of a dataset",
        description="Write one self-contained HTML page of a loaded dataset: fills, cascades, "
        f"heatmaps and cohort risk. It reads {LOCAL_DATABASE} (what `hypertracker load` fills) "
        f"unless --destination names another file, such as the demo's {DEMO_DATABASE}.",
    )
    report.add_argument(
        "--destination",
        default=LOCAL_DATABASE,
        help=f"a DuckDB file, or a dlt destination name whose credentials resolve from dlt config "
        f"(default: {LOCAL_DATABASE})",
    )
    report.add_argument("--dataset", default=DATASET, help=f"the dataset to read ({DATASET})")
    report.add_argument(
        "--output", default=_REPORT_PAGE, help=f"the page to write (default: {_REPORT_PAGE})"
    )
    report.add_argument(
        "--force",
        action="store_true",
        help="let --output replace a file that is not a report of ours, or the database read",
    )
    report.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> None:
    """Runs `hypertracker report`: the page of a loaded dataset."""
    from hypertracker_source.report import check_output, stored_dataset, write_report

    if args.destination.endswith(".duckdb") and not Path(args.destination).is_file():
        demo_hint = (
            f"; the demo's data is in {DEMO_DATABASE}: hypertracker report --destination "
            f"{DEMO_DATABASE}"
            if Path(DEMO_DATABASE).is_file()
            else ""
        )
        raise HyperTrackerError(
            f"No DuckDB file at {args.destination}: load one with `hypertracker load` or "
            "`hypertracker demo` first, or name it (or another destination) with --destination"
            + demo_hint
        )
    database = Path(args.destination) if args.destination.endswith(".duckdb") else None
    check_output(Path(args.output), database, args.force)
    dataset = stored_dataset(destination_arg(args.destination, args.dataset), args.dataset)
    print_written(write_report(dataset, Path(args.output)))


def print_written(page: Path) -> None:
    """Prints where the report went."""
    size = page.stat().st_size / 1e6
    print(f"\nReport: {page} ({size:.1f} MB, works offline; open it in a browser)")
