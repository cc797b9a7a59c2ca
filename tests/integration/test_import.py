"""``lakeless import`` against a real broker: the recorded demo CSV, JSON lines, another schema."""

from __future__ import annotations

import csv
import json
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

from lakeless.config import KafkaSettings, Settings, TopicSettings
from lakeless.dataset import Window
from lakeless.examples import car_fleet, example_schema
from lakeless.importer import ImportSettings, import_file
from lakeless.pipeline import Pipeline, PipelineTopics
from lakeless.preprocess import Rejection, Validator
from lakeless.testing.events import example_json
from lakeless.testing.kafka import read_topic

RECORDED_CSV = (
    Path(__file__).resolve().parents[2].parent / "shared/data/seed-demo-car-sensor-data.csv"
)


@pytest.mark.skipif(not RECORDED_CSV.exists(), reason="shared/data is not beside the checkout")
def test_recorded_demo_csv_imports_completely(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    raw = new_topic(partitions=3, **{"retention.ms": "-1"})  # 2019 timestamps: keep forever
    settings = Settings(
        kafka=kafka,
        topics=TopicSettings(raw=raw),
        importer=ImportSettings(scale="battery_percentage=100"),
    )
    stats = import_file(RECORDED_CSV, settings)
    assert stats.read == stats.produced == 10_000

    with RECORDED_CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    records = read_topic(kafka, raw, expected=10_000)
    assert len(records) == 10_000
    validator = Validator(car_fleet())
    by_car_seq = {}
    for msg in records:
        event = json.loads(msg.value())
        assert msg.key() == event["car_id"].encode()
        assert msg.timestamp()[1] == event["ts"]  # original event time kept
        by_car_seq[(event["car_id"], event["seq"])] = msg.value()
    # The first row of car1 is seq 0, with its time in ms and battery as percent.
    first = next(r for r in rows if r["car"] == "car1")
    decoded = validator.validate(by_car_seq[("car1", 0)], b"car1")
    assert not isinstance(decoded, Rejection), decoded
    assert decoded.ts == int(first["time"]) * 1000
    assert decoded.battery_percentage == pytest.approx(float(first["battery_percentage"]) * 100)
    assert decoded.model == "unknown"  # no model column: the schema's default


def test_json_lines_are_forwarded_byte_for_byte(
    kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    raw = new_topic(partitions=1, **{"retention.ms": "-1"})
    lines = [
        example_json(car_id="car-a", seq=0, ts=1_700_000_000_000),
        b'{"car_id": "car-b", "ts": "yesterday"}',
        b"not json at all",
        example_json(car_id="car-a", seq=1, ts=1_700_000_001_000),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n\n")
    stats = import_file(path, Settings(kafka=kafka, topics=TopicSettings(raw=raw)))
    assert stats.produced == 4

    records = read_topic(kafka, raw, expected=4)
    assert [m.value() for m in records] == lines
    assert [m.key() for m in records] == [b"car-a", b"car-b", None, b"car-a"]
    assert records[0].timestamp()[1] == 1_700_000_000_000
    assert records[3].timestamp()[1] == 1_700_000_001_000


def test_csv_of_another_pipeline(
    kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    pumps = example_schema("pumps")
    raw = new_topic(partitions=2)
    topics = PipelineTopics(raw, "unused.clean", "unused.dlq", "unused.a", "unused.s")
    pipeline = Pipeline.new(f"pumps-{uuid.uuid4().hex[:6]}", pumps, topics=topics)
    path = tmp_path / "pumps.csv"
    header = ["asset", "time", "site", "pump_type", *pumps.feature_names, "fault"]
    rows = [
        [f"p-{i % 3}", str(1_700_000_000 + i), "plant-a", "booster", *["1"] * 7, ""]
        for i in range(30)
    ]
    rows[7][-1] = "cavitation"
    path.write_text("\n".join(",".join(row) for row in [header, *rows]) + "\n")
    stats = import_file(path, Settings(kafka=kafka), pipeline)
    assert stats.read == stats.produced == 30

    records = read_topic(kafka, raw, expected=30)
    validator = Validator(pumps)
    events = {}
    for message in records:
        event = validator.validate(message.value(), message.key())
        assert not isinstance(event, Rejection), event
        assert message.timestamp()[1] == event.timestamp  # seconds became milliseconds
        events[event.timestamp] = event
    assert len(events) == 30
    assert events[1_700_000_007_000].fault == "cavitation"
    assert {e.fault for t, e in events.items() if t != 1_700_000_007_000} == {None}


def test_history_imported_after_newer_data_warns_which_windows_miss_it(
    kafka: KafkaSettings,
    new_topic: Callable[..., str],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 10.4: a time window cannot find history written after newer records; say so."""
    raw = new_topic(partitions=1, **{"retention.ms": "-1"})
    settings = Settings(kafka=kafka, topics=TopicSettings(raw=raw))
    recent, history = 1_780_000_000_000, 1_567_000_000_000  # 2026 and 2019
    live = tmp_path / "live.jsonl"
    live.write_bytes(
        b"\n".join(example_json(car_id="car-a", seq=i, ts=recent + i) for i in range(5)) + b"\n"
    )
    first = import_file(live, settings)
    assert (first.produced, first.older, first.newest_before) == (5, 0, None)  # empty topic

    old = tmp_path / "2019.jsonl"
    old.write_bytes(
        b"\n".join(example_json(car_id="car-a", seq=i, ts=history + i) for i in range(20)) + b"\n"
    )
    caplog.set_level("WARNING", logger="lakeless.importer")
    stats = import_file(old, settings)
    assert (stats.produced, stats.older) == (20, 20)
    assert stats.older_range == (history, history + 19)
    assert stats.newest_before == recent + 4
    warning = stats.older_warning(raw)
    assert warning is not None and warning in caplog.text
    assert "2019-08-28T13:46:40Z" in warning and "train --offsets" in warning

    # What the warning is about: offsets-for-times puts a 2019 window after the 2026 records.
    window = Window.between(history, history + 1000).resolve(kafka, raw)
    assert window.num_records == 0
    assert Window.all().resolve(kafka, raw).num_records == 25

    newer = tmp_path / "newer.jsonl"
    newer.write_bytes(example_json(car_id="car-a", seq=9, ts=recent + 100) + b"\n")
    assert import_file(newer, settings).older == 0  # newer than what is there: no warning
