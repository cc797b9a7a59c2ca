"""The model registry against a real broker: register, promote, follow, refuse, big models, CLI;
models and pipelines: another pipeline's model is refused, a model of schema v1 scores v2."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import numpy as np
import pytest
from typer.testing import CliRunner

from lakeless.cli import app
from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.examples import car_fleet
from lakeless.kafka import create_topics
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.pipeline import Pipeline, SchemaRegistry, pipeline_topic_specs
from lakeless.registry import (
    ModelNotFoundError,
    ModelRecord,
    ModelRejected,
    Registry,
    RegistryError,
    RegistryFollower,
    RegistrySettings,
    RegistryState,
    StageChange,
    build_record,
)
from lakeless.registry._log import append, make_registry_producer
from lakeless.schema import CleanCodec, EventCodec, PipelineSchema, load_schema
from lakeless.schema.outputs import OutputCodec
from lakeless.score import ScoreSettings, ScoreStage
from lakeless.testing.events import example_values
from lakeless.testing.kafka import produce_records, read_topic
from lakeless.testing.models import FEATURES, make_test_onnx
from lakeless.testing.waiting import wait_for

MODELS_TOPIC_CONFIG = {"max.message.bytes": str(64 * 1024 * 1024), "retention.ms": "-1"}
LINEAGE = {
    "topic": "sensor-clean",
    "partitions": {"0": [0, 1200], "1": [0, 1100]},
    "start_ms": 1_700_000_000_000,
    "end_ms": 1_700_000_600_000,
    "resolved_at": 1_700_000_700_000,
}


@pytest.fixture
def settings(kafka: KafkaSettings, new_topic: Callable[..., str]) -> Settings:
    topic = new_topic(partitions=1, **MODELS_TOPIC_CONFIG)
    return Settings(kafka=kafka, topics=TopicSettings(models=topic))


@pytest.fixture
def registry(settings: Settings) -> Iterator[Registry]:
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        yield registry


def register(registry: Registry, bias: float = 0.0, **kw: object) -> ModelRecord:
    kw.setdefault("features", FEATURES)
    return registry.register(
        "car-ae",
        make_test_onnx(bias=bias),
        threshold=1.5 + bias,
        normalization={"mean": [0.0] * 18, "variance": [1.0] * 18},
        metrics={"auc": 0.9 + bias / 100},
        lineage=LINEAGE,
        frameworks={"tensorflow": "2.18.0"},
        params={"epochs": 3},
        **kw,  # type: ignore[arg-type]
    )


def poll_until(follower: RegistryFollower, live: int, timeout: float = 20.0) -> ModelRecord | None:
    """Poll (non-blocking) until the follower's fold has ``live`` as live version."""
    swapped: list[ModelRecord | None] = []

    def is_live() -> bool:
        swapped.append(follower.poll())
        return follower.state.live_version("car-ae") == live

    wait_for(is_live, timeout, f"the follower to see v{live} live", interval=0.05)
    return swapped[-1]


def follow(settings: Settings, timeout: float = 20) -> RegistryFollower:
    """A follower as the car fleet's scorer makes one."""
    return RegistryFollower(
        settings, "car-ae", features=FEATURES, pipeline="car-fleet", timeout=timeout
    )


