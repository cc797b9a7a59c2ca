"""The example notebook runs top to bottom against the test broker and registers a model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import car_fleet
from lakeless.fleet import Fleet
from lakeless.kafka import TopicSpec, create_topics
from lakeless.registry import Registry
from lakeless.testing.kafka import produce_clean

NOTEBOOK = Path(__file__).parents[2] / "examples" / "train-from-kafka.ipynb"


def test_committed_notebook_has_no_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text())
    for cell in notebook["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


def test_notebook_trains_and_registers(
    kafka: KafkaSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seconds, cars = 240, 30
    suffix = time.monotonic_ns() % 10**9
    clean, models = f"test-nb-clean-{suffix}", f"test-nb-models-{suffix}"
    create_topics(
        kafka,
        [TopicSpec(clean, 3, 1, {"retention.ms": "-1"}), TopicSpec(models, 1, 1, {})],
    )
    fleet = Fleet(cars, seed=5, start=(int(time.time()) - seconds - 60) * 1000, failure_rate=6.0)
    events = (event for batch in fleet.batches(seconds) for event in batch.events())
    produce_clean(kafka, clean, ((None, event.ts, event) for event in events))
    for name, value in {
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LAKELESS_TOPICS__CLEAN": clean,
        "LAKELESS_TOPICS__MODELS": models,
        "LAKELESS_DATA_DIR": str(tmp_path / "lakeless"),
        "LAKELESS_NOTEBOOK_WINDOW": "1h",
        "LAKELESS_NOTEBOOK_EPOCHS": "2",
        "LAKELESS_NOTEBOOK_MODEL": "notebook-model",
        "MPLBACKEND": "Agg",
    }.items():
        monkeypatch.setenv(name, value)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    ).execute()

    errors = [
        output
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
        if output.output_type == "error"
    ]
    assert not errors
    settings = Settings(kafka=kafka, topics=TopicSettings(clean=clean, models=models))
    with Registry(settings) as registry:
        (summary,) = registry.list("notebook-model")
    assert summary.version == 1
    assert summary.lineage["topic"] == clean
    assert summary.lineage["num_records"] == cars * seconds
    assert summary.metrics["per_mode"]
    assert summary.pipeline == "car-fleet" and summary.features == car_fleet().feature_names
