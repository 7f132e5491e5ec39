"""The API key goes to the API in a header and nowhere else, on good runs and failed ones."""

import gzip
import logging
import traceback
from collections.abc import Iterator
from pathlib import Path

import dlt
import orjson
import pyarrow.parquet as pq
import pytest
from dlt.pipeline.exceptions import PipelineStepFailed
from helpers import PipelineFactory

from hypertracker_simulator import Faults, Simulator
from hypertracker_source import hypertracker
from hypertracker_source.commands import main

KEY = "htk-live-6Qz8-DO-NOT-LEAK-4e1f"
WRONG_KEY = "htk-live-9Xw2-REVOKED-ALSO-SECRET-77c0"
KEY_VARIABLE = "SOURCES__HYPERTRACKER__API_KEY"
FAILURES = {
    "server errors": (Faults(error_rate=1.0), KEY),
    "dropped connections": (Faults(reset_rate=1.0), KEY),
    "rejected key": (Faults(), WRONG_KEY),
}
"""Failed runs, each with the faults the API suffers and the key the run is given."""


def file_texts(folder: Path) -> Iterator[tuple[Path, bytes]]:
    """Every file under a folder as bytes, gzip files unpacked and parquet files read."""
    for path in sorted(folder.rglob("*")):
        if not path.is_file():
            continue
        content = path.read_bytes()
        yield path, content
        if path.suffix == ".gz":
            yield path, gzip.decompress(content)
        elif path.suffix == ".parquet":
            yield path, repr(pq.read_table(path).to_pylist()).encode()


def dataset_text(pipeline: dlt.Pipeline) -> str:
    """Every row of every table in the destination, dlt's own tables included, as text."""
    dataset = pipeline.dataset()
    return repr({table: dataset[table].arrow().to_pylist() for table in dataset.tables})


def restored_state(pipeline: dlt.Pipeline, scratch: Path) -> dict:
    """The pipeline state that the destination holds, as a new machine would restore it."""
    restored = dlt.pipeline(
        pipeline.pipeline_name,
        destination=pipeline.destination,
        dataset_name=pipeline.dataset_name,
        pipelines_dir=str(scratch),
    )
    restored.sync_destination()
    return restored.state


@pytest.fixture
def debug_logging(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> Iterator[pytest.LogCaptureFixture]:
    """Every log record at DEBUG, dlt's own included (its logger does not propagate)."""
    monkeypatch.setenv("RUNTIME__LOG_LEVEL", "DEBUG")
    run_context = dlt.current.run_context()
    run_context.initialize_runtime()
    dlt_logger = logging.getLogger(run_context.name)
    dlt_logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG)
    yield caplog
    dlt_logger.removeHandler(caplog.handler)
    monkeypatch.delenv("RUNTIME__LOG_LEVEL")
    run_context.initialize_runtime()


def test_key_reaches_only_the_api_in_its_header(
    make_pipeline: PipelineFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    debug_logging: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
):
    monkeypatch.setenv("RUNTIME__REQUEST_MAX_ATTEMPTS", "2")
    texts: list[str] = []
    with Simulator(seed=3, fills=300, api_key=KEY) as sim:
        settings = {"base_url": sim.url, "heatmap_coins": ["BTC"], "segment_ids": [9]}
        monkeypatch.setenv(KEY_VARIABLE, KEY)
        pipeline = make_pipeline()
        pipeline.run(hypertracker(**settings))
        texts += [str(pipeline.last_trace), repr(pipeline.last_trace.asdict())]

        for faults, key in FAILURES.values():
            sim.faults = faults
            monkeypatch.setenv(KEY_VARIABLE, key)
            with pytest.raises(PipelineStepFailed) as failure:
                pipeline.run(hypertracker(**settings))
            texts.append("".join(traceback.format_exception(failure.value)))
            texts += [str(pipeline.last_trace), repr(pipeline.last_trace.asdict())]

        monkeypatch.setenv("SOURCES__HYPERTRACKER__BASE_URL", sim.url)
        monkeypatch.setenv("DLT_DATA_DIR", str(tmp_path / "cli"))
        cli_load = [
            "load",
            "--destination",
            str(tmp_path / "cli.duckdb"),
            "--resources",
            "segments",
        ]
        assert main(cli_load) == 1

        texts += [orjson.dumps(pipeline.state).decode(), dataset_text(pipeline)]
        texts.append(orjson.dumps(restored_state(pipeline, tmp_path / "restored")).decode())
        output = capfd.readouterr()
        texts += [output.out, output.err, debug_logging.text]
        texts += [repr(record.__dict__) for record in debug_logging.records]

        api_keys = {r.headers.get("Authorization") for r in sim.requests if r.host == "api"}
        downloads = [record for record in sim.requests if record.host == "files"]

    assert api_keys == {f"Bearer {KEY}", f"Bearer {WRONG_KEY}"}
    assert downloads
    assert not [record for record in downloads if "Authorization" in record.headers]
    assert KEY not in repr(downloads)
    debug_loggers = {
        record.name for record in debug_logging.records if record.levelno == logging.DEBUG
    }
    assert {"dlt", "urllib3.connectionpool"} <= debug_loggers
    assert "HyperTracker rejected the API key" in output.err
    for text in texts:
        assert KEY not in text
        assert WRONG_KEY not in text
    files = list(file_texts(tmp_path))
    assert any(path.suffix == ".duckdb" for path, _ in files)
    assert any(path.name.startswith("trace") for path, _ in files)
    for path, content in files:
        assert KEY.encode() not in content, path
        assert WRONG_KEY.encode() not in content, path
