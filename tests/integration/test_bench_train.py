"""The train benchmark end to end on the session broker, tiny and without tensorflow-io.

tensorflow-io needs a TensorFlow 2.16 virtualenv of its own (minutes to build, network needed),
so CI runs the suite with ``tfio=False``; nothing is asserted about speed.
"""

from __future__ import annotations

import pytest

from lakeless.bench._train import TrainBenchSettings, run_train_bench
from lakeless.bench._train_report import (
    MEMORY_TF,
    RAW_CONSUME,
    READER_NUMPY,
    READER_TF,
    TFIO,
    TFIO_PER_MESSAGE,
    TRAIN_KAFKA,
    TRAIN_PARQUET,
    TRAIN_PATHS,
)
from lakeless.config import KafkaSettings
from lakeless.kafka import list_topics
from lakeless.testing.waiting import wait_for

pytestmark = pytest.mark.slow


def test_train_suite_measures_every_path(kafka: KafkaSettings) -> None:
    rows = 20_000
    bench = TrainBenchSettings(rows=rows, epochs=1, partitions=2, tfio=False, timeout=60, repeats=2)
    data = run_train_bench(bench, kafka).to_dict()

    assert [r["name"] for r in data["results"]] == list(TRAIN_PATHS)
    for result in data["results"]:
        if result["name"] in (TFIO, TFIO_PER_MESSAGE):
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
    # Kafka's own limit, read the same way and interleaved with the reader.
    assert data["ceiling"] == RAW_CONSUME
    raw = by_name[RAW_CONSUME]
    assert raw["events"] == rows and raw["ratio_to_ceiling"] == 1.0
    for name in (RAW_CONSUME, READER_NUMPY, READER_TF, MEMORY_TF, TRAIN_KAFKA, TRAIN_PARQUET):
        assert by_name[name]["extra"]["repeats"] == 2, by_name[name]
        assert len(by_name[name]["extra"]["runs_per_s"]) == 2
        assert by_name[name]["extra"]["spread"] >= 0
    ratios = {r["name"]: r for r in data["ratios"]}
    for name, goal in ((f"{READER_NUMPY} / {RAW_CONSUME}", ">= 0.8"),
                       (f"{READER_TF} / {READER_NUMPY}", ">= 0.9")):  # fmt: skip
        assert ratios[name]["value"] > 0 and ratios[name]["goal"] == goal, ratios[name]
    train = ratios["train-from-kafka / train-from-parquet"]
    assert train["value"] > 0 and train["goal"] == "<= 1.2"
    assert ratios["reader->tf.data / tensorflow-io"]["value"] is None
    assert ratios["reader->tf.data / tensorflow-io-per-message"]["goal"] == ">= 10"
    assert ratios[f"{READER_TF} / {MEMORY_TF}"]["value"] > 0  # tf.data's own ceiling
    assert by_name[TRAIN_KAFKA]["ratio"]["train-from-parquet"] == train["value"]
    assert data["machine"]["broker"] == kafka.bootstrap_servers

    # The suite removes its topic from a broker it did not start.
    wait_for(
        lambda: (
            not [
                t
                for t in list_topics(kafka)
                if t.startswith("lakeless-bench-") and t.endswith("-train")
            ]
        ),
        30,
        "the train topic deleted",
        lambda: str(list_topics(kafka)),
        interval=0.5,
    )