def test_register_list_get_promote_export(registry: Registry, tmp_path: Path) -> None:
    first = register(registry, 0.0)
    second = register(registry, 1.0, description="second")
    assert (first.version, second.version) == (1, 2)
    assert second.lineage == LINEAGE

    listed = registry.list()
    assert [(s.name, s.version, s.stage) for s in listed] == [
        ("car-ae", 1, "candidate"),
        ("car-ae", 2, "candidate"),
    ]
    assert registry.list("other") == []
    assert registry.live("car-ae") is None

    got = registry.get("car-ae", 2)
    assert got.onnx == make_test_onnx(bias=1.0)
    assert got.sha256 == second.sha256 and got.description == "second"
    assert got.lineage == LINEAGE and got.frameworks["tensorflow"] == "2.18.0"
    assert registry.get("car-ae").version == 2  # no live version: the latest

    registry.promote("car-ae", 1)
    live = registry.live("car-ae")
    assert live is not None and live.version == 1 and live.stage == "live"
    registry.promote("car-ae", 2)
    assert [s.stage for s in registry.list("car-ae")] == ["archived", "live"]
    assert registry.get("car-ae").version == 2

    onnx_path, sidecar = registry.export("car-ae", 1, tmp_path / "out" / "model.onnx")
    assert onnx_path.read_bytes() == make_test_onnx(bias=0.0)
    meta = json.loads(sidecar.read_text())
    assert sidecar.name == "model.json"
    assert meta["version"] == 1 and meta["stage"] == "archived"
    assert meta["sha256"] == first.sha256 and meta["lineage"] == LINEAGE
    assert meta["record"] == {"topic": registry.topic, "partition": 0, "offset": 0}
    assert "onnx" not in meta
    onnx_path, _ = registry.export("car-ae", "live", tmp_path)
    assert onnx_path == tmp_path / "car-ae-v2.onnx"

    with pytest.raises(ModelNotFoundError):
        registry.get("car-ae", 7)
    with pytest.raises(ModelNotFoundError):
        registry.promote("nope", 1)


def test_register_and_promote_refuse_bad_models(registry: Registry) -> None:
    with pytest.raises(ModelRejected, match="cannot load"):
        registry.register("car-ae", b"not onnx", threshold=1.0, features=FEATURES)
    assert registry.list() == []
    register(registry, features=(*FEATURES[:-1], "oil_pressure"), check=False)
    registry.promote("car-ae", 1)  # valid on its own terms (no pipeline given)...
    with pytest.raises(ModelRejected, match="oil_pressure"):  # ...not for the car fleet
        registry.promote("car-ae", 1, features=FEATURES, pipeline="car-fleet")
    with pytest.raises(ModelRejected, match="pipeline") as info:
        registry.promote("car-ae", 1, features=(*FEATURES[:-1], "oil_pressure"), pipeline="pumps")
    assert info.value.reason == "pipeline"
    registry.promote("car-ae", 1, check=False)  # forced: followers will refuse it
    assert registry.list()[0].stage == "live"


def test_version_race_is_resolved_by_offset_order(settings: Settings) -> None:
    with Registry(settings) as winner, Registry(settings) as loser:
        register(winner, 0.0)
        # The loser read the log before the winner's record landed: it picks v1 as well.
        loser.state = lambda: RegistryState(topic=settings.topics.models)  # type: ignore[method-assign]
        record = register(loser, 1.0)
        assert record.version == 2
        with Registry(settings) as reader:
            state = reader.state()
    assert state.versions("car-ae") == [1, 2]
    assert state.models[("car-ae", 1)].sha256 != record.sha256
    assert state.models[("car-ae", 2)].sha256 == record.sha256
    assert state.offsets[("car-ae", 2)] == 2  # the lost duplicate at offset 1 is ignored


