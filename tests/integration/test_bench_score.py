"""``lakeless bench score`` end to end with tiny counts against the session broker."""

from __future__ import annotations

import pytest

from lakeless.bench._latency import KAFKA_E2E, RELAY
from lakeless.bench._score import run_score_bench
from lakeless.bench._score_peers import default_quix_venv
from lakeless.bench._score_report import LATENCY, LATENCY_PATHS, SCORE_PATHS
from lakeless.bench._score_settings import ScoreBenchSettings
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
        latency_repeats=2,
        e2e_records=200,
        quix=quix,
        timeout=120.0,
    )
    report = run_score_bench(bench, kafka)
    data = report.to_dict()
    by_name = {r["name"]: r for r in data["results"]}
    assert list(by_name) == [*SCORE_PATHS, *LATENCY_PATHS]
    for name in SCORE_PATHS:
        if name == "quixstreams-per-record" and not quix:
            assert by_name[name]["extra"]["skipped"] is True
            continue
        assert by_name[name]["events"] > 0, by_name[name]
        assert by_name[name]["events_per_s"] > 0, by_name[name]
    assert by_name["lakeless-score-1p"]["extra"]["complete"] is True
    assert by_name["naive-keras-per-record"]["extra"]["sample"] == 5
    for name in (LATENCY, RELAY):
        latency = by_name[name]["extra"]
        assert by_name[name]["events"] > 0, by_name[name]
        assert 0 < latency["p50_ms"] <= latency["p99_ms"], latency
        assert latency["repeats"] == 2 and len(latency["runs_p99_ms"]) == 2
        assert latency["spread_p99"] is not None and latency["spread_p99"] >= 0
        assert isinstance(latency["saturated"], bool)
        assert len(latency["runs_saturated"]) == 2
        # The outputs are stamped by the broker: the append leg is measured too.
        assert 0 < latency["appended_p99_ms"] <= latency["max_ms"]
    assert by_name[LATENCY]["extra"]["ratio_p99_to_relay"] > 0
    e2e = by_name[KAFKA_E2E]["extra"]
    # The tool floors each latency to whole ms: on loopback its p50 may be 0.
    assert 0 <= e2e["p50_ms"] <= e2e["p99_ms"] <= e2e["p999_ms"], e2e
    assert e2e["avg_ms"] > 0 and e2e["repeats"] == 2
    for name in ("kafka-streams-per-record", "kafka-streams-batched"):  # built by make setup
        assert not by_name[name]["extra"].get("failed"), by_name[name]
        assert by_name[name]["extra"]["mode"] == name.removeprefix("kafka-streams-")
    assert len(data["goals"]) == 6
    assert {g["goal"] for g in data["goals"]} >= {"p99 latency ms", "p99 latency vs relay"}
