"""What a killed run left in the pipeline's folder: repaired, then loaded before anything new."""

import contextlib
import fnmatch
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import dlt
from dlt.common.destination.exceptions import SqlClientNotAvailable
from dlt.common.schema.typing import C_DLT_LOAD_ID
from dlt.common.storages import LoadStorage, NormalizeStorage, PackageStorage, SchemaStorage
from dlt.destinations.exceptions import DatabaseUndefinedRelation

from hypertracker_source.runs.run_lock import lock_if_free

STORAGE_FOLDERS = {
    "load": (
        LoadStorage.NEW_PACKAGES_FOLDER,
        LoadStorage.NORMALIZED_FOLDER,
        LoadStorage.LOADED_FOLDER,
    ),
    "normalize": (NormalizeStorage.EXTRACTED_FOLDER,),
}
"""The folders dlt makes inside each storage of a pipeline's working folder on first use."""
SCHEMA_FILE = SchemaStorage.NAMED_SCHEMA_FILE_PATTERN % ("*", "*")
"""The name of a schema file in the pipeline's `schemas` folder: `<name>.schema.<format>`."""


def repair_cut_storage(working_dir: Path) -> list[Path]:
    """Repairs a pipeline's working folder where a kill cut a dlt step: its storages' folders and
    its schemas; what it changed. Run it before dlt attaches to the folder, which lists both.

    It repairs only while it can hold the pipeline's lock: a run that holds it is alive, and the
    files it writes are not leftovers.
    """
    with lock_if_free(working_dir) as held:
        if not held:
            return []
        return [*make_missing_storage_folders(working_dir), *discard_unsaved_schemas(working_dir)]


def make_missing_storage_folders(working_dir: Path) -> list[Path]:
    """Makes the folders of the pipeline's storages that a kill kept dlt from making; them.

    dlt makes a storage's folder, its version file, then the folders inside it, one by one
    (`LoadStorage.initialize_storage`). A kill between them leaves a storage that dlt takes as
    ready, and every later run fails listing a folder that is not there:
    `FileNotFoundError: ... load/normalized/.`.
    """
    # Hand-written: dlt lists the folders of a storage it did not make without making them.
    made = []
    for storage, folders in STORAGE_FOLDERS.items():
        root = working_dir / storage
        for folder in (root / name for name in folders):
            if root.is_dir() and not folder.is_dir():
                folder.mkdir()
                made.append(folder)
    return made


def discard_unsaved_schemas(working_dir: Path) -> list[Path]:
    """Deletes the files of the pipeline's `schemas` folder that are not schema files; them.

    dlt saves a schema by writing a file named by a random id, then renaming it onto
    `<name>.schema.json` (`FileStorage.save_atomic`). A kill between the two leaves the first,
    which dlt's list of schemas takes for a schema named by that id, and writes into the
    pipeline's state when it attaches: every later run fails with `InvalidSchemaName`. The
    schema it held is the one saved before, or the one the next run makes again.
    """
    # Hand-written: dlt's schema storage lists every file of its folder as a schema.
    folder = working_dir / "schemas"
    unsaved = [
        path
        for path in (folder.iterdir() if folder.is_dir() else ())
        if path.is_file() and not fnmatch.fnmatch(path.name, SCHEMA_FILE)
    ]
    for path in unsaved:
        path.unlink()
    return unsaved


def discard_extracted_twins(pipeline: dlt.Pipeline) -> list[str]:
    """Deletes the extracted copy of packages whose normalized package was committed; their ids.

    dlt's normalize commits a package in two steps (dlt/normalize/normalize.py: rename
    load/new/<id> to load/normalized/<id>, then delete normalize/extracted/<id>). A kill between
    them, or during the delete, leaves the package in both places, and every later normalize spools
    the extracted copy again and fails renaming it onto the committed one: `OSError: [Errno 39]
    Directory not empty`. The committed copy holds everything; the extracted one is the leftover.
    """
    # Hand-written: dlt's normalize assumes that the step between its two renames is never cut.
    normalized = pipeline.list_normalized_load_packages()
    committed = {*normalized, *pipeline.list_completed_load_packages()}
    extracted = Path(pipeline.working_dir, "normalize", NormalizeStorage.EXTRACTED_FOLDER)
    twins = [load_id for load_id in pipeline.list_extracted_load_packages() if load_id in committed]
    for load_id in twins:
        shutil.rmtree(extracted / load_id)
    return twins


