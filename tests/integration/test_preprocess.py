"""The preprocess stage against real Kafka (and Mosquitto plus the bridge upstream)."""

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
from collections.abc import Callable, Iterable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Message

from lakeless.bridge import Bridge, BridgeSettings
from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.fleet import FleetSettings, MqttSink, Simulator, fleet_events
from lakeless.lifecycle import RunLimits
from lakeless.preprocess import (
    PreprocessError,
    PreprocessSettings,
    PreprocessStage,
    compile_filter,
    read_dead_letter,
)
from lakeless.schema import decode_clean, decode_clean_batch, decode_event
from lakeless.testing.corpus import bad_keyed_records, bad_records, good_record
from lakeless.testing.kafka import (
    committed_offsets,
    end_offsets,
    produce_records,
    read_topic,
)

PARTITIONS = 3


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
    kafka: KafkaSettings, topics: TopicSettings, group: str | None = None, **options: object
) -> PreprocessStage:
    config = PreprocessSettings(group_id=group or _group(), **options)  # type: ignore[arg-type]
    return PreprocessStage(Settings(kafka=kafka, topics=topics), config)


def _start_bridge(settings: Settings) -> tuple[Bridge, threading.Thread]:
    """A bridge in a thread with its own client id and share group, subscribed on return."""
    group = uuid.uuid4().hex[:8]
    bridge = Bridge(settings, BridgeSettings(client_id=f"bridge-{group}", share_group=group))
    limits = RunLimits(until_idle=3, timeout=120)
    thread = threading.Thread(target=bridge.run, args=(limits,), daemon=True)
    thread.start()
    assert bridge._connected.wait(30)
    time.sleep(0.5)  # the SUBSCRIBE goes out right after CONNACK
    return bridge, thread


