"""The preprocess stage against real Kafka (and Mosquitto plus the bridge upstream).

No test is timed by sleeps: runs stop on a record count known in advance (the raw topic's end
offsets), and tests wait for the bridge's SUBACK, Mosquitto's PUBACKs, records in a topic, or
a log line of the stage.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Message

from lakeless.bridge import Bridge, BridgeSettings
from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.examples import car_fleet, example_schema
from lakeless.fleet import FleetSettings, KafkaSink, MqttSink, Simulator, fleet_events
from lakeless.kafka import TopicSpec, create_topics
from lakeless.lifecycle import RunLimits
from lakeless.pipeline import Pipeline, pipeline_topic_specs
from lakeless.preprocess import (
    PreprocessError,
    PreprocessSettings,
    PreprocessStage,
    compile_filter,
    read_dead_letter,
)
from lakeless.schema import PipelineSchema
from lakeless.stack import free_port
from lakeless.testing.corpus import bad_keyed_records, bad_records, edge_good_records, good_record
from lakeless.testing.events import decode_clean, decode_event
from lakeless.testing.kafka import (
    committed_offsets,
    end_offsets,
    produce_records,
    read_topic,
)
from lakeless.testing.mqtt import Publisher
from lakeless.testing.waiting import wait_for

PARTITIONS = 3
CAR = car_fleet()


@pytest.fixture
def topics(new_topic: Callable[..., str]) -> TopicSettings:
    """Fresh raw / clean / dead-letter topics with three partitions each."""
    return TopicSettings(
        raw=new_topic(partitions=PARTITIONS),
        clean=new_topic(partitions=PARTITIONS),
        dlq=new_topic(partitions=PARTITIONS),
    )


def _group() -> str:
    return f"preprocess-{uuid.uuid4().hex[:8]}"


def _stage(
    kafka: KafkaSettings,
    topics: TopicSettings,
    group: str | None = None,
    pipeline: Pipeline | None = None,
    **options: Any,
) -> PreprocessStage:
    config = PreprocessSettings(group_id=group or _group(), **options)
    return PreprocessStage(Settings(kafka=kafka, topics=topics, preprocess=config), pipeline)


def _records_in(kafka: KafkaSettings, topic: str) -> int:
    return sum(end_offsets(kafka, topic).values())


@contextmanager
def _bridge(settings: Settings) -> Iterator[Bridge]:
    """A bridge in a thread with its own client id, subscribed (SUBACK) on entry.

    On exit it is stopped once every message it received is safely in Kafka.
    """
    config = BridgeSettings(client_id=f"bridge-{uuid.uuid4().hex[:8]}")
    bridge = Bridge(settings.model_copy(update={"bridge": config}))
    thread = threading.Thread(target=bridge.run, args=(RunLimits(timeout=300),), daemon=True)
    thread.start()
    assert bridge.wait_ready(30), "the bridge did not subscribe"
    try:
        yield bridge
        wait_for(lambda: bridge.stats.acked >= bridge.stats.received, 60, "the bridge's acks")
    finally:
        bridge.request_stop()
        thread.join(60)
    assert not thread.is_alive()


def _publish_mqtt(mqtt_settings: MqttSettings, messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish ``(topic, payload)`` at QoS 1 and wait for every PUBACK."""
    with Publisher(mqtt_settings) as device:
        count = device.publish(messages)
        assert device.wait_acked(60), "Mosquitto did not acknowledge every message"
    return count


def _key_position(
    messages: list[Message], schema: PipelineSchema = CAR
) -> Counter[tuple[Any, int]]:
    batch = decode_clean([m.value() for m in messages], schema)
    return Counter(zip(batch.key, batch.position.tolist(), strict=True))


# ---- 1. a simulated fleet, end to end through MQTT and the bridge -----------------------------