def finish_left_behind(
    pipeline: dlt.Pipeline, on_left_behind: Callable[[], None] | None = None
) -> bool:
    """Repairs and loads what a killed or stopped run left, after telling `on_left_behind` that
    there are packages; True when there were some. Run it with the pipeline's lock held.

    dlt's `run` would load only those and skip the source: finishing them first lets the run that
    follows read the source. Their state came with them, so no mark moves past unloaded fills.
    """
    discard_extracted_twins(pipeline)
    if not pipeline.has_pending_data:
        return False
    if on_left_behind:
        on_left_behind()
    pipeline.normalize()
    if pipeline.default_schema_name:
        complete_landed_state_jobs(pipeline)
        redo_staged_tables(pipeline)
    pipeline.load()
    return True


def complete_landed_state_jobs(pipeline: dlt.Pipeline) -> list[str]:
    """Records as done the started state-row jobs whose row the destination holds; their loads.

    dlt commits a job's transaction, then records the job as done (dlt/load/load.py: the worker's
    `on_completed` saves a pending transition). A kill between the two leaves the job started, and
    the next load runs it again: the package's state row, inserted twice, breaks the unique
    `_dlt_id` of PostgreSQL (`_dlt_pipeline_state__dlt_id_key`) on every rerun.
    """
    # Hand-written: dlt cannot tell a committed job from an unfinished one after a kill.
    state_table = pipeline.default_schema.state_table_name
    completed = []
    for load_id in pipeline.list_normalized_load_packages():
        state_jobs = [job for job in started_jobs(pipeline, load_id) if job[0] == state_table]
        if state_jobs and state_row_landed(pipeline, load_id):
            for _, path in state_jobs:
                move_job(path, PackageStorage.COMPLETED_JOBS_FOLDER)
            completed.append(load_id)
    return completed


def redo_staged_tables(pipeline: dlt.Pipeline) -> list[str]:
    """Clears the staging rows of each left package's tables with a started job, and puts the
    table's completed jobs back to run again with it; the tables.

    The same cut as `complete_landed_state_jobs`, on a merge table: its rows go to the staging
    dataset, where a job run again breaks the unique `_dlt_id` (`segments__dlt_id_key`). Which of
    a table's jobs committed is not known, so all of them load again into a cleared staging table.
    """
    # Hand-written: dlt cannot tell a committed job from an unfinished one after a kill.
    schema = pipeline.default_schema
    redone = []
    for load_id in pipeline.list_normalized_load_packages():
        tables = {
            table
            for table, _ in started_jobs(pipeline, load_id)
            if schema.tables.get(table, {}).get("write_disposition") == "merge"
            and C_DLT_LOAD_ID in schema.tables[table].get("columns", {})
        }
        if not tables or not clear_staged_rows(pipeline, load_id, tables):
            continue
        info = pipeline.get_load_package_info(load_id)
        for job in info.jobs[PackageStorage.COMPLETED_JOBS_FOLDER]:
            if job.job_file_info.table_name in tables and job.job_file_info.file_format != "sql":
                move_job(Path(job.file_path), PackageStorage.NEW_JOBS_FOLDER)
        for table, path in started_jobs(pipeline, load_id):
            if table in tables:
                pending = path.parent.parent / PackageStorage.PENDING_TRANSITIONS_FOLDER
                (pending / path.name).unlink(missing_ok=True)
        redone += sorted(tables)
    return redone


def clear_staged_rows(pipeline: dlt.Pipeline, load_id: str, tables: set[str]) -> bool:
    """Deletes a load's rows from these tables of the staging dataset; False without SQL."""
    try:
        with pipeline.sql_client() as client, client.with_staging_dataset():
            for table in tables:
                with contextlib.suppress(DatabaseUndefinedRelation):
                    qualified = client.make_qualified_table_name(table)
                    client.execute_sql(
                        f"DELETE FROM {qualified} WHERE {C_DLT_LOAD_ID} = %s", load_id
                    )
    except SqlClientNotAvailable:
        return False
    return True


def started_jobs(pipeline: dlt.Pipeline, load_id: str) -> list[tuple[str, Path]]:
    """The table and file of each job of a left package that a run started, SQL ones aside."""
    jobs = pipeline.get_load_package_info(load_id).jobs[PackageStorage.STARTED_JOBS_FOLDER]
    return [
        (job.job_file_info.table_name, Path(job.file_path))
        for job in jobs
        if job.job_file_info.file_format != "sql"
    ]


def move_job(path: Path, folder: str) -> None:
    """Moves a job file of a package into another of its job folders."""
    os.replace(path, path.parent.parent / folder / path.name)


def state_row_landed(pipeline: dlt.Pipeline, load_id: str) -> bool:
    """Whether the destination holds the state row of a load (every package carries one)."""
    try:
        with pipeline.sql_client() as client:
            table = client.make_qualified_table_name(pipeline.default_schema.state_table_name)
            sql = f"SELECT 1 FROM {table} WHERE {C_DLT_LOAD_ID} = %s"
            return bool(client.execute_sql(sql, load_id))
    except (SqlClientNotAvailable, DatabaseUndefinedRelation):
        return False
