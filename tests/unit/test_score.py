"""Unit tests of the score stage's pure parts: the step, outputs, top features, stats, settings."""

from __future__ import annotations

import logging
import urllib.request
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pytest
from pydantic import ValidationError

from lakeless.config import Settings, load_settings
from lakeless.examples import car_fleet, example_schema
from lakeless.model.onnx import ModelLoadError
from lakeless.model.scoring import BatchScorer, OnnxScorerFactory, ScoredBy
from lakeless.pipeline import Pipeline
from lakeless.registry import ModelRecord, build_record
from lakeless.schema import CleanCodec, EventCodec, PipelineSchema
from lakeless.schema.outputs import OutputCodec, TopFeature, top_features
from lakeless.score import ScoreMetrics, ScoreSettings, ScoreStats, ScoreStep
from lakeless.stack import free_port
from lakeless.testing.events import example_values
from lakeless.testing.models import FEATURES, make_test_onnx

PUMPS = example_schema("pumps")


@dataclass
class FakeMessage:
    """What the step reads of a consumed record."""

    _value: bytes | None
    _offset: int
    _topic: str = "clean"
    _partition: int = 0

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


def clean(schema: PipelineSchema, rows: list[dict[str, Any]]) -> list[FakeMessage]:
    codec, events = CleanCodec(schema), EventCodec(schema)
    return [
        FakeMessage(codec.encode(events.from_dict(example_values(schema, **row))), i)
        for i, row in enumerate(rows)
    ]


def model(
    schema: PipelineSchema,
    features: tuple[str, ...] | None = None,
    *,
    version: int = 1,
    threshold: float = 1.0,
    pipeline: str = "car-fleet",
    bias: float = 0.0,
) -> ModelRecord:
    """A model whose score is the sum of squared deviations from the schema's examples / n."""
    names = features or schema.feature_names
    mean = [float(schema.field(f).example) for f in names]
    onnx = make_test_onnx(n_features=len(names), mean=mean, bias=bias)
    return build_record("m", version, onnx, threshold=threshold, features=names, pipeline=pipeline)