def test_follower_catches_up_and_swaps_on_promotion(
    settings: Settings, registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    register(registry, 0.0, stage="live")
    with follow(settings) as follower:
        assert follower.current is not None and follower.current.version == 1
        assert follower.current.onnx == make_test_onnx(bias=0.0)
        assert follower.poll() is None

        register(registry, 1.0)  # a candidate changes nothing
        registry.promote("car-ae", 2)
        swapped = poll_until(follower, 2)
        assert swapped is not None and swapped.version == 2 and swapped.stage == "live"
        assert follower.current is swapped
        assert follower.poll() is None
        assert "model car-ae: v2 is live" in caplog.text

        registry.promote("car-ae", 1)  # roll back
        rolled = poll_until(follower, 1)
        assert rolled is not None and rolled.version == 1


def test_follower_without_live_model_waits_for_one(settings: Settings, registry: Registry) -> None:
    with follow(settings) as follower:
        assert follower.current is None
        assert follower.poll() is None
        register(registry, 0.0)
        registry.promote("car-ae", 1)
        swapped = poll_until(follower, 1)
        assert swapped is not None and follower.current is swapped


def _corrupt(kind: str) -> ModelRecord:
    good = build_record("car-ae", 2, make_test_onnx(bias=5.0), threshold=1.0, features=FEATURES)
    if kind == "checksum":
        return msgspec.structs.replace(good, sha256="0" * 64)
    if kind == "features":
        return msgspec.structs.replace(good, features=(*FEATURES[:-1], "oil_pressure"))
    if kind == "pipeline":
        return msgspec.structs.replace(good, pipeline="pumps")
    if kind == "onnx":
        return build_record("car-ae", 2, b"\x08\x07garbage", threshold=1.0, features=FEATURES)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "logged"),
    [
        ("checksum", "refused model car-ae v2: ONNX bytes have sha256"),
        ("features", "refused model car-ae v2: model inputs ['oil_pressure'] are not features"),
        ("pipeline", "refused model car-ae v2: model was trained on pipeline 'pumps'"),
        ("onnx", "refused model car-ae v2: ONNX Runtime cannot load the model"),
        ("msgpack", "skipping undecodable registry record"),
    ],
)
def test_follower_refuses_a_bad_model_and_keeps_the_current_one(
    settings: Settings,
    registry: Registry,
    caplog: pytest.LogCaptureFixture,
    kind: str,
    logged: str,
) -> None:
    register(registry, 0.0, stage="live")
    topic = settings.topics.models
    producer = make_registry_producer(settings.kafka)
    with follow(settings) as follower:
        if kind == "msgpack":
            producer.produce(topic, b"\xc1 not msgpack", b"car-ae", partition=0)
            producer.flush(10)
        else:
            append(producer, topic, _corrupt(kind))
        # Appended directly: the registry itself refuses to promote a version it cannot read.
        append(producer, topic, StageChange(name="car-ae", version=2, stage="live", at=0))

        def folded() -> bool:
            assert follower.poll() is None  # nothing it cannot read becomes current
            return follower.state.end >= 3

        wait_for(folded, 20, "the follower to fold all three records", interval=0.01)
        assert follower.state.end == 3
        assert follower.poll() is None
        assert follower.current is not None and follower.current.version == 1
        assert logged in caplog.text
        if kind == "msgpack":
            assert "ignoring stage change of unknown model car-ae v2" in caplog.text
        else:
            assert "keeping v1" in caplog.text
            assert caplog.text.count("refused model car-ae v2") == 1  # not again at every poll

    if kind != "msgpack":
        caplog.clear()
        # A scorer that starts now falls back to the last valid live version, like the others.
        with follow(settings) as restarted:
            assert restarted.current is not None and restarted.current.version == 1
        assert "refused model car-ae v2" in caplog.text
        assert "newest valid version that was live" in caplog.text


@pytest.mark.slow
def test_a_10_mb_model_round_trips(settings: Settings, registry: Registry, tmp_path: Path) -> None:
    big = make_test_onnx(bias=2.0, padding_bytes=10 * 1024 * 1024)
    record = registry.register("car-ae", big, threshold=1.0, features=FEATURES, stage="live")
    assert record.onnx is not None and record.uri is None
    got = registry.get("car-ae", 1)
    assert got.onnx == big and got.sha256 == record.sha256
    with follow(settings, timeout=30) as follower:
        assert follower.current is not None and follower.current.onnx == big
    assert registry.list()[0].size == len(big)
    path, _ = registry.export("car-ae", 1, tmp_path)
    assert path.read_bytes() == big


