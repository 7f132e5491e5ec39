"""What a killed run left in the pipeline's folder: repaired, then loaded before anything new."""

import shutil
from pathlib import Path

import dlt
from dlt.common.storages import NormalizeStorage


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


def finish_left_behind(pipeline: dlt.Pipeline) -> bool:
    """Repairs and loads the packages a killed or stopped run left; True when there were some.

    dlt's `run` would load only those and skip the source: finishing them first lets the run that
    follows read the source. Their state came with them, so no mark moves past unloaded fills.
    """
    discard_extracted_twins(pipeline)
    if not pipeline.has_pending_data:
        return False
    pipeline.normalize()
    pipeline.load()
    return True
