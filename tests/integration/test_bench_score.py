"""``lakeless bench score`` end to end with tiny counts against the session broker."""

from __future__ import annotations

import pytest

from lakeless.bench._score import (
    LATENCY,
    SCORE_PATHS,
    ScoreBenchSettings,
    default_quix_venv,
    run_score_bench,
)
from lakeless.config import KafkaSettings

pytestmark = pytest.mark.slow


def test_quick_suite_measures_every_path(kafka: KafkaSettings) -> None:
    # Quix Streams runs only when its virtualenv is already built (building it needs minutes
    # and the package index).
    quix = (default_quix_venv() / ".lakeless-quix-ready").is_file()
    bench = ScoreBenchSettings.for_mode(
        True,
        6000,
        partitions=2,
        train_rows=500,
        keras_sample=5,
        latency_seconds=1.0,
        latency_warmup=0.5,
        latency_rate=2000,
        quix=quix,
        timeout=120.0,
    )
    report = run_score_bench(bench, kafka)
    data = report.to_dict()
    by_name = {r["name"]: r for r in data["results"]}
    assert list(by_name) == [*SCORE_PATHS, LATENCY]
    for name in SCORE_PATHS:
        if name == "quixstreams-per-record" and not quix:
            assert by_name[name]["extra"]["skipped"] is True
            continue
        assert by_name[name]["events"] > 0, by_name[name]
        assert by_name[name]["events_per_s"] > 0, by_name[name]
    assert by_name["lakeless-score-1p"]["extra"]["complete"] is True
    assert by_name["naive-keras-per-record"]["extra"]["sample"] == 5
    latency = by_name[LATENCY]["extra"]
    assert by_name[LATENCY]["events"] > 0
    assert 0 < latency["p50_ms"] <= latency["p99_ms"]
    assert len(data["goals"]) == 3