def test_too_large_model_is_stored_at_a_uri(settings: Settings, tmp_path: Path) -> None:
    options = RegistrySettings(max_inline_bytes=100, artifact_dir=tmp_path / "artifacts")
    with Registry(settings, options) as registry:
        data = make_test_onnx(bias=1.0)
        record = registry.register("car-ae", data, threshold=1.0, features=FEATURES, stage="live")
        assert record.onnx is None and record.uri is not None
        assert record.uri.startswith("file://")
        assert (tmp_path / "artifacts" / "car-ae-v1.onnx").read_bytes() == data
        with follow(settings) as follower:
            assert follower.current is not None and follower.current.onnx == data
        path, _ = registry.export("car-ae", 1, tmp_path / "m.onnx")
        assert path.read_bytes() == data
    with (
        Registry(settings, RegistrySettings(max_inline_bytes=100)) as registry,
        pytest.raises(RegistryError, match="artifact_dir"),
    ):
        registry.register("car-ae", data, threshold=1.0, features=FEATURES)


def test_missing_topic_is_a_clear_error(kafka: KafkaSettings) -> None:
    settings = Settings(kafka=kafka, topics=TopicSettings(models="no-such-registry-topic"))
    with Registry(settings) as registry, pytest.raises(RegistryError, match="does not exist"):
        registry.list()


