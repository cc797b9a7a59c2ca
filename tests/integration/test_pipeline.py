"""Pipelines on a real broker: ``lakeless pipeline create|list|show``, evolution, isolation."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import example_schema, schema_path
from lakeless.kafka import create_topics
from lakeless.kafka._topics import registry_topics
from lakeless.lifecycle import RunLimits
from lakeless.pipeline import Pipeline, SchemaRegistry, pipeline_topic_specs, resolve_pipeline
from lakeless.pipeline._registry import PipelineError
from lakeless.preprocess import PreprocessStage
from lakeless.registry import Registry
from lakeless.testing.events import example_json
from lakeless.testing.kafka import produce_records, read_topic
from lakeless.testing.models import make_test_onnx


@pytest.fixture
def settings(kafka: KafkaSettings) -> Settings:
    """Registries of their own, so tests do not see each other's pipelines and models."""
    run = uuid.uuid4().hex[:8]
    topics = TopicSettings(schemas=f"schemas-{run}", models=f"models-{run}")
    settings = Settings(kafka=kafka, topics=topics)
    create_topics(kafka, registry_topics(topics))
    return settings


def cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAKELESS_TOPICS__SCHEMAS": settings.topics.schemas,
        "LAKELESS_TOPICS__MODELS": settings.topics.models,
    }
    return subprocess.run(
        [sys.executable, "-m", "lakeless", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_create_is_idempotent_and_show_list_describe_it(settings: Settings) -> None:
    name = f"pumps-{uuid.uuid4().hex[:6]}"
    first = cli(settings, "pipeline", "create", name, "--schema", schema_path("pumps"), "--json")
    assert first.returncode == 0, first.stderr
    created = json.loads(first.stdout)
    assert created["created_version"] is True and created["version"] == 1
    assert created["topics"]["raw"] == f"{name}.raw" and created["key"] == "pump_id"
    again = cli(settings, "pipeline", "create", name, "--schema", schema_path("pumps"), "--json")
    assert json.loads(again.stdout)["created_version"] is False  # the same schema: nothing new
    shown = json.loads(cli(settings, "pipeline", "show", name, "--json").stdout)
    assert shown["fingerprint"] == example_schema("pumps").fingerprint_hex
    assert [f["name"] for f in shown["features"]] == list(example_schema("pumps").feature_names)
    listed = json.loads(cli(settings, "pipeline", "list", "--json").stdout)
    assert {p["pipeline"] for p in listed} >= {"car-fleet", name}
    topics = read_topic(settings.kafka, f"{name}.clean", expected=0, idle=0.2)
    assert topics == []  # the topics exist (reading an unknown topic raises)


def test_unknown_pipeline_and_bad_schema_give_one_clear_line(
    settings: Settings, tmp_path: Path
) -> None:
    missing = cli(settings, "pipeline", "show", "nosuch")
    assert missing.returncode != 0
    assert "pipeline 'nosuch' is not registered" in missing.stderr
    assert "lakeless pipeline create nosuch" in missing.stderr
    bad = tmp_path / "bad.avsc"
    bad.write_text(
        json.dumps({"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}]})
    )
    refused = cli(settings, "pipeline", "create", "bad-one", "--schema", str(bad))
    assert refused.returncode != 0 and '"lakeless" attribute' in refused.stderr
    assert "Traceback" not in refused.stderr


def _evolved(change: Any) -> dict[str, Any]:
    raw = copy.deepcopy(dict(example_schema("pumps").raw))
    change(raw["fields"])
    return raw


def test_schema_evolution_adds_versions_and_refuses_what_breaks_a_live_model(
    settings: Settings,
) -> None:
    from lakeless.schema import load_schema

    name = f"pumps-{uuid.uuid4().hex[:6]}"
    registry = SchemaRegistry(settings)
    v1, _ = registry.create(Pipeline.new(name, example_schema("pumps")))
    create_topics(settings.kafka, pipeline_topic_specs(settings, v1))
    # A live model on v1's features.
    with Registry(settings) as models:
        record = models.register(
            v1.model,
            make_test_onnx(n_features=len(v1.schema.feature_names)),
            threshold=1.0,
            features=v1.schema.feature_names,
            pipeline=name,
            schema_fingerprint=v1.schema.fingerprint_hex,
        )
        models.promote(record.name, record.version)
    added = load_schema(
        _evolved(lambda f: f.append({"name": "humidity", "type": "double", "default": 0.5}))
    )
    v2, appended = registry.create(
        Pipeline.new(name, added), live_features=lambda p: {"live": v1.schema.feature_names}
    )
    assert appended and v2.version == 2 and len(v2.versions) == 2
    assert resolve_pipeline(settings, name).schema == added
    no_default = load_schema(_evolved(lambda f: f.append({"name": "x", "type": "double"})))
    with pytest.raises(PipelineError, match="has no default"):
        registry.create(Pipeline.new(name, no_default))
    removed = load_schema(_evolved(lambda f: f.pop(4)))  # flow_rate, a live model's input
    with pytest.raises(PipelineError, match="uses feature 'flow_rate'"):
        registry.create(
            Pipeline.new(name, removed), live_features=lambda p: {"m:1": v1.schema.feature_names}
        )


def test_two_pipelines_on_one_cluster_never_see_each_other_s_data(settings: Settings) -> None:
    registry = SchemaRegistry(settings)
    run = uuid.uuid4().hex[:6]
    pumps, _ = registry.create(Pipeline.new(f"pumps-{run}", example_schema("pumps"), partitions=2))
    fleet, _ = registry.create(Pipeline.new(f"cars-{run}", resolve_pipeline(settings).schema))
    for pipeline in (pumps, fleet):
        create_topics(settings.kafka, pipeline_topic_specs(settings, pipeline))
    now = 1_700_000_000_000
    produce_records(
        settings.kafka,
        pumps.topics.raw,
        [
            (b"pump-1", example_json(pumps.schema, pump_id="pump-1", timestamp=now + i))
            for i in range(20)
        ],
    )
    produce_records(
        settings.kafka,
        fleet.topics.raw,
        [(b"car-1", example_json(fleet.schema, car_id="car-1", ts=now, seq=i)) for i in range(30)],
    )
    for pipeline, count in ((pumps, 20), (fleet, 30)):
        stats = PreprocessStage(settings, pipeline).run(RunLimits(count=count, timeout=60))
        assert stats.clean == count and stats.dead_lettered == 0
        assert stats.to_dict()["balanced"]
    pump_records = read_topic(settings.kafka, pumps.topics.clean, expected=20)
    car_records = read_topic(settings.kafka, fleet.topics.clean, expected=30)
    assert {m.key() for m in pump_records} == {b"pump-1"} and len(pump_records) == 20
    assert {m.key() for m in car_records} == {b"car-1"} and len(car_records) == 30
    assert all(m.value()[1:9] == pumps.schema.fingerprint for m in pump_records)
    assert pumps.group("preprocess") != fleet.group("preprocess")
