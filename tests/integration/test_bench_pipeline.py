"""``bench pipeline`` end to end on the session brokers, briefly (no speed asserts)."""

from __future__ import annotations

import pytest

from lakeless.bench._pipeline import PipelineBenchSettings, run_pipeline_bench
from lakeless.config import KafkaSettings, MqttSettings

pytestmark = [pytest.mark.mqtt, pytest.mark.slow]


def test_pipeline_suite_reports_every_stage_and_the_counts_balance(
    kafka: KafkaSettings, mqtt: MqttSettings
) -> None:
    bench = PipelineBenchSettings.for_mode(
        True, rates=(500,), step_seconds=4.0, latency_rate=500, latency_seconds=4.0,
        peer_events=1000, perf_events=5000, publishers=2,
    )  # fmt: skip
    data = run_pipeline_bench(bench, kafka, mqtt).to_dict()
    names = [r["name"] for r in data["results"]]
    for name in ("kafka-producer-perf", "mqtt-publish", "bridge-drain-paho", "bridge-drain-fast",
                 "pipeline-step-500", "pipeline-sustained", "stage-bridge", "stage-preprocess",
                 "stage-score", "stage-twin", "pipeline-latency", "pipeline-counts"):  # fmt: skip
        assert name in names, names
    by_name = {r["name"]: r for r in data["results"]}
    step = by_name["pipeline-step-500"]["extra"]
    assert set(step["stages"]) == {"bridge", "preprocess", "score", "twin"}
    assert step["counts"]["drained"] and step["counts"]["balanced"], step["counts"]
    assert step["counts"]["lost"] == 0
    # CPU per event of every process the events pass (the brokers here are the session's own,
    # not the run's, so they are not counted), and the rate that CPU bounds.
    cpu = step["cpu"]
    assert set(cpu["us_per_event"]) == {"bridge-0", "preprocess", "score", "twin", "publishers"}
    assert all(us > 0 for us in cpu["us_per_event"].values()), cpu
    assert cpu["total_us_per_event"] == pytest.approx(sum(cpu["us_per_event"].values()), abs=0.5)
    assert cpu["bound_per_s"] == round(cpu["cores"] * 1e6 / cpu["total_us_per_event"])
    assert (
        by_name["pipeline-sustained"]["extra"]["cpu"]["us_per_event"].keys()
        == cpu["us_per_event"].keys()
    )
    latency = by_name["pipeline-latency"]["extra"]
    assert latency["p50_ms"] is not None and latency["p99_ms"] >= latency["p50_ms"]
    counts = by_name["pipeline-counts"]["extra"]
    # Every PUBACKed event went through every stage (simulated events are all valid).
    assert counts["published"] == counts["bridged"] == counts["preprocessed"]
    assert counts["preprocessed"] == counts["clean"] + counts["dead_lettered"] == counts["scored"]
    assert counts["twin_readings"] == counts["clean"]
    assert by_name["bridge-drain-fast"]["events"] == by_name["bridge-drain-paho"]["events"] == 1000