def test_cli_list_show_promote_export(
    settings: Settings, registry: Registry, tmp_path: Path
) -> None:
    register(registry, 0.0)
    register(registry, 1.0)
    runner = CliRunner()
    env = {
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        "LAKELESS_TOPICS__MODELS": settings.topics.models,
    }

    def run(*args: str) -> str:
        result = runner.invoke(app, ["models", *args], env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    listed = json.loads(run("list", "--json"))
    assert [(m["version"], m["stage"]) for m in listed] == [(1, "candidate"), (2, "candidate")]
    assert all("onnx" not in m for m in listed)
    assert "car-ae" in run("list")

    run("promote", "car-ae:1")
    shown = json.loads(run("show", "car-ae", "--json"))
    assert shown["version"] == 1 and shown["stage"] == "live" and shown["lineage"] == LINEAGE
    human = run("show", "car-ae:2")
    assert "car-ae:2" in human and "candidate" in human

    run("export", "car-ae:2", str(tmp_path / "m.onnx"))
    assert (tmp_path / "m.onnx").read_bytes() == make_test_onnx(bias=1.0)
    assert json.loads((tmp_path / "m.json").read_text())["version"] == 2


# ---- models and pipelines -----------------------------------------------------------------------


def with_humidity(schema: PipelineSchema) -> PipelineSchema:
    """Version 2 of a schema: a new feature, with a default so that v1 records still read."""
    raw = dict(schema.raw)
    field = {"name": "humidity", "type": "double", "unit": "%", "min": 0, "max": 100}
    raw["fields"] = [*raw["fields"][:-1], {**field, "default": 40.0}, raw["fields"][-1]]
    return load_schema(raw)


def clean_rows(schema: PipelineSchema, n: int, seed: int, **fixed: object) -> list[bytes]:
    codec, events = CleanCodec(schema), EventCodec(schema)
    rng = np.random.default_rng(seed)
    return [
        codec.encode(
            events.from_dict(
                example_values(
                    schema,
                    car_id=f"car-{i % 5}",
                    seq=seed * 10_000 + i,
                    ts=1_700_000_000_000 + i,
                    coolant_temp=float(rng.uniform(60, 140)),
                    speed=float(rng.uniform(0, 50)),
                    **fixed,
                )
            )
        )
        for i in range(n)
    ]


def scorer_in_thread(settings: Settings, pipeline: Pipeline, model: str) -> ScoreStage:
    config = ScoreSettings(
        model=model, group_id=f"score-{uuid.uuid4().hex[:8]}", all_scores=True, log_interval=0
    )
    stage = ScoreStage(settings.model_copy(update={"score": config}), pipeline)
    threading.Thread(target=stage.run, args=(RunLimits(timeout=120),), daemon=True).start()
    return stage


def test_a_model_of_another_pipeline_is_refused_and_v1_models_score_v2(
    kafka: KafkaSettings,
    new_topic: Callable[..., str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    suffix = uuid.uuid4().hex[:8]
    settings = Settings(
        kafka=kafka,
        topics=TopicSettings(
            models=new_topic(partitions=1, **MODELS_TOPIC_CONFIG), schemas=f"test-schemas-{suffix}"
        ),
    )
    v1 = car_fleet()
    v2 = with_humidity(v1)
    schemas = SchemaRegistry(settings)
    alpha, beta = (Pipeline.new(f"{n}-{suffix}", v1, partitions=2) for n in ("alpha", "beta"))
    for pipeline in (alpha, beta):
        create_topics(kafka, pipeline_topic_specs(settings, pipeline))
        schemas.create(pipeline)
    # A model trained on alpha (schema v1), live under the name both pipelines' scorers follow.
    mean = [float(v1.field(f).example) for f in v1.feature_names]
    onnx = make_test_onnx(mean=mean)
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        record = registry.register(
            "shared-ae",
            onnx,
            threshold=50.0,
            features=v1.feature_names,
            pipeline=alpha.name,
            schema_fingerprint=v1.fingerprint_hex,
            stage="live",
        )
    assert record.pipeline == alpha.name

    # Beta's scorer refuses it and scores nothing.
    produce_records(kafka, beta.topics.clean, [(b"car-0", v) for v in clean_rows(v1, 20, 1)])
    refusing = scorer_in_thread(settings, beta, "shared-ae")
    wait_for(lambda: "refused model shared-ae v1" in caplog.text)
    assert f"model was trained on pipeline '{alpha.name}', scorer reads '{beta.name}'" in (
        caplog.text
    )
    wait_for(lambda: f"assigned {beta.topics.clean}" in caplog.text)
    assert refusing.live is None and refusing.stats.events == 0
    refusing.request_stop()

    # Alpha gets version 2 of its schema (a field added); the v1 model goes on scoring, the
    # new field left out of its inputs, records of both versions alike.
    alpha, appended = schemas.create(Pipeline.new(alpha.name, v2, partitions=2))
    assert appended and [v.version for v in alpha.versions] == [1, 2] and alpha.schema == v2
    old_rows = clean_rows(v1, 300, 2)
    new_rows = clean_rows(v2, 300, 3, humidity=95.0)
    produce_records(kafka, alpha.topics.clean, [(b"car-0", v) for v in old_rows + new_rows])
    scorer = scorer_in_thread(settings, alpha, "shared-ae")
    wait_for(lambda: scorer.stats.events == 600)
    scorer.request_stop()
    assert scorer.live is not None and scorer.live.ref == "shared-ae:1"
    assert scorer.stats.by_model == {"shared-ae:1": 600}

    outputs = OutputCodec(v2)
    scores = {
        s.sequence: s
        for s in (
            outputs.decode_score(m.value())
            for m in read_topic(kafka, alpha.topics.scores, expected=600)
        )
    }
    batch = alpha.decoder().decode(old_rows + new_rows)
    assert np.array_equal(batch.numeric["humidity"][:300], np.full(300, 40.0))  # the default
    inputs = batch.features(np.float64)[:, : len(v1.feature_names)]  # v1's features, in order
    want, _ = OnnxScorer(onnx, len(v1.feature_names)).score(inputs)
    assert sorted(scores) == batch.numeric["seq"].tolist()
    for seq, expected in zip(batch.numeric["seq"].tolist(), want.tolist(), strict=True):
        got = scores[seq]
        assert got.score == pytest.approx(expected, rel=1e-5)
        assert got.anomaly == (expected > 50.0) and got.model_version == 1
    assert 0 < sum(s.anomaly for s in scores.values()) < 600
