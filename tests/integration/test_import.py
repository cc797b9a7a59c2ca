"""``lakeless import`` against a real broker: the recorded demo CSV and JSON lines."""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka import TopicPartition

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.importer import CsvMapping, import_file
from lakeless.kafka import make_consumer
from lakeless.schema import make_example_json

RECORDED_CSV = (
    Path(__file__).resolve().parents[2].parent / "shared/data/seed-demo-car-sensor-data.csv"
)


def read_all(kafka: KafkaSettings, topic: str, partitions: int, expected: int) -> list:
    consumer = make_consumer(kafka, group_id=f"check-{topic}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list = []
    deadline = time.monotonic() + 60
    while len(out) < expected and time.monotonic() < deadline:
        out += [m for m in consumer.consume(5000, timeout=0.5) if m.error() is None]
    consumer.close()
    return out


@pytest.mark.skipif(not RECORDED_CSV.exists(), reason="shared/data is not beside the checkout")
def test_recorded_demo_csv_imports_completely(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    raw = new_topic(partitions=3, **{"retention.ms": "-1"})  # 2019 timestamps: keep forever
    settings = Settings(kafka=kafka, topics=TopicSettings(raw=raw))
    stats = import_file(RECORDED_CSV, settings, CsvMapping(scale={"battery_percentage": 100.0}))
    assert stats.read == stats.produced == 10_000

    with RECORDED_CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    records = read_all(kafka, raw, 3, 10_000)
    assert len(records) == 10_000
    by_car_seq = {}
    for msg in records:
        event = json.loads(msg.value())
        assert msg.key() == event["car_id"].encode()
        assert msg.timestamp()[1] == event["ts"]  # original event time kept
        by_car_seq[(event["car_id"], event["seq"])] = event
    # The first row of car1 is seq 0, with its time in ms and battery as percent.
    first = next(r for r in rows if r["car"] == "car1")
    event = by_car_seq[("car1", 0)]
    assert event["ts"] == int(first["time"]) * 1000
    assert event["battery_percentage"] == pytest.approx(float(first["battery_percentage"]) * 100)
    assert event["model"] == "unknown"


def test_json_lines_are_forwarded_byte_for_byte(
    kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw = new_topic(partitions=1, **{"retention.ms": "-1"})
    lines = [
        make_example_json(car_id="car-a", seq=0, ts=1_700_000_000_000),
        b'{"car_id": "car-b", "ts": "yesterday"}',
        b"not json at all",
        make_example_json(car_id="car-a", seq=1, ts=1_700_000_001_000),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    stats = import_file(path, Settings(kafka=kafka, topics=TopicSettings(raw=raw)))
    assert stats.produced == 4

    records = read_all(kafka, raw, 1, 4)
    assert [m.value() for m in records] == lines
    assert [m.key() for m in records] == [b"car-a", b"car-b", None, b"car-a"]
    assert records[0].timestamp()[1] == 1_700_000_000_000
    assert records[3].timestamp()[1] == 1_700_000_001_000