def _publish_mqtt(mqtt_settings: MqttSettings, messages: Iterable[tuple[str, bytes]]) -> int:
    """Publish ``(topic, payload)`` at QoS 1 and wait for every PUBACK."""
    acked: set[int] = set()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.on_publish = lambda _c, _u, mid, _rc, _p: acked.add(mid)
    client.connect(mqtt_settings.host, mqtt_settings.port)
    client.loop_start()
    try:
        mids = [client.publish(topic, payload, qos=1).mid for topic, payload in messages]
        deadline = time.monotonic() + 60
        while not acked.issuperset(mids):
            assert time.monotonic() < deadline, "Mosquitto did not acknowledge every message"
            time.sleep(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return len(mids)


def _car_seq(messages: list[Message]) -> Counter[tuple[str, int]]:
    batch = decode_clean_batch([m.value() for m in messages])
    return Counter(zip(batch.car_id, batch.numeric["seq"].tolist(), strict=True))


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
    bridge, thread = _start_bridge(settings)
    sim = Simulator(fleet, settings, MqttSink(mqtt, client_id=f"sim-{uuid.uuid4().hex[:8]}"))
    sim_stats = sim.run()
    assert sim_stats.delivered == cars * seconds
    thread.join(120)
    assert not thread.is_alive()
    assert bridge.stats.acked >= cars * seconds

    stage = _stage(kafka, topics)
    stats = stage.run(RunLimits(until_idle=3, timeout=120))
    assert stats.balanced
    assert stats.received == bridge.stats.acked  # duplicates (if any) are processed too
    assert stats.dlq == 0 and stats.filtered == 0

    clean = read_topic(kafka, topics.clean, expected=stats.clean)
    assert len(clean) == stats.clean
    seen = _car_seq(clean)
    expected = {
        (e.car_id, e.seq): e.failure
        for e in fleet_events(cars, seed, duration=seconds, start=start, failure_rate=30.0)
    }
    assert len(expected) == cars * seconds
    assert set(seen) == set(expected)  # every (car_id, seq) arrived, de-duplicated
    labels = {}
    for message in clean:
        event = decode_clean(message.value())
        assert message.key() == event.car_id.encode()
        assert message.timestamp()[1] == event.ts
        labels[(event.car_id, event.seq)] = event.failure
    assert labels == expected
    assert sum(label is not None for label in labels.values()) > 100  # failures were injected


# ---- 2. the bad-input corpus, over MQTT and straight to Kafka ---------------------------------


@pytest.mark.mqtt
def test_bad_corpus_dead_lettered_and_good_records_clean(
    kafka: KafkaSettings, mqtt: MqttSettings, topics: TopicSettings
) -> None:
    bad = bad_records()
    keyed = bad_keyed_records()
    assert len({reason for reason, _ in bad}) >= 15
    expected_reason: dict[bytes, str] = {raw: reason for reason, raw in bad}
    expected_reason |= {raw: reason for reason, _key, raw in keyed}
    assert len({raw for _, raw in bad}) == len(bad)  # a value identifies its expected reason
    published: Counter[bytes] = Counter()
    good: set[tuple[str, int]] = set()

    # (a) over MQTT through the bridge, interleaved with good records. Every bad record goes to
    # vehicles/car-1/sensors: the corpus' decodable records all say car_id "car-1", so the
    # bridge's key (the topic's car id) never changes the expected reason. All of bad_records()
    # is publishable (Mosquitto takes the 64 KiB one and the empty payload too); the
    # key_mismatch cases go to Kafka only, since the bridge always keys by the topic's car id.
    settings = Settings(kafka=kafka, mqtt=mqtt, topics=topics)
    messages = []
    for seq, (_reason, raw) in enumerate(bad):
        messages.append(("vehicles/car-1/sensors", raw))
        published[raw] += 1
        car = f"mqtt-{seq % 7}"
        messages.append((f"vehicles/{car}/sensors", good_record(car_id=car, seq=seq)))
        good.add((car, seq))
    bridge, thread = _start_bridge(settings)
    sent_mqtt = _publish_mqtt(mqtt, messages)

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

    thread.join(120)
    assert not thread.is_alive()
    assert bridge.stats.acked == sent_mqtt

    stage = _stage(kafka, topics)
    stats = stage.run(RunLimits(until_idle=3, timeout=120))
    total = sent_mqtt + len(records)
    n_bad = sum(published.values())
    by_reason: Counter[str] = Counter()
    for value, times in published.items():
        by_reason[expected_reason[value]] += times
    assert stats.to_dict() == {
        "in": total,
        "clean": total - n_bad,
        "dlq": n_bad,
        "dlq_by_reason": dict(sorted(by_reason.items())),
        "filtered": 0,
        "balanced": True,
    }

    raw_by_position = {(m.partition(), m.offset()): m for m in read_topic(kafka, topics.raw)}
    assert len(raw_by_position) == total
    dead = read_topic(kafka, topics.dlq, expected=n_bad)
    assert len(dead) == n_bad
    landed: Counter[bytes] = Counter()
    for letter in dead:
        value = letter.value()
        name = b"<null>" if value is None else value
        landed[name] += 1
        headers = read_dead_letter(letter.headers())
        assert headers["lakeless.reason"] == expected_reason[name], headers
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

    clean = read_topic(kafka, topics.clean, expected=len(good))
    assert Counter(_car_seq(clean)) == Counter(dict.fromkeys(good, 1))


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
    assert set(_car_seq(clean).values()) == {1}


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
    passing = compile_filter(where)
    expected = {(e.car_id, e.seq) for e in map(decode_event, events) if passing(e)}
    assert 0 < len(expected) < len(events)

    stats = _stage(kafka, topics, where=where).run(RunLimits(until_idle=3, timeout=60))
    assert stats.to_dict() == {
        "in": len(events),
        "clean": len(expected),
        "dlq": 0,
        "dlq_by_reason": {},
        "filtered": len(events) - len(expected),
        "balanced": True,
    }
    clean = read_topic(kafka, topics.clean, expected=len(expected))
    assert _car_seq(clean) == Counter(dict.fromkeys(expected, 1))
    assert all(m.key() == decode_clean(m.value()).car_id.encode() for m in clean)


# ---- event-time reference ----------------------------------------------------------------------


def test_time_reference_wall_clock_or_record(kafka: KafkaSettings, topics: TopicSettings) -> None:
    hour = 3_600_000
    arrived = int(time.time() * 1000) - hour  # backlog: ingested an hour ago
    skewed = good_record(ts=arrived + 10 * 60_000)  # 10 min ahead of its ingestion
    produce_records(kafka, topics.raw, [(b"car-1", skewed)], timestamp=arrived)

    wall = _stage(kafka, topics, time_reference="wall_clock").run(RunLimits(count=1, timeout=30))
    assert (wall.clean, wall.dlq) == (1, 0)  # behind the wall clock: accepted
    record = _stage(kafka, topics).run(RunLimits(count=1, timeout=30))  # the default
    assert record.dead_lettered == Counter(ts_in_future=1)


# ---- errors: no crash on consumer errors, no commit without acknowledged outputs --------------


def test_missing_input_topic_neither_crashes_nor_stalls(
    kafka: KafkaSettings, topics: TopicSettings
) -> None:
    absent = topics.model_copy(update={"raw": f"absent-{uuid.uuid4().hex[:8]}"})
    started = time.monotonic()
    stats = _stage(kafka, absent).run(RunLimits(until_idle=2, timeout=30))
    assert stats.received == 0
    assert time.monotonic() - started < 15


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


def test_cli_default_batch_size_is_the_library_default() -> None:
    import inspect

    from lakeless.preprocess import DEFAULT_BATCH_SIZE
    from lakeless.preprocess.cli import preprocess

    assert inspect.signature(preprocess).parameters["batch_size"].default == DEFAULT_BATCH_SIZE


def _cli_env(kafka: KafkaSettings, topics: TopicSettings) -> dict[str, str]:
    return {
        **os.environ,
        "LAKELESS_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LAKELESS_TOPICS__RAW": topics.raw,
        "LAKELESS_TOPICS__CLEAN": topics.clean,
        "LAKELESS_TOPICS__DLQ": topics.dlq,
        "LAKELESS_PREPROCESS_GROUP_ID": _group(),
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
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    stats = json.loads(out.read_text())
    assert stats["balanced"] is True
    assert (stats["in"], stats["clean"], stats["dlq"], stats["filtered"]) == (300, 225, 75, 0)
    assert stats["dlq_by_reason"] == {"not_an_object": 75}
    assert stats["stopped_by"] == "idle for 3s"


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
        read_topic(kafka, topics.clean, expected=150, timeout=60)
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
    stats = json.loads(out.read_text())
    assert stats["stopped_by"] == "received SIGTERM"
    assert (stats["in"], stats["clean"], stats["dlq"], stats["balanced"]) == (200, 150, 50, True)