class Fixed:
    """A scorer that returns given scores (non-finite ones included)."""

    def __init__(self, scores: list[float]) -> None:
        self.scores = np.array(scores, np.float32)

    def score(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.scores[: len(features)], np.ones_like(features, np.float32)


def step(
    schema: PipelineSchema | None = None, name: str = "car-fleet", **options: Any
) -> ScoreStep:
    pipeline = Pipeline.builtin(Settings()) if schema is None else Pipeline.new(name, schema)
    return ScoreStep(pipeline, OnnxScorerFactory(), None, **options)


# ---- the step ---------------------------------------------------------------------------------


def test_step_flags_deviations_and_writes_the_schemas_field_names() -> None:
    scorer = step(all_scores=True)
    assert not scorer.ready()
    assert scorer.swap(model(car_fleet()))
    assert scorer.ready()
    messages = clean(
        car_fleet(),
        [
            {"car_id": "car-1", "seq": 1, "ts": 10},
            {"car_id": "car-2", "seq": 2, "ts": 20, "coolant_temp": 130.0, "failure": "overheat"},
            {"car_id": "car-3", "seq": 3, "ts": 30},
        ],
    )
    result = scorer.process(messages)
    anomalies = [o for o in result.outputs if o[0] == "anomalies"]
    scores = [o for o in result.outputs if o[0] == "scores"]
    assert len(anomalies) == 1 and len(scores) == 3
    _topic, value, key, timestamp, headers = anomalies[0]
    assert (key, timestamp, headers) == (b"car-2", 0, None)  # wall clock: the broker stamps it
    raw = msgspec.json.decode(value)
    assert list(raw)[:3] == ["car_id", "ts", "seq"]
    assert (raw["car_id"], raw["ts"], raw["seq"], raw["failure"]) == ("car-2", 20, 2, "overheat")
    assert raw["score"] == pytest.approx((130.0 - 88.0) ** 2 / 18, rel=1e-5)
    assert (raw["model"], raw["model_version"], raw["threshold"]) == ("m", 1, 1.0)
    assert raw["source"] == "clean[0]@1"
    assert raw["top_features"][0] == {
        "name": "coolant_temp",
        "value": 130.0,
        "error": pytest.approx(raw["score"], rel=1e-5),
    }
    decoded = [OutputCodec(car_fleet()).decode_score(o[1]) for o in scores]
    assert [(s.key, s.time, s.sequence, s.anomaly) for s in decoded] == [
        ("car-1", 10, 1, False),
        ("car-2", 20, 2, True),
        ("car-3", 30, 3, False),
    ]
    scorer.committed(result, len(messages))
    assert (scorer.stats.anomalies, scorer.stats.by_model) == (1, {"m:1": 3})


def test_a_non_finite_score_is_an_anomaly() -> None:
    scorer = ScoreStep(Pipeline.builtin(Settings()), lambda _r: Fixed([np.nan, 0.5, np.inf]), None)
    assert scorer.swap(model(car_fleet()))
    result = scorer.process(clean(car_fleet(), [{"seq": 1}, {"seq": 2}, {"seq": 3}]))
    flagged = [msgspec.json.decode(o[1])["seq"] for o in result.outputs]
    assert flagged == [1, 3]


def test_pipeline_without_sequence_echoes_key_and_time_by_their_names() -> None:
    scorer = step(PUMPS, "pumps", all_scores=True, top_k=2)
    assert scorer.swap(model(PUMPS, pipeline="pumps"))
    result = scorer.process(
        clean(PUMPS, [{"pump_id": "p-7", "timestamp": 99, "bearing_temp": 140.0, "fault": None}])
    )
    anomaly, score = (msgspec.json.decode(o[1]) for o in result.outputs)
    assert result.outputs[0][0] == "pumps.anomalies" and result.outputs[1][0] == "pumps.scores"
    assert (anomaly["pump_id"], anomaly["timestamp"], anomaly["fault"]) == ("p-7", 99, None)
    assert "seq" not in anomaly and "sequence" not in anomaly and "car_id" not in anomaly
    assert anomaly["top_features"][0]["name"] == "bearing_temp"
    assert len(anomaly["top_features"]) == 2
    assert set(score) == {
        "pump_id",
        "timestamp",
        "score",
        "threshold",
        "anomaly",
        "model",
        "model_version",
    }


def test_a_model_with_fewer_or_reordered_inputs_gets_its_own_columns() -> None:
    names = FEATURES
    subset = (names[6], names[0])  # speed, coolant_temp: another order, fewer
    rows = [{"seq": 1, "coolant_temp": 100.0}, {"seq": 2, "speed": 40.0}, {"seq": 3}]
    messages = clean(car_fleet(), rows)
    full = step(all_scores=True)
    assert full.swap(model(car_fleet(), threshold=1e9))
    part = step(all_scores=True)
    assert part.swap(model(car_fleet(), subset, threshold=1e9))
    full_scores = [msgspec.json.decode(o[1])["score"] for o in full.process(messages).outputs]
    part_scores = [msgspec.json.decode(o[1])["score"] for o in part.process(messages).outputs]
    # The same squared deviations, divided by the model's own input count.
    assert part_scores == pytest.approx([s * 18 / 2 for s in full_scores], rel=1e-5)
    assert part_scores[0] > 0 and part_scores[1] > 0 and part_scores[2] == 0


def test_refused_scorer_keeps_the_current_model(caplog: pytest.LogCaptureFixture) -> None:
    scorer = step()
    assert scorer.swap(model(car_fleet()))
    broken = build_record("m", 2, b"not onnx", threshold=1.0, features=FEATURES)
    with caplog.at_level(logging.ERROR):
        assert not scorer.swap(broken)
    assert "refused model m:2" in caplog.text and "keeping m:1" in caplog.text
    assert scorer.live is not None and scorer.live.record.version == 1
    assert scorer.stats.swaps == 1


def test_bad_records_are_skipped_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    scorer = step(all_scores=True)
    assert scorer.swap(model(car_fleet()))
    messages = clean(car_fleet(), [{"seq": 1}, {"seq": 2}])
    pumps = clean(PUMPS, [{}])[0]
    messages[1:1] = [
        FakeMessage(b'{"car_id": "json"}', 7),
        FakeMessage(None, 8),
        FakeMessage(pumps.value(), 9),
    ]
    with caplog.at_level(logging.WARNING):
        result = scorer.process(messages)
    assert result.invalid == 3
    assert [msgspec.json.decode(o[1])["seq"] for o in result.outputs] == [1, 2]
    assert "skipping 3 record(s)" in caplog.text and "clean[0]@7" in caplog.text


def test_remote_scorer_names_the_model_that_scored() -> None:
    class Remote(Fixed):
        scored_by: ScoredBy | None = ScoredBy("server-model", 9, 0.25)

    scorer = ScoreStep(Pipeline.builtin(Settings()), lambda _r: Remote([0.5, 0.1]), None)
    assert scorer.swap(model(car_fleet()))
    result = scorer.process(clean(car_fleet(), [{"seq": 1}, {"seq": 2}]))
    (anomaly,) = (msgspec.json.decode(o[1]) for o in result.outputs)
    assert (anomaly["model"], anomaly["model_version"], anomaly["threshold"]) == (
        "server-model",
        9,
        0.25,
    )
    scorer.committed(result, 2)
    assert scorer.stats.by_model == {"server-model:9": 2}


# ---- outputs, stats, settings, metrics ----------------------------------------------------------


def test_top_features_are_the_largest_errors_largest_first() -> None:
    rng = np.random.default_rng(0)
    errors = rng.random((50, len(FEATURES)))
    values = rng.random((50, len(FEATURES)))
    rows = top_features(values, errors, 3, FEATURES)
    for row, err, val in zip(rows, errors, values, strict=True):
        expected = np.argsort(-err)[:3]
        assert [t.name for t in row] == [FEATURES[i] for i in expected]
        assert [t.value for t in row] == pytest.approx(val[expected].tolist())
    assert top_features(values, errors, 0, FEATURES)[0] == []
    assert len(top_features(values, errors, 99, FEATURES)[0]) == len(FEATURES)
    assert top_features(values[:0], errors[:0], 3, FEATURES) == []
    errors[0, 4] = np.nan  # a non-finite error ranks first
    assert top_features(values, errors, 1, FEATURES)[0][0].name == FEATURES[4]


def test_outputs_round_trip_as_json() -> None:
    codec = OutputCodec(car_fleet())
    anomaly = codec.anomaly(
        key="c",
        time=1,
        sequence=2,
        score=3.0,
        threshold=1.0,
        model="m",
        model_version=4,
        top_features=[TopFeature("speed", 1.0, 2.0)],
        label="overheat",
        source="t[0]@5",
    )
    raw = codec.encode(anomaly)
    assert raw.startswith(b'{"car_id":"c","ts":1,"seq":2') and b'"model_version":4' in raw
    assert b'"failure":"overheat"' in raw
    assert codec.decode_anomaly(raw) == anomaly
    score = codec.score(
        key="c", time=1, sequence=2, score=0.5, threshold=1.0, anomaly=False, model="m",
        model_version=4,
    )  # fmt: skip
    assert codec.decode_score(codec.encode(score)) == score
    pumps = OutputCodec(PUMPS)
    no_seq = pumps.score(
        key="p", time=1, sequence=5, score=0.5, threshold=1.0, anomaly=False, model="m",
        model_version=1,
    )  # fmt: skip
    assert no_seq.sequence is None and b"sequence" not in pumps.encode(no_seq)


def test_stats_merge() -> None:
    a = ScoreStats(received=3, seconds=2.0)
    a.by_model["m:1"] = 3
    b = ScoreStats(received=5, seconds=4.0, aborted=1)
    b.by_model["m:2"] = 5
    a.merge(b)
    assert (a.events, a.seconds, a.aborted, a.rate) == (8, 4.0, 1, 2.0)
    assert a.to_dict()["by_model"] == {"m:1": 3, "m:2": 5}


def test_settings() -> None:
    config = ScoreSettings(guarantee="exactly-once", instance="host-a", group_id="g")
    assert config.exactly_once and config.transactional_id("g", 3) == "g.host-a.3"
    with pytest.raises(ValidationError):
        ScoreSettings(guarantee="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ScoreSettings(unknown=1)  # type: ignore[call-arg]
    settings = load_settings(score={"top_k": 5, "all_scores": True})
    assert (settings.score.top_k, settings.score.all_scores) == (5, True)


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LAKELESS_SCORE__BATCH_SIZE", "123")
    monkeypatch.setenv("LAKELESS_SCORE__GUARANTEE", "exactly-once")
    settings = load_settings()
    assert (settings.score.batch_size, settings.score.exactly_once) == (123, True)


def test_onnx_factory_honours_the_batch_scorer_protocol() -> None:
    record = build_record("m", 1, make_test_onnx(bias=0.5), threshold=1.0, features=FEATURES)
    scorer = OnnxScorerFactory()(record)
    assert isinstance(scorer, BatchScorer)
    scores, errors = scorer.score(np.ones((4, len(FEATURES)), np.float32))
    assert scores.shape == (4,) and errors.shape == (4, len(FEATURES))
    with pytest.raises(ModelLoadError):
        OnnxScorerFactory()(build_record("m", 2, b"not onnx", threshold=1.0, features=FEATURES))


def test_metrics_endpoint_serves_prometheus_text() -> None:
    metrics = ScoreMetrics()
    metrics.events.inc(7)
    metrics.lag.labels("sensor-clean", "0").set(5)
    metrics.model_version.labels("m").set(2)
    url = metrics.serve(free_port(), "127.0.0.1")
    try:
        body = urllib.request.urlopen(url, timeout=5).read()
    finally:
        metrics.close()
    text = body.decode()
    assert "lakeless_score_events_total 7.0" in text
    assert 'lakeless_score_consumer_lag{partition="0",topic="sensor-clean"} 5.0' in text
    assert 'lakeless_score_model_version{model="m"} 2.0' in text
