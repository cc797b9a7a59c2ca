"""Unit tests of the score stage's pure parts: outputs, top features, stats, settings, scorer."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
from pydantic import ValidationError

from lakeless.model.onnx import ModelLoadError
from lakeless.registry import build_record
from lakeless.schema import FEATURES
from lakeless.score import (
    Anomaly,
    BatchScorer,
    OnnxScorerFactory,
    Score,
    ScoreMetrics,
    ScoreSettings,
    ScoreStats,
    TopFeature,
    decode_anomaly,
    decode_score,
    encode_output,
    top_features,
)
from lakeless.testing.models import make_test_onnx


def test_top_features_are_the_largest_errors_largest_first() -> None:
    rng = np.random.default_rng(0)
    errors = rng.random((50, len(FEATURES)))
    values = rng.random((50, len(FEATURES)))
    rows = top_features(values, errors, 3)
    for row, err, val in zip(rows, errors, values, strict=True):
        expected = np.argsort(-err)[:3]
        assert [t.name for t in row] == [FEATURES[i] for i in expected]
        assert [t.value for t in row] == pytest.approx(val[expected].tolist())
    assert top_features(values, errors, 0)[0] == []
    assert len(top_features(values, errors, 99)[0]) == len(FEATURES)
    assert top_features(values[:0], errors[:0], 3) == []


def test_outputs_round_trip_as_json() -> None:
    anomaly = Anomaly(
        car_id="c",
        ts=1,
        seq=2,
        score=3.0,
        threshold=1.0,
        model="m",
        model_version=4,
        top_features=[TopFeature("speed", 1.0, 2.0)],
    )
    raw = encode_output(anomaly)
    assert raw.startswith(b"{") and b'"model_version":4' in raw
    assert decode_anomaly(raw) == anomaly
    score = Score(car_id="c", ts=1, seq=2, score=0.5, model="m", model_version=4, anomaly=False)
    assert decode_score(encode_output(score)) == score


def test_stats_merge() -> None:
    a = ScoreStats(events=3, seconds=2.0)
    a.by_model["m:1"] = 3
    b = ScoreStats(events=5, seconds=4.0, aborted=1)
    b.by_model["m:2"] = 5
    a.merge(b)
    assert (a.events, a.seconds, a.aborted, a.rate) == (8, 4.0, 1, 2.0)
    assert a.to_dict()["by_model"] == {"m:1": 3, "m:2": 5}


def test_settings() -> None:
    config = ScoreSettings(guarantee="exactly-once", instance="host-a", group_id="g")
    assert config.exactly_once and config.transactional_id(3) == "g.host-a.3"
    with pytest.raises(ValidationError):
        ScoreSettings(guarantee="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValidationError):
        ScoreSettings(unknown=1)  # type: ignore[call-arg]


def test_onnx_factory_honours_the_batch_scorer_protocol() -> None:
    record = build_record("m", 1, make_test_onnx(bias=0.5), threshold=1.0)
    scorer = OnnxScorerFactory()(record)
    assert isinstance(scorer, BatchScorer)
    scores, errors = scorer.score(np.ones((4, len(FEATURES)), np.float32))
    assert scores.shape == (4,) and errors.shape == (4, len(FEATURES))
    with pytest.raises(ModelLoadError):
        OnnxScorerFactory()(build_record("m", 2, b"not onnx", threshold=1.0))


def test_metrics_endpoint_serves_prometheus_text() -> None:
    metrics = ScoreMetrics()
    metrics.events.inc(7)
    metrics.lag.labels("sensor-clean", "0").set(5)
    metrics.model_version.labels("m").set(2)
    metrics.serve(0, addr="127.0.0.1")
    try:
        port = metrics._server.server_port
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        metrics.close()
    text = body.decode()
    assert "lakeless_score_events_total 7.0" in text
    assert 'lakeless_score_consumer_lag{partition="0",topic="sensor-clean"} 5.0' in text
    assert 'lakeless_score_model_version{model="m"} 2.0' in text
