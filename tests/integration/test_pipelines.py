"""Pipelines the car fleet is not: a schema that exists only here, trained and scored end to end;
and readings a year old, whose outputs retention must keep.

Both run the real stages (`lakeless.train.train`, `lakeless.score.ScoreStage`) on topics created
with the pipeline's own specs (`lakeless.pipeline.pipeline_topic_specs`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec
import numpy as np
from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, TopicPartition

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.dataset import Window
from lakeless.examples import car_fleet
from lakeless.fleet import Fleet
from lakeless.kafka import TopicSpec, create_topics, make_consumer, make_producer
from lakeless.lifecycle import RunLimits
from lakeless.model import OnnxScorer
from lakeless.pipeline import Pipeline, pipeline_topic_specs
from lakeless.registry import Registry, RegistrySettings
from lakeless.schema import EventCodec, PipelineSchema, load_schema
from lakeless.schema.outputs import OutputCodec
from lakeless.score import ScoreSettings, ScoreStage
from lakeless.testing.kafka import produce_clean, read_topic
from lakeless.testing.models import make_test_onnx
from lakeless.testing.waiting import wait_for
from lakeless.train import TrainSettings, train

#: A wind farm: another entity, four features of three numeric types in other units and
#: ranges, a context field, a label, and no sequence field (readings are key + time).
TURBINES = {
    "type": "record",
    "name": "TurbineReading",
    "namespace": "test.turbines",
    "lakeless": {
        "key": "turbine_id",
        "time": "measured_at",
        "sequence": None,
        "label": "fault",
        "context": ["site"],
    },
    "fields": [
        {"name": "turbine_id", "type": "string", "pattern": "wt-[0-9]+"},
        {"name": "measured_at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "site", "type": "string", "default": "north"},
        {"name": "wind_speed", "type": "float", "unit": "m/s", "min": 0, "max": 60},
        {"name": "rotor_rpm", "type": "double", "unit": "rpm", "min": 0, "max": 30},
        {"name": "power_kw", "type": "double", "unit": "kW", "min": 0, "max": 5000},
        {"name": "gearbox_temp", "type": "int", "unit": "degC", "min": -40, "max": 200},
        {"name": "fault", "type": ["null", "string"], "default": None},
    ],
}
TURBINE_COUNT = 20
STEP_MS = 10_000


def pipeline_settings(kafka: KafkaSettings, suffix: str, **sections: Any) -> Settings:
    """Settings whose registries are this test's own."""
    topics = TopicSettings(models=f"test-models-{suffix}", schemas=f"test-schemas-{suffix}")
    return Settings(kafka=kafka, topics=topics, **sections)


def wind_farm(
    schema: PipelineSchema, steps: int, start_ms: int, seed: int, faults: dict[str, Any]
) -> Iterator[tuple[None, int, Any]]:
    """``(partition, timestamp, event)`` rows of a simulated wind farm, turbine by turbine.

    Args:
        faults: fault label -> ``(turbines, first step)``: from that step on those turbines
            report the fault's reading (an overheating gearbox, a stuck-high anemometer).
    """
    events = EventCodec(schema)
    rng = np.random.default_rng(seed)
    wind = rng.uniform(6, 14, TURBINE_COUNT)
    for step in range(steps):
        wind = np.clip(wind + rng.normal(0, 0.4, TURBINE_COUNT) + 0.05 * (10 - wind), 3, 25)
        at = start_ms + step * STEP_MS
        for t in range(TURBINE_COUNT):
            w = float(wind[t])
            reading: dict[str, Any] = {
                "turbine_id": f"wt-{t}",
                "measured_at": at,
                "site": "north" if t % 2 else "south",
                "wind_speed": round(w, 2),
                "rotor_rpm": min(30.0, 1.1 * w + rng.normal(0, 0.3)),
                "power_kw": min(5000.0, 9.0 * w**2 + rng.normal(0, 40)),
                "gearbox_temp": int(40 + 1.2 * w + rng.normal(0, 1.5)),
                "fault": None,
            }
            for label, (turbines, first) in faults.items():
                if t in turbines and step >= first:
                    reading["fault"] = label
                    if label == "gearbox_overheat":
                        reading["gearbox_temp"] += 90
                    else:  # a stuck anemometer reads the top of its scale
                        reading["wind_speed"] = 55.0
            yield None, at, events.from_dict(reading)


