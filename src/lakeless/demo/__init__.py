"""The main job, ``lakeless demo``: bring the stack up and push events through Kafka.

This first version proves the foundation end to end: it starts Kafka and Mosquitto, creates the
pipeline's topics, writes a few thousand sensor events to ``sensor-raw`` and reads them back.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from confluent_kafka import TopicPartition

from lakeless.config import KafkaSettings, Settings
from lakeless.errors import KafkaError
from lakeless.kafka import create_topics, make_consumer, make_producer, pipeline_topics
from lakeless.schema import make_example_json
from lakeless.stack import Stack

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DemoReport:
    """What the demo did."""

    bootstrap: str
    mqtt_url: str
    topics_created: list[str]
    produced: int
    read_back: int
    seconds: float


def run_demo(stack: Stack, settings: Settings, events: int = 5000) -> DemoReport:
    """Start the stack, create topics, write ``events`` events and read them back."""
    started = time.monotonic()
    stack.up()
    kafka = stack.kafka_settings
    created = create_topics(kafka, pipeline_topics(settings.topics))
    topic = settings.topics.raw

    producer = make_producer(kafka)
    first_offsets = _end_offsets(kafka, topic)
    now_ms = int(time.time() * 1000)
    for i in range(events):
        car_id = f"car-{i % 100}"
        value = make_example_json(car_id=car_id, seq=i // 100, ts=now_ms + i)
        while True:
            try:
                producer.produce(topic, value, car_id.encode(), timestamp=now_ms + i)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(60) != 0:
        raise KafkaError("events were not acknowledged within 60 s")

    consumer = make_consumer(kafka, group_id="lakeless-demo")
    consumer.assign([TopicPartition(topic, p, o) for p, o in first_offsets.items()])
    read = 0
    deadline = time.monotonic() + 60
    while read < events and time.monotonic() < deadline:
        read += sum(1 for m in consumer.consume(1000, timeout=1.0) if m.error() is None)
    consumer.close()
    return DemoReport(
        bootstrap=kafka.bootstrap_servers,
        mqtt_url=stack.mqtt.url,
        topics_created=[name for name, new in created.items() if new],
        produced=events,
        read_back=read,
        seconds=time.monotonic() - started,
    )


def _end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    consumer = make_consumer(kafka, group_id="lakeless-demo")
    try:
        metadata = consumer.list_topics(topic, timeout=10)
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in metadata.topics[topic].partitions
        }
    finally:
        consumer.close()
