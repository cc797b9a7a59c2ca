"""The train benchmark end to end on the session broker, tiny and without tensorflow-io.

tensorflow-io needs a TensorFlow 2.16 virtualenv of its own (minutes to build, network needed),
so CI runs the suite with ``tfio=False``; nothing is asserted about speed.
"""

from __future__ import annotations

import time

import pytest

from lakeless.bench._train import (
    TFIO,
    TRAIN_KAFKA,
    TRAIN_PATHS,
    TrainBenchSettings,
    run_train_bench,
)
from lakeless.config import KafkaSettings
from lakeless.kafka import list_topics

pytestmark = pytest.mark.slow


def test_train_suite_measures_every_path(kafka: KafkaSettings) -> None:
    rows = 20_000
    bench = TrainBenchSettings(rows=rows, epochs=1, partitions=2, tfio=False, timeout=60)
    data = run_train_bench(bench, kafka).to_dict()

    assert [r["name"] for r in data["results"]] == list(TRAIN_PATHS)
    for result in data["results"]:
        if result["name"] == TFIO:
            assert result["extra"] == {"skipped": True, "reason": "--no-tfio"}
            continue
        assert result["events_per_s"] > 0, result
        assert result["seconds"] > 0, result
        assert result["events"] == rows, result
        assert result["extra"].get("complete", True), result
    by_name = {r["name"]: r for r in data["results"]}
    # The same rows on both sides, and Kafka really read (no cache).
    assert by_name["reader->numpy"]["extra"]["checksum"] == pytest.approx(
        by_name["parquet->numpy"]["extra"]["checksum"], rel=1e-9
    )
    assert by_name["reader->numpy"]["extra"]["kafka_reads"] == 1
    assert by_name["reader->tf.data"]["extra"]["kafka_reads"] == 1
    assert by_name[TRAIN_KAFKA]["extra"]["kafka_reads"] == 1
    ratios = {r["name"]: r for r in data["ratios"]}
    train = ratios["train-from-kafka / train-from-parquet"]
    assert train["value"] > 0 and train["goal"] == "<= 1.2"
    assert ratios["reader->tf.data / tensorflow-io"]["value"] is None
    assert by_name[TRAIN_KAFKA]["ratio"]["train-from-parquet"] == train["value"]
    assert data["machine"]["broker"] == kafka.bootstrap_servers

    # The suite removes its topic from a broker it did not start.
    deadline = time.monotonic() + 30
    while any(t.startswith("lakeless-bench-") and t.endswith("-train") for t in list_topics(kafka)):
        assert time.monotonic() < deadline, list_topics(kafka)
        time.sleep(0.5)
