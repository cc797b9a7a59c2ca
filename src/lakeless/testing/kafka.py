"""Kafka helpers for tests of lakeless pipelines (and of your own): produce, read back, offsets.

They talk to a real broker and favour obviousness over speed: `produce_records` waits for every
delivery report, `read_topic` reads a whole topic from its beginning, and `committed_offsets` /
`end_offsets` show where a consumer group stands; `produce_clean` fills a clean topic
with simulator events, as the preprocessor would (training and scoring tests start there).

Example (needs a broker, so not run here)::

    produce_records(kafka, "sensor-raw", [(b"car-1", good_record())])
    records = read_topic(kafka, "sensor-clean", expected=1)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, TopicPartition

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError
from lakeless.examples import car_fleet
from lakeless.kafka import end_offsets, make_consumer, make_producer, produce_waiting
from lakeless.schema import CleanCodec, PipelineSchema

__all__ = [
    "Produced",
    "Record",
    "committed_offsets",
    "end_offsets",
    "produce_clean",
    "produce_records",
    "read_topic",
]

#: A record to produce: ``(key, value)`` or ``(key, value, headers)``.
Record = tuple[bytes | None, bytes | None] | tuple[bytes | None, bytes | None, Any]


@dataclass(frozen=True)
class Produced:
    """Where a produced record landed."""

    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    timestamp: int


def produce_records(
    settings: KafkaSettings,
    topic: str,
    records: Iterable[Record],
    *,
    timestamp: int | None = None,
    timeout: float = 60.0,
) -> list[Produced]:
    """Produce ``records`` in order and wait until Kafka acknowledged every one.

    Args:
        settings: the cluster.
        topic: destination topic.
        records: ``(key, value)`` or ``(key, value, headers)`` tuples.
        timestamp: record timestamp in ms for all records; ``None``: the producer's clock.
        timeout: seconds to wait for the delivery reports.

    Returns:
        One `Produced` per record, in delivery-report order.

    Raises:
        KafkaError: a record was not acknowledged in time or was refused.
    """
    producer = make_producer(settings, linger_ms=5)
    done: list[Produced] = []
    errors: list[str] = []

    def report(error: Any, message: Message) -> None:
        if error is not None:
            errors.append(str(error))
            return
        done.append(
            Produced(
                message.key(),
                message.value(),
                message.partition(),
                message.offset(),
                message.timestamp()[1],
            )
        )

    extra = {} if timestamp is None else {"timestamp": timestamp}
    for record in records:
        key, value = record[0], record[1]
        headers = record[2] if len(record) > 2 else None
        producer.produce(topic, value, key, headers=headers, on_delivery=report, **extra)
        producer.poll(0)
    left = producer.flush(timeout)
    if left or errors:
        raise KafkaError(
            f"{left} records to {topic} unacknowledged, {len(errors)} refused: {errors[:3]}"
        )
    return done


def produce_clean(
    settings: KafkaSettings,
    topic: str,
    rows: Iterable[tuple[int | None, int, Any]],
    *,
    timeout: float = 60.0,
    schema: PipelineSchema | None = None,
) -> int:
    """Produce ``(partition, timestamp, event)`` rows as clean records, keyed by entity.

    Events (objects of the schema's event type; default schema: the car fleet's) are encoded
    with `lakeless.schema.CleanCodec`; raw ``bytes`` go as they are (key ``b"bad"``), to test
    how readers treat a bad record. ``partition=None`` lets the producer
    pick by key. Records of one partition keep their order (the producer is idempotent), so
    their offsets are their positions in ``rows``.

    Returns:
        The number of records produced.

    Raises:
        KafkaError: a record was not acknowledged in time or was refused.
    """
    schema = schema or car_fleet()
    codec = CleanCodec(schema)
    producer = make_producer(settings, linger_ms=20)
    errors: list[str] = []

    def report(error: Any, _message: Message) -> None:
        if error is not None:
            errors.append(str(error))

    count = 0
    for partition, ts, event in rows:
        if isinstance(event, bytes):
            value, key = event, b"bad"
        else:
            value, key = codec.encode(event), getattr(event, schema.key).encode()
        extra = {} if partition is None else {"partition": partition}
        produce_waiting(
            producer, topic, value, key, wait=0.1, timestamp=ts, on_delivery=report, **extra
        )
        count += 1
    left = producer.flush(timeout)
    if left or errors:
        raise KafkaError(
            f"{left} records to {topic} unacknowledged, {len(errors)} refused: {errors[:3]}"
        )
    return count


def _assign_all(consumer: Consumer, topic: str, timeout: float) -> list[TopicPartition]:
    metadata = consumer.list_topics(topic, timeout=timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise KafkaError(f"topic {topic} does not exist")
    partitions = [TopicPartition(topic, p, 0) for p in sorted(metadata.topics[topic].partitions)]
    consumer.assign(partitions)
    return partitions


def read_topic(
    settings: KafkaSettings,
    topic: str,
    *,
    expected: int | None = None,
    idle: float = 1.0,
    timeout: float = 60.0,
) -> list[Message]:
    """Every record of ``topic`` from the start of each partition, without a consumer group.

    Reads until ``expected`` records arrived and then ``idle`` seconds more passed without any
    (so surplus records, e.g. duplicates, are seen too), or, with ``expected=None``, until
    ``idle`` seconds without records; never longer than ``timeout`` seconds.

    Raises:
        KafkaError: the topic does not exist.
    """
    consumer = make_consumer(settings, group_id=f"lakeless-test-{uuid.uuid4().hex}")
    out: list[Message] = []
    try:
        _assign_all(consumer, topic, timeout=10.0)
        deadline = time.monotonic() + timeout
        last = time.monotonic()
        while time.monotonic() < deadline:
            batch = consumer.consume(10_000, timeout=0.2)
            got = [m for m in batch if m.error() is None]
            now = time.monotonic()
            if got:
                out += got
                last = now
            elif (expected is None or len(out) >= expected) and now - last >= idle:
                break
    finally:
        consumer.close()
    return out


def committed_offsets(
    settings: KafkaSettings,
    group_id: str,
    topic: str,
    partitions: Sequence[int] | None = None,
    timeout: float = 10.0,
) -> dict[int, int]:
    """Partition -> offset committed by ``group_id`` (negative: nothing committed)."""
    consumer = make_consumer(settings, group_id=group_id)
    try:
        if partitions is None:
            metadata = consumer.list_topics(topic, timeout=timeout)
            partitions = sorted(metadata.topics[topic].partitions)
        committed = consumer.committed(
            [TopicPartition(topic, p) for p in partitions], timeout=timeout
        )
        return {tp.partition: tp.offset for tp in committed}
    except KafkaException as exc:
        raise KafkaError(f"cannot read the offsets of {group_id} on {topic}: {exc}") from exc
    finally:
        consumer.close()