@pytest.mark.mqtt
def test_fleet_through_mqtt_bridge_and_preprocess(
    kafka: KafkaSettings, mqtt: MqttSettings, topics: TopicSettings
) -> None:
    cars, seconds, seed = 200, 60, 11
    start = int(time.time() * 1000) - seconds * 1000  # the last event is about "now"
    settings = Settings(kafka=kafka, mqtt=mqtt, topics=topics)
    fleet = FleetSettings(
        cars=cars, duration=seconds, seed=seed, start=start, failure_rate=30.0, speedup=0.0
    )
    with _bridge(settings) as bridge:
        sim = Simulator(fleet, settings, MqttSink(mqtt, client_id=f"sim-{uuid.uuid4().hex[:8]}"))
        sim_stats = sim.run()
        assert sim_stats.delivered == cars * seconds
        wait_for(lambda: bridge.stats.acked >= cars * seconds, 120, "every message in Kafka")
    raw = _records_in(kafka, topics.raw)
    assert raw >= bridge.stats.acked >= cars * seconds  # duplicates (if any) are in Kafka too

    stage = _stage(kafka, topics)
    stats = stage.run(RunLimits(count=raw, timeout=180))
    assert stats.balanced
    assert stats.received == raw  # duplicates are processed too
    assert stats.dead_lettered == 0 and stats.filtered == 0

    clean = read_topic(kafka, topics.clean, expected=stats.clean)
    assert len(clean) == stats.clean
    seen = _key_position(clean)
    expected = {
        (e.car_id, e.seq): e.failure
        for e in fleet_events(cars, seed, duration=seconds, start=start, failure_rate=30.0)
    }
    assert len(expected) == cars * seconds
    assert set(seen) == set(expected)  # every (car_id, seq) arrived, de-duplicated
    batch = decode_clean([m.value() for m in clean], CAR)
    positions = zip(batch.key, batch.position.tolist(), strict=True)
    labels = dict(zip(positions, batch.label, strict=True))
    for message, key, ts in zip(clean, batch.key, batch.time.tolist(), strict=True):
        assert message.key() == key.encode()
        assert message.timestamp()[1] == ts  # the event time, through bridge and stage
    assert labels == expected
    assert sum(label is not None for label in labels.values()) > 100  # failures were injected


