"""The MQTT -> Kafka bridge against real Mosquitto and Kafka, including a Kafka outage."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import TopicPartition

from lakeless.bridge import Bridge, BridgeSettings
from lakeless.config import KafkaSettings, MqttSettings, Settings, TopicSettings
from lakeless.kafka import TopicSpec, create_topics, make_consumer
from lakeless.lifecycle import RunLimits
from lakeless.schema import make_example_json
from lakeless.stack import KafkaBroker, free_port

pytestmark = pytest.mark.mqtt


class Publisher:
    """A device-like QoS 1 publisher that counts what the broker acknowledged (PUBACK)."""

    def __init__(self, mqtt_settings: MqttSettings) -> None:
        self.acked: set[int] = set()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_publish = lambda _c, _u, mid, _rc, _p: self.acked.add(mid)
        self.client.reconnect_delay_set(min_delay=1, max_delay=2)
        self.client.connect(mqtt_settings.host, mqtt_settings.port)
        self.client.loop_start()

    def publish_events(self, cars: int, per_car: int, rate: float | None = None) -> int:
        now = int(time.time() * 1000)
        mids = []
        for seq in range(per_car):
            for car in range(cars):
                payload = make_example_json(car_id=f"car-{car}", seq=seq, ts=now + seq * 1000)
                # While disconnected paho queues the message and sends it on reconnect.
                mids.append(self.client.publish(f"vehicles/car-{car}/sensors", payload, qos=1).mid)
            if rate:
                time.sleep(cars / rate)
        deadline = time.monotonic() + 90
        while not self.acked.issuperset(mids):
            assert time.monotonic() < deadline, "publisher could not deliver to Mosquitto"
            time.sleep(0.1)
        return cars * per_car

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_bridge(
    settings: Settings, limits: RunLimits, shared: bool = True
) -> tuple[Bridge, threading.Thread]:
    group = uuid.uuid4().hex[:8]
    bridge = Bridge(
        settings, BridgeSettings(client_id=f"bridge-{group}", share_group=group if shared else None)
    )
    thread = threading.Thread(target=bridge.run, args=(limits,), daemon=True)
    thread.start()
    assert bridge._connected.wait(30)
    time.sleep(0.3)  # the SUBSCRIBE goes out right after CONNACK
    return bridge, thread


def read_topic(kafka: KafkaSettings, topic: str, partitions: int, expected: int) -> list:
    consumer = make_consumer(kafka, group_id=f"check-{uuid.uuid4().hex}")
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    deadline = time.monotonic() + 60
    while len(out) < expected and time.monotonic() < deadline:
        out += [m for m in consumer.consume(1000, timeout=0.5) if m.error() is None]
    # Anything beyond `expected` (redelivered duplicates) arrives right behind.
    out += [m for m in consumer.consume(10000, timeout=1.0) if m.error() is None]
    consumer.close()
    return out


def test_shared_subscription_splits_the_load(
    kafka: KafkaSettings, mqtt: MqttSettings, new_topic: Callable[..., str]
) -> None:
    raw = new_topic(partitions=2)
    settings = Settings(kafka=kafka, mqtt=mqtt, topics=TopicSettings(raw=raw))
    group = uuid.uuid4().hex[:8]
    bridges = [
        Bridge(settings, BridgeSettings(client_id=f"bridge-{group}-{i}", share_group=group))
        for i in range(2)
    ]
    threads = [
        threading.Thread(target=b.run, args=(RunLimits(until_idle=5, timeout=90),), daemon=True)
        for b in bridges
    ]
    for thread in threads:
        thread.start()
    assert all(b._connected.wait(30) for b in bridges)
    time.sleep(0.5)
    client = Publisher(mqtt)
    try:
        sent = client.publish_events(cars=20, per_car=50)
    finally:
        client.close()
    for thread in threads:
        thread.join(90)
    assert all(b.stats.acked > 0 for b in bridges), [b.stats for b in bridges]
    records = read_topic(kafka, raw, 2, sent)
    assert len({(m.key(), msgspec.json.decode(m.value())["seq"]) for m in records}) == sent


def test_bridge_forwards_every_message_keyed_and_timestamped(
    kafka: KafkaSettings, mqtt: MqttSettings, new_topic: Callable[..., str]
) -> None:
    raw = new_topic(partitions=3)
    settings = Settings(kafka=kafka, mqtt=mqtt, topics=TopicSettings(raw=raw))
    bridge, thread = start_bridge(settings, RunLimits(count=2000, timeout=90))
    client = Publisher(mqtt)
    try:
        sent = client.publish_events(cars=40, per_car=50)
    finally:
        client.close()
    thread.join(90)
    assert not thread.is_alive()
    assert bridge.stats.acked >= sent

    records = read_topic(kafka, raw, 3, sent)
    seen = set()
    for msg in records:
        event = msgspec.json.decode(msg.value())
        assert msg.key() == event["car_id"].encode()
        assert msg.timestamp()[1] == event["ts"]
        seen.add((event["car_id"], event["seq"]))
    assert len(seen) == sent


@pytest.mark.slow
def test_kafka_outage_loses_nothing(mqtt: MqttSettings, tmp_path: Path) -> None:
    broker = KafkaBroker(tmp_path, free_port(), free_port(), heap="512m", tiered_storage=False)
    broker.start()
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap)
    create_topics(kafka, [TopicSpec("outage-raw", 2, 1)])
    settings = Settings(kafka=kafka, mqtt=mqtt, topics=TopicSettings(raw="outage-raw"))
    cars, per_car = 20, 100
    # Redelivered duplicates count too, so stop on idleness rather than on a count.
    bridge, thread = start_bridge(settings, RunLimits(until_idle=8, timeout=120), shared=False)
    client = Publisher(mqtt)
    try:
        sending = threading.Thread(target=client.publish_events, args=(cars, per_car, 100.0))
        sending.start()  # 20 s of traffic at 100 events/s
        time.sleep(4)
        broker.stop()
        time.sleep(10)
        broker.start()
        sending.join(60)
        thread.join(120)
        assert not thread.is_alive(), f"bridge did not finish: {bridge.stats}"
        records = read_topic(kafka, "outage-raw", 2, cars * per_car)
        seen = {(m.key(), msgspec.json.decode(m.value())["seq"]) for m in records}
        assert len(seen) == cars * per_car
    finally:
        client.close()
        broker.stop()


@pytest.mark.slow
def test_mosquitto_restart_loses_nothing(
    kafka: KafkaSettings, new_topic: Callable[..., str], tmp_path: Path
) -> None:
    from lakeless.stack import MosquittoBroker

    mosquitto = MosquittoBroker(tmp_path, free_port())
    mosquitto.start()
    own_mqtt = MqttSettings(url=mosquitto.url)
    raw = new_topic(partitions=2)
    settings = Settings(kafka=kafka, mqtt=own_mqtt, topics=TopicSettings(raw=raw))
    cars, per_car = 20, 60
    # Redelivered duplicates count too, so stop on idleness rather than on a count. A plain
    # (not shared) subscription: Mosquitto 2.0.11 does not restore shared subscriptions from
    # its persistence file, so messages published before the bridge re-subscribes are lost.
    bridge, thread = start_bridge(settings, RunLimits(until_idle=8, timeout=120), shared=False)
    client = Publisher(own_mqtt)
    try:
        sending = threading.Thread(target=client.publish_events, args=(cars, per_car, 100.0))
        sending.start()  # 12 s of traffic
        time.sleep(4)
        mosquitto.stop()
        time.sleep(2)
        mosquitto.start()
        sending.join(90)
        thread.join(120)
        assert not thread.is_alive(), f"bridge did not finish: {bridge.stats}"
        assert bridge.stats.reconnects >= 1
        records = read_topic(kafka, raw, 2, cars * per_car)
        seen = {(m.key(), msgspec.json.decode(m.value())["seq"]) for m in records}
        assert len(seen) == cars * per_car
    finally:
        client.close()
        mosquitto.stop()