def test_a_pipeline_declared_only_here_trains_scores_and_names_its_fields(
    kafka: KafkaSettings, tmp_path: Any
) -> None:
    suffix = uuid.uuid4().hex[:8]
    schema = load_schema(TURBINES)
    assert schema.sequence is None and schema.feature_names == (
        "wind_speed",
        "rotor_rpm",
        "power_kw",
        "gearbox_temp",
    )
    pipeline = Pipeline.new(f"turbines-{suffix}", schema, partitions=3)
    settings = pipeline_settings(
        kafka,
        suffix,
        data_dir=tmp_path,
        train=TrainSettings(epochs=8, units=(8, 3, 8), batch_size=128, promote=True),
        score=ScoreSettings(all_scores=True, log_interval=0, batch_size=1000),
    )
    created = create_topics(kafka, pipeline_topic_specs(settings, pipeline))
    assert set(created) >= {pipeline.topics.clean, pipeline.topics.anomalies}

    # Two hours of a healthy farm to train on...
    start = (int(time.time()) - 6 * 3600) * 1000
    healthy_steps = 720
    produce_clean(
        kafka,
        pipeline.topics.clean,
        wind_farm(schema, healthy_steps, start, seed=1, faults={}),
        schema=schema,
    )
    result = train(settings, pipeline, Window.all())
    record = result.record
    assert record.ref == f"turbines-{suffix}-autoencoder:1" and result.promoted
    assert record.features == schema.feature_names
    assert (record.pipeline, record.schema_fingerprint) == (pipeline.name, schema.fingerprint_hex)
    assert record.lineage["num_records"] == TURBINE_COUNT * healthy_steps
    assert result.evaluation is None  # every label of the window is null: nothing to evaluate

    # ...then an hour more, with faults on four turbines from the middle on.
    later = start + healthy_steps * STEP_MS
    faults = {"gearbox_overheat": ({3, 11}, 180), "anemometer_stuck": ({6, 17}, 200)}
    rows = list(wind_farm(schema, 360, later, seed=2, faults=faults))
    produce_clean(kafka, pipeline.topics.clean, rows, schema=schema)
    total = TURBINE_COUNT * (healthy_steps + 360)
    injected = {(e.turbine_id, e.measured_at): e.fault for _, _, e in rows if e.fault is not None}
    assert len(injected) == 2 * (360 - 180) + 2 * (360 - 200)

    stage = ScoreStage(settings, pipeline)
    stats = stage.run(RunLimits(count=total, timeout=300))
    assert stats.events == total and stats.by_model == {record.ref: total}

    anomalies = [
        msgspec.json.decode(m.value() or b"")
        for m in read_topic(kafka, pipeline.topics.anomalies, expected=stats.anomalies)
    ]
    assert len(anomalies) == stats.anomalies
    for anomaly in anomalies:  # the schema's own field names, nothing of the car fleet's
        assert set(anomaly) == {
            "turbine_id",
            "measured_at",
            "score",
            "threshold",
            "model",
            "model_version",
            "top_features",
            "fault",
            "source",
        }
        assert {t["name"] for t in anomaly["top_features"]} <= set(schema.feature_names)
    flagged = {(a["turbine_id"], a["measured_at"]): a for a in anomalies}
    missed = set(injected) - set(flagged)
    assert not missed, f"{len(missed)} of {len(injected)} injected faults not detected"
    for where, label in injected.items():
        anomaly = flagged[where]
        assert anomaly["fault"] == label
        # The faulty sensor is among the top features (an autoencoder that rebuilds power
        # from a stuck-high wind reading may blame power first).
        culprit = "gearbox_temp" if label == "gearbox_overheat" else "wind_speed"
        assert culprit in [t["name"] for t in anomaly["top_features"]], anomaly
    false_alarms = [a for a in anomalies if a["fault"] is None]
    assert len(false_alarms) <= 0.01 * (total - len(injected)), len(false_alarms)

    scores = [
        OutputCodec(schema).decode_score(m.value() or b"")
        for m in read_topic(kafka, pipeline.topics.scores, expected=total)
    ]
    assert len(scores) == total and all(s.sequence is None for s in scores)
    assert sum(s.anomaly for s in scores) == stats.anomalies
    raw_score = msgspec.json.decode(
        read_topic(kafka, pipeline.topics.scores, expected=total)[0].value() or b""
    )
    assert set(raw_score) == {
        "turbine_id",
        "measured_at",
        "score",
        "threshold",
        "anomaly",
        "model",
        "model_version",
    }


# ---- a year ago ---------------------------------------------------------------------------------