def test_kafka_sink_keys_by_car_and_stamps_event_time(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    raw = new_topic(partitions=2)
    # A tiny producer queue: most sends meet a full buffer and must wait their turn.
    sink = KafkaSink(kafka, raw, queue_buffering_max_messages=5)
    start = int(time.time() * 1000) - 10_000  # recent: the topic's retention keeps it
    fleet = FleetSettings(cars=40, duration=5, seed=4, start=start, speedup=0.0)
    stats = Simulator(fleet, sink=sink).run()
    assert stats.events == stats.delivered == 200 and stats.pending == 0
    records = read_topic(kafka, raw, expected=200)
    sent = {(e.car_id, e.seq): e for e in fleet_events(40, 4, duration=5, start=start)}
    assert len(records) == 200
    for message in records:
        event = decode_event(message.value())
        assert sent[(event.car_id, event.seq)] == event
        assert message.key() == event.car_id.encode() and message.timestamp()[1] == event.ts


# ---- 2. the bad-input corpus, over MQTT and straight to Kafka ---------------------------------


def _check_dead_letters(
    kafka: KafkaSettings,
    topics: Any,
    expected_reason: dict[bytes, str],
    published: Counter[bytes],
) -> None:
    """Every dead letter has its expected reason and its source record, byte for byte."""
    n_bad = sum(published.values())
    raw_by_position = {(m.partition(), m.offset()): m for m in read_topic(kafka, topics.raw)}
    dead = read_topic(kafka, topics.dlq, expected=n_bad)
    assert len(dead) == n_bad
    landed: Counter[bytes] = Counter()
    for letter in dead:
        value = letter.value()
        name = b"<null>" if value is None else value
        landed[name] += 1
        headers = read_dead_letter(letter.headers())
        assert headers["lakeless.reason"] == expected_reason[name], (headers, name[:100])
        assert headers["lakeless.source.topic"] == topics.raw
        source = raw_by_position[
            (int(headers["lakeless.source.partition"]), int(headers["lakeless.source.offset"]))
        ]
        assert source.value() == value  # byte for byte
        assert letter.key() == source.key()
        assert int(headers["lakeless.source.timestamp"]) == source.timestamp()[1]
        original = source.headers() or []
        assert (letter.headers() or [])[: len(original)] == original  # kept, in order, first
    assert landed == published


@pytest.mark.mqtt
def test_bad_corpus_dead_lettered_and_good_records_clean(
    kafka: KafkaSettings, mqtt: MqttSettings, topics: TopicSettings
) -> None:
    bad = bad_records(CAR)
    keyed = bad_keyed_records(CAR)
    assert len({reason for reason, _ in bad}) >= 15
    expected_reason: dict[bytes, str] = {raw: reason for reason, raw in bad}
    expected_reason |= {raw: reason for reason, _key, raw in keyed}
    assert len({raw for _, raw in bad}) == len(bad)  # a value identifies its expected reason
    published: Counter[bytes] = Counter()
    good: set[tuple[str, int]] = set()

    # (a) over MQTT through the bridge, interleaved with good records. Every bad record goes to
    # vehicles/car-1/sensors: the corpus' decodable records all say car_id "car-1", so the
    # bridge's key (the topic's car id) never changes the expected reason. All of bad_records()
    # is publishable (Mosquitto takes the 64 KiB ones and the empty payload too); the
    # key_mismatch cases go to Kafka only, since the bridge always keys by the topic's car id.
    settings = Settings(kafka=kafka, mqtt=mqtt, topics=topics)
    messages = []
    for seq, (_reason, raw) in enumerate(bad):
        messages.append(("vehicles/car-1/sensors", raw))
        published[raw] += 1
        car = f"mqtt-{seq % 7}"
        messages.append((f"vehicles/{car}/sensors", good_record(car_id=car, seq=seq)))
        good.add((car, seq))
    with _bridge(settings) as bridge:
        sent_mqtt = _publish_mqtt(mqtt, messages)
        wait_for(lambda: bridge.stats.acked >= sent_mqtt, 120, "every message in Kafka")
    assert bridge.stats.acked == sent_mqtt

    # (b) straight to Kafka: the whole corpus, keyed records included, with headers to keep.
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    for seq, (_reason, raw) in enumerate(bad):
        records.append((None, raw, [("origin", b"kafka"), ("n", str(seq).encode())]))
        published[raw] += 1
        car = f"kafka-{seq % 5}"
        records.append((car.encode(), good_record(car_id=car, seq=seq), []))
        good.add((car, seq))
    for _reason, key, raw in keyed:
        records.append((key, raw, [("origin", b"kafka")]))
        published[raw] += 1
    records.append((b"car-1", None, [("origin", b"tombstone")]))  # a null value: "empty"
    expected_reason[b"<null>"] = "empty"
    published[b"<null>"] += 1
    produce_records(kafka, topics.raw, records)

    total = sent_mqtt + len(records)
    assert _records_in(kafka, topics.raw) == total
    stats = _stage(kafka, topics).run(RunLimits(count=total, timeout=180))
    n_bad = sum(published.values())
    by_reason: Counter[str] = Counter()
    for value, times in published.items():
        by_reason[expected_reason[value]] += times
    counts = stats.to_dict()
    assert {k: counts[k] for k in ("in", "clean", "dead_lettered", "filtered", "balanced")} == {
        "in": total,
        "clean": total - n_bad,
        "dead_lettered": n_bad,
        "filtered": 0,
        "balanced": True,
    }
    assert counts["dlq_by_reason"] == dict(sorted(by_reason.items()))
    _check_dead_letters(kafka, topics, expected_reason, published)
    clean = read_topic(kafka, topics.clean, expected=len(good))
    assert _key_position(clean) == Counter(dict.fromkeys(good, 1))


def test_another_pipelines_corpus_gets_its_reasons(
    kafka: KafkaSettings, new_topic: Callable[..., str]
) -> None:
    pumps = example_schema("pumps")
    settings = Settings(kafka=kafka)
    pipeline = Pipeline.new(f"pumps-test-{uuid.uuid4().hex[:6]}", pumps, partitions=PARTITIONS)
    create_topics(kafka, pipeline_topic_specs(settings, pipeline))
    bad = bad_records(pumps)
    keyed = bad_keyed_records(pumps)
    good = [good_record(pumps, pump_id=f"p-{i}") for i in range(5)] + edge_good_records(pumps)
    expected_reason = {raw: reason for reason, raw in bad} | {raw: r for r, _, raw in keyed}
    published: Counter[bytes] = Counter()
    records: list[tuple[bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
    for _reason, raw in bad:
        records.append((None, raw, [("case", b"bad")]))
        published[raw] += 1
    for _reason, key, raw in keyed:
        records.append((key, raw, []))
        published[raw] += 1
    records += [(None, raw, []) for raw in good]
    produce_records(kafka, pipeline.topics.raw, records)

    stage = _stage(kafka, TopicSettings(), pipeline=pipeline)
    stats = stage.run(RunLimits(count=len(records), timeout=180))
    assert stats.balanced and stats.received == len(records)
    assert (stats.dead_lettered, stats.clean) == (len(bad) + len(keyed), len(good))
    assert set(stats.by_reason) == {reason for reason, _ in bad} | {"key_mismatch"}
    _check_dead_letters(kafka, pipeline.topics, expected_reason, published)
    clean = read_topic(kafka, pipeline.topics.clean, expected=len(good))
    batch = pipeline.decoder().decode([m.value() for m in clean])  # the pumps' own layout
    assert batch.sequence is None and len(batch) == len(good)
    assert all(m.key() == key.encode() for m, key in zip(clean, batch.key, strict=True))
    assert {f"p-{i}" for i in range(5)} <= set(batch.key)


# ---- 3. offsets: a second run continues where the first committed ----------------------------


def test_second_run_continues_after_committed_offsets(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    total, first = 1000, 437
    records = [
        (f"car-{i % 17}".encode(), good_record(car_id=f"car-{i % 17}", seq=i))
        if i % 10
        else (None, b"not json")
        for i in range(total)
    ]
    produce_records(kafka, topics.raw, records)
    group = _group()

    one = _stage(kafka, topics, group, batch_size=100).run(RunLimits(count=first, timeout=60))
    assert one.received == first and one.balanced
    committed = committed_offsets(kafka, group, topics.raw)
    assert sum(max(offset, 0) for offset in committed.values()) == first

    two = _stage(kafka, topics, group, batch_size=100).run(RunLimits(until_idle=3, timeout=60))
    assert two.received == total - first and two.balanced
    assert committed_offsets(kafka, group, topics.raw) == end_offsets(kafka, topics.raw)

    clean = read_topic(kafka, topics.clean, expected=one.clean + two.clean)
    dead = read_topic(kafka, topics.dlq, expected=one.dlq + two.dlq)
    assert len(clean) + len(dead) == total  # nothing lost, nothing twice
    assert len(dead) == total // 10
    assert set(_key_position(clean).values()) == {1}


# ---- 4. --where ------------------------------------------------------------------------------


def test_where_filter_counts_but_does_not_produce(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    where = "speed > 20 and failure is null"
    events = [
        good_record(
            car_id=f"car-{i % 9}",
            seq=i,
            speed=float(i % 40),
            failure=None if i % 3 else "flat_tire",
        )
        for i in range(600)
    ]
    produce_records(kafka, topics.raw, [(None, raw) for raw in events])
    passing = compile_filter(where, CAR)
    expected = {(e.car_id, e.seq) for e in map(decode_event, events) if passing(e)}
    assert 0 < len(expected) < len(events)

    stats = _stage(kafka, topics, where=where).run(RunLimits(count=len(events), timeout=60))
    counts = stats.to_dict()
    assert {k: counts[k] for k in ("in", "clean", "dead_lettered", "filtered", "balanced")} == {
        "in": len(events),
        "clean": len(expected),
        "dead_lettered": 0,
        "filtered": len(events) - len(expected),
        "balanced": True,
    }
    assert counts["dlq_by_reason"] == {}
    clean = read_topic(kafka, topics.clean, expected=len(expected))
    assert _key_position(clean) == Counter(dict.fromkeys(expected, 1))
    batch = decode_clean([m.value() for m in clean], CAR)
    assert [m.key() for m in clean] == [key.encode() for key in batch.key]


# ---- event-time reference ----------------------------------------------------------------------


def test_time_reference_wall_clock_or_record(kafka: KafkaSettings, topics: TopicSettings) -> None:
    hour = 3_600_000
    arrived = int(time.time() * 1000) - hour  # backlog: ingested an hour ago
    skewed = good_record(ts=arrived + 10 * 60_000)  # 10 min ahead of its ingestion
    produce_records(kafka, topics.raw, [(b"car-1", skewed)], timestamp=arrived)

    wall = _stage(kafka, topics, time_reference="wall_clock").run(RunLimits(count=1, timeout=30))
    assert (wall.clean, wall.dlq) == (1, 0)  # behind the wall clock: accepted
    # the default reference; a second group over the same outputs must say it reprocesses
    record = _stage(kafka, topics, reprocess=True).run(RunLimits(count=1, timeout=30))
    assert record.by_reason == Counter(ts_in_future=1)


# ---- errors: no crash on consumer errors, no commit without acknowledged outputs --------------


def test_missing_input_topic_fails_fast_naming_it_and_how_to_create_it(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """Issue 10.7: a missing input topic is an error, not an idle run that exits 0."""
    absent = topics.model_copy(update={"raw": f"absent-{uuid.uuid4().hex[:8]}"})
    stage = _stage(kafka, absent)
    started = time.monotonic()
    with pytest.raises(PreprocessError) as error:
        stage.run(RunLimits(until_idle=2, timeout=30))
    message = str(error.value)
    assert absent.raw in message and kafka.bootstrap_servers in message, message
    assert "lakeless topics create" in message, message
    assert time.monotonic() - started < 20  # one metadata request, no waiting for idle

    create_topics(kafka, [TopicSpec(absent.raw, 1, 1, {})])  # once created, it is read
    produce_records(kafka, absent.raw, [(b"car-1", good_record(seq=i)) for i in range(50)])
    stats = stage.run(RunLimits(count=50, timeout=120))
    assert (stats.received, stats.clean, stats.stopped_by) == (50, 50, "processed 50 (count)")
    assert len(read_topic(kafka, topics.clean, expected=50)) == 50


def test_refused_outputs_raise_and_commit_nothing(
    kafka: KafkaSettings, topics: TopicSettings, new_topic: Callable[..., str]
) -> None:
    tiny = new_topic(partitions=1, **{"max.message.bytes": "64"})  # smaller than any batch
    produce_records(kafka, topics.raw, [(b"car-1", good_record(seq=i)) for i in range(20)])
    group = _group()
    stage = _stage(kafka, topics.model_copy(update={"clean": tiny}), group)
    with pytest.raises(PreprocessError, match="did not accept"):
        stage.run(RunLimits(until_idle=3, timeout=60))
    assert stage.stats.received == 0  # only acknowledged batches count
    assert all(offset < 0 for offset in committed_offsets(kafka, group, topics.raw).values())


# ---- the command line ------------------------------------------------------------------------


def _cli_env(kafka: KafkaSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LAKELESS_TOPICS__RAW": topics.raw,
        "LAKELESS_TOPICS__CLEAN": topics.clean,
        "LAKELESS_TOPICS__DLQ": topics.dlq,
        "LAKELESS_PREPROCESS__GROUP_ID": _group(),
    }


def _mixed_records(count: int) -> list[tuple[bytes | None, bytes | None]]:
    return [(None, b"[]") if i % 4 == 0 else (b"car-1", good_record(seq=i)) for i in range(count)]


def test_cli_until_idle_writes_balanced_stats(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    produce_records(kafka, topics.raw, _mixed_records(300))
    out = tmp_path / "stats.json"
    result = subprocess.run(
        [
            *(sys.executable, "-m", "lakeless", "preprocess", "--until-idle", "3"),
            *("--stats-json", str(out), "--where", "speed >= 0"),
        ],
        env=_cli_env(kafka, topics),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(out.read_text())
    assert stats["balanced"] is True
    assert (stats["in"], stats["clean"], stats["dead_lettered"], stats["filtered"]) == (
        300,
        225,
        75,
        0,
    )
    assert stats["dlq_by_reason"] == {"not_an_object": 75}
    assert stats["stopped_by"] == "idle for 3s"


def test_metrics_are_served_while_the_stage_runs(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    """``--metrics-port``: Prometheus text with the stage's counters, lag and batch timing."""
    produce_records(kafka, topics.raw, _mixed_records(40))
    port = free_port()
    stage = _stage(kafka, topics, metrics_port=port)
    scraped: list[str] = []

    def scrape() -> bool:
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        except httpx.HTTPError:
            return False
        scraped.append(text)
        return "lakeless_preprocess_events_total 40.0" in text

    runner = threading.Thread(target=stage.run, args=(RunLimits(timeout=120),), daemon=True)
    runner.start()
    try:
        wait_for(scrape, 60, "the metrics endpoint to count every record")
    finally:
        stage.request_stop()
        runner.join(60)
    text = scraped[-1]
    assert "lakeless_preprocess_outputs_total 40.0" in text
    assert "lakeless_preprocess_batch_seconds_bucket" in text
    assert "lakeless_preprocess_consumer_lag" in text


def test_cli_sigterm_stops_cleanly_and_writes_stats(
    kafka: KafkaSettings, topics: TopicSettings, tmp_path: Path
) -> None:
    produce_records(kafka, topics.raw, _mixed_records(200))
    out = tmp_path / "stats.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "lakeless", "preprocess", "--stats-json", str(out)],
        env=_cli_env(kafka, topics),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        read_topic(kafka, topics.clean, expected=150, timeout=120)
        read_topic(kafka, topics.dlq, expected=50, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    stats = json.loads(out.read_text())
    assert stats["stopped_by"] == "received SIGTERM"
    assert (stats["in"], stats["clean"], stats["dead_lettered"], stats["balanced"]) == (
        200,
        150,
        50,
        True,
    )
