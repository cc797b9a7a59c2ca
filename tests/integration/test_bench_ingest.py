"""The ingest benchmark end to end on the session brokers, with tiny counts (no speed asserts)."""

from __future__ import annotations

import pytest

from lakeless.bench import INGEST_PATHS, IngestBenchSettings, run_ingest_bench
from lakeless.config import KafkaSettings, MqttSettings
from lakeless.kafka import list_topics
from lakeless.testing.waiting import wait_for

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def test_ingest_suite_measures_every_path(kafka: KafkaSettings, mqtt: MqttSettings) -> None:
    events = 3000
    bench = IngestBenchSettings(
        events=events, ceiling_events=5000, warmup_events=500, partitions=2, timeout=120
    )
    report = run_ingest_bench(bench, kafka, mqtt)
    data = report.to_dict()

    assert [r["name"] for r in data["results"]] == list(INGEST_PATHS)
    for result in data["results"]:
        assert result["events_per_s"] > 0, result
        assert result["ratio_to_ceiling"] is not None and result["ratio_to_ceiling"] > 0
        assert result["extra"].get("complete", True), result
    by_name = {r["name"]: r for r in data["results"]}
    assert by_name["kafka-producer-perf"]["events"] == 5000
    for name in ("simulate->mqtt", "bridge", "simulate->kafka", "preprocess"):
        assert by_name[name]["events"] >= events
    assert by_name["preprocess"]["extra"]["clean"] == events  # simulated events are all valid
    assert data["machine"]["broker"] == kafka.bootstrap_servers
    assert data["machine"]["cpu_count"] >= 1

    # The suite removes its topics from a broker it did not start.
    wait_for(
        lambda: not any(t.startswith("lakeless-bench-") for t in list_topics(kafka)),
        30,
        "the bench topics deleted",
        lambda: str(list_topics(kafka)),
        interval=0.5,
    )