YEAR_MS = 365 * 86_400_000


def watermarks(kafka: KafkaSettings, topic: str, partitions: int) -> list[tuple[int, int]]:
    consumer = make_consumer(kafka, f"watermarks-{uuid.uuid4().hex[:8]}")
    try:
        return [
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            for p in range(partitions)
        ]
    finally:
        consumer.close()


def test_outputs_of_readings_a_year_old_are_kept(kafka: KafkaSettings) -> None:
    suffix = uuid.uuid4().hex[:8]
    schema = car_fleet()
    pipeline = Pipeline.new(f"aged-{suffix}", schema, partitions=2)
    settings = pipeline_settings(
        kafka, suffix, score=ScoreSettings(all_scores=True, log_interval=0)
    )
    specs = pipeline_topic_specs(settings, pipeline)
    create_topics(kafka, specs)
    by_name = {spec.name: spec for spec in specs}
    scores_spec = by_name[pipeline.topics.scores]
    assert scores_spec.config["message.timestamp.type"] == "LogAppendTime"
    assert by_name[pipeline.topics.anomalies].config["message.timestamp.type"] == "LogAppendTime"
    assert int(scores_spec.config["retention.ms"]) < YEAR_MS  # scores expire, by append time

    # Readings stamped a year ago (record timestamp = event time), as an import writes them.
    began = int(time.time() * 1000)
    fleet = Fleet(20, seed=4, start=began - YEAR_MS, failure_rate=30.0, ramp=5.0)
    events = [e for batch in fleet.batches(150) for e in batch.events()]
    produce_clean(kafka, pipeline.topics.clean, [(None, e.ts, e) for e in events])
    healthy = np.array(
        [[getattr(e, f) for f in schema.feature_names] for e in events if e.failure is None]
    )
    mean, std = healthy.mean(axis=0), healthy.std(axis=0) + 1e-3
    onnx = make_test_onnx(mean=mean.tolist(), scale=(1 / std).tolist())
    # Low enough that a few percent of the readings are anomalies: plenty to read back.
    threshold = float(np.quantile(OnnxScorer(onnx, len(mean)).score(healthy)[0], 0.97))
    with Registry(settings, RegistrySettings(timeout=20)) as registry:
        registry.register(
            pipeline.model,
            onnx,
            threshold=threshold,
            features=schema.feature_names,
            pipeline=pipeline.name,
            stage="live",
        )

    stats = ScoreStage(settings, pipeline).run(RunLimits(count=len(events), timeout=180))
    assert stats.events == len(events) and stats.anomalies > 20
    done = int(time.time() * 1000)

    def check(topic: str, expected: int) -> list[Any]:
        messages = read_topic(kafka, topic, expected=expected)
        assert len(messages) == expected
        for message in messages:  # stamped by the broker when written, not with the event time
            kind, stamp = message.timestamp()
            assert kind == TIMESTAMP_LOG_APPEND_TIME and began <= stamp <= done + 5000
        return messages

    outputs = OutputCodec(schema)
    anomalies = [
        outputs.decode_anomaly(m.value() or b"")
        for m in check(pipeline.topics.anomalies, stats.anomalies)
    ]
    assert all(a.time < began - YEAR_MS + 86_400_000 for a in anomalies)  # event time: a year ago
    assert {(a.key, a.sequence) for a in anomalies} == {
        (s.key, s.sequence)
        for s in (
            outputs.decode_score(m.value() or b"")
            for m in check(pipeline.topics.scores, len(events))
        )
        if s.anomaly
    }

    # The broker's retention does run: the same records stamped with their event time on a
    # topic of the same retention are deleted...
    control = f"test-control-{suffix}"
    config = {**scores_spec.config, "message.timestamp.type": "CreateTime"}
    create_topics(kafka, [TopicSpec(control, 1, 1, config)])
    producer = make_producer(kafka)
    for event in events[:200]:
        producer.produce(control, b"old", event.car_id.encode(), timestamp=event.ts)
    assert producer.flush(30) == 0
    assert watermarks(kafka, control, 1)[0][1] == 200
    wait_for(lambda: watermarks(kafka, control, 1)[0][0] == 200, timeout=120)
    # ...while every output of the year-old readings is still there.
    for topic in (pipeline.topics.scores, pipeline.topics.anomalies):
        assert all(low == 0 for low, _ in watermarks(kafka, topic, 2)), topic
    check(pipeline.topics.scores, len(events))
    check(pipeline.topics.anomalies, stats.anomalies)
