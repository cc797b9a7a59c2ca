"""Single-partition logs read from the beginning: the model and schema registries.

A registry topic has one partition, so its records are totally ordered; its state is the fold
of the log. Readers never commit offsets: every reader assigns partition 0 itself and reads from
the beginning (a registry holds a few records per name). Records up to `MAX_RECORD_BYTES`
travel: the clients here raise librdkafka's size limits to match the topic's
``max.message.bytes``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Final

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka import KafkaError as ConfluentError

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError, LakelessError
from lakeless.kafka._clients import cluster_unavailable, make_consumer, make_producer
from lakeless.kafka._topics import LEADERSHIP_ERRORS

__all__ = [
    "MAX_RECORD_BYTES",
    "LogReader",
    "append_record",
    "make_log_consumer",
    "make_log_producer",
    "where",
]

logger = logging.getLogger(__name__)

#: Largest record a registry writes; the registry topics' ``max.message.bytes``.
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
_FETCH_BYTES: Final = MAX_RECORD_BYTES + 1024 * 1024
#: Readers never join a group (they assign), so the id only shows in broker logs.
_GROUP_ID: Final = "lakeless-registry"


def make_log_consumer(kafka: KafkaSettings, fetch_wait_max_ms: int = 10) -> Consumer:
    """A consumer that can fetch the largest registry record; assign, never subscribe.

    Args:
        kafka: connection settings.
        fetch_wait_max_ms: how long the broker holds a fetch at the end of the log. Short for
            one-off reads: a fetch held at the end delays the next ``assign`` until it returns.
    """
    return make_consumer(
        kafka,
        _GROUP_ID,
        fetch_wait_max_ms=fetch_wait_max_ms,
        fetch_max_bytes=_FETCH_BYTES,
        max_partition_fetch_bytes=_FETCH_BYTES,
        receive_message_max_bytes=_FETCH_BYTES + 1024 * 1024,
    )


def make_log_producer(kafka: KafkaSettings) -> Producer:
    """An idempotent ``acks=all`` producer whose size limit matches the registry topic."""
    return make_producer(kafka, message_max_bytes=MAX_RECORD_BYTES, linger_ms=0)


def where(topic: str, offset: int) -> str:
    """``topic[0]@offset``, how log lines name a record."""
    return f"{topic}[0]@{offset}"


class LogReader:
    """Reads partition 0 of a registry topic with one assigned consumer.

    Args:
        kafka: connection settings.
        topic: the registry topic.
        timeout: seconds any one read may take.
        fetch_wait_max_ms: see `make_registry_consumer`; a long-lived tail can wait longer.
    """

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        timeout: float = 30.0,
        fetch_wait_max_ms: int = 10,
        error_type: type[LakelessError] = KafkaError,
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.error_type = error_type
        self.timeout = timeout
        self.consumer = make_log_consumer(kafka, fetch_wait_max_ms)
        self._checked = False
        self._closed = False

    def close(self) -> None:
        """Close the consumer (again: nothing)."""
        if not self._closed:
            self._closed = True
            self.consumer.close()

    def check_topic(self) -> None:
        """Raise `RegistryError` unless the topic exists with exactly one partition."""
        if self._checked:
            return
        try:
            metadata = self.consumer.list_topics(self.topic, timeout=min(self.timeout, 10.0))
        except KafkaException as exc:
            raise cluster_unavailable(self.kafka, min(self.timeout, 10.0), exc) from None
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise self.error_type(
                f"topic {self.topic} does not exist ({topic.error if topic else ''}); "
                "create it with `lakeless topics create`"
            )
        if len(topic.partitions) != 1:
            raise self.error_type(
                f"topic {self.topic} has {len(topic.partitions)} partitions; it needs "
                "exactly 1 so that versions are totally ordered"
            )
        self._checked = True

    def high_watermark(self) -> int:
        """Offset after the last record of partition 0.

        Retriable errors (a leader still being elected, as right after the topic was created
        or a broker failed) are retried until the timeout.
        """
        self.check_topic()
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                _, high = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, 0), timeout=max(1.0, deadline - time.monotonic())
                )
                return int(high)
            except KafkaException as exc:
                error = exc.args[0] if exc.args else None
                retriable = isinstance(error, ConfluentError) and (
                    error.retriable() or error.code() in LEADERSHIP_ERRORS
                )
                if not retriable or time.monotonic() >= deadline:
                    raise self.error_type(f"cannot read the end of {self.topic}: {exc}") from exc
                time.sleep(0.2)

    def read(self, start: int = 0, end: int | None = None) -> Iterator[Message]:
        """Records from offset ``start`` up to ``end`` (default: the end of the log now).

        Raises:
            RegistryError: the records were not all read within the timeout, or Kafka failed.
        """
        end = self.high_watermark() if end is None else end
        if start >= end:
            return
        partition = TopicPartition(self.topic, 0, start if start > 0 else OFFSET_BEGINNING)
        self.consumer.assign([partition])
        deadline = time.monotonic() + self.timeout
        try:
            while True:
                # poll, not consume: consume waits its whole timeout unless the batch fills up.
                message = self.consumer.poll(0.2)
                if message is not None:
                    error = message.error()
                    if error is None:
                        if message.offset() < end:
                            yield message
                        if message.offset() >= end - 1:
                            return
                    elif error.fatal() or error.code() == ConfluentError.UNKNOWN_TOPIC_OR_PART:
                        raise self.error_type(f"cannot read {self.topic}: {error.str()}")
                    else:
                        logger.debug("consumer error on %s: %s", self.topic, error.str())
                    continue
                # Nothing came: done if the offsets left were not records (e.g. markers).
                position = self.consumer.position([TopicPartition(self.topic, 0)])[0].offset
                if position >= end:
                    return
                if time.monotonic() > deadline:
                    raise self.error_type(
                        f"read {self.topic} only up to offset {position} of {end} "
                        f"in {self.timeout:g}s"
                    )
        finally:
            self.consumer.unassign()


def append_record(
    producer: Producer,
    topic: str,
    key: bytes,
    value: bytes,
    *,
    what: str,
    headers: list[tuple[str, bytes]] | None = None,
    timestamp: int = 0,
    timeout: float = 30.0,
    error_type: type[LakelessError] = KafkaError,
) -> int:
    """Produce one record to ``topic[0]``, wait until Kafka acknowledged it; return its offset.

    Raises:
        KafkaError: (``error_type``) too large, refused, or not acknowledged within ``timeout``.
    """
    if len(value) > MAX_RECORD_BYTES:
        raise error_type(
            f"record for {what} is {len(value):,} bytes, over the {MAX_RECORD_BYTES:,} of {topic}"
        )
    reports: list[tuple[ConfluentError | None, int]] = []

    def on_delivery(error: ConfluentError | None, message: Message) -> None:
        reports.append((error, message.offset()))

    try:
        producer.produce(
            topic,
            value=value,
            key=key,
            headers=headers,
            partition=0,
            timestamp=timestamp,
            on_delivery=on_delivery,
        )
    except (KafkaException, BufferError) as exc:
        raise error_type(f"cannot produce {what}: {exc}") from exc
    producer.flush(timeout)
    if not reports:
        raise error_type(f"Kafka did not acknowledge {what} within {timeout:g}s")
    error, offset = reports[0]
    if error is not None:
        raise error_type(f"Kafka refused {what}: {error.str()}")
    return int(offset)
