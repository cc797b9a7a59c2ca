"""Reading and appending to the registry log: partition 0 of ``lakeless.models``, no group.

The registry never commits offsets: every reader assigns partition 0 itself and reads from the
beginning (a registry holds a few records per model, so a full read is cheap, and the summary
decoder skips the ONNX bytes). Records up to `MAX_RECORD_BYTES` travel: the producer and consumers
here raise librdkafka's size limits to match the topic's ``max.message.bytes``.
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
from lakeless.kafka import make_consumer, make_producer
from lakeless.registry._errors import RecordFormatError, RegistryError
from lakeless.registry._record import (
    ModelRecord,
    ModelSummary,
    StageChange,
    decode_entry,
    decode_summary,
    encode_entry,
    headers_for,
)
from lakeless.registry._state import RegistryState

__all__ = ["MAX_RECORD_BYTES", "LogReader", "append", "fetch_entry", "make_registry_producer"]

logger = logging.getLogger(__name__)

#: Largest record the registry writes; the topic's ``max.message.bytes`` (`lakeless topics`).
MAX_RECORD_BYTES: Final = 64 * 1024 * 1024
_FETCH_BYTES: Final = MAX_RECORD_BYTES + 1024 * 1024
#: Readers never join a group (they assign), so the id only shows in broker logs.
_GROUP_ID: Final = "lakeless-registry"


def make_registry_consumer(kafka: KafkaSettings, fetch_wait_max_ms: int = 10) -> Consumer:
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


def make_registry_producer(kafka: KafkaSettings) -> Producer:
    """An idempotent ``acks=all`` producer whose size limit matches the registry topic."""
    return make_producer(kafka, message_max_bytes=MAX_RECORD_BYTES, linger_ms=0)


def where(topic: str, offset: int) -> str:
    """``topic[0]@offset``, how log lines name a record."""
    return f"{topic}[0]@{offset}"


class LogReader:
    """Reads partition 0 of the registry topic with one assigned consumer.

    Args:
        kafka: connection settings.
        topic: the registry topic.
        timeout: seconds any one read may take.
        fetch_wait_max_ms: see `make_registry_consumer`; a long-lived tail can wait longer.
    """

    def __init__(
        self, kafka: KafkaSettings, topic: str, timeout: float = 30.0, fetch_wait_max_ms: int = 10
    ) -> None:
        self.topic = topic
        self.timeout = timeout
        self.consumer = make_registry_consumer(kafka, fetch_wait_max_ms)
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
            metadata = self.consumer.list_topics(self.topic, timeout=self.timeout)
        except KafkaException as exc:
            raise RegistryError(f"cannot reach Kafka for topic {self.topic}: {exc}") from exc
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None:
            raise RegistryError(
                f"registry topic {self.topic} does not exist ({topic.error if topic else ''}); "
                "create it with `lakeless topics create`"
            )
        if len(topic.partitions) != 1:
            raise RegistryError(
                f"registry topic {self.topic} has {len(topic.partitions)} partitions; it needs "
                "exactly 1 so that versions are totally ordered"
            )
        self._checked = True

    def high_watermark(self) -> int:
        """Offset after the last record of partition 0."""
        self.check_topic()
        try:
            _, high = self.consumer.get_watermark_offsets(
                TopicPartition(self.topic, 0), timeout=self.timeout
            )
        except KafkaException as exc:
            raise RegistryError(f"cannot read the end of {self.topic}: {exc}") from exc
        return int(high)

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
                        raise RegistryError(f"cannot read {self.topic}: {error.str()}")
                    else:
                        logger.debug("consumer error on %s: %s", self.topic, error.str())
                    continue
                # Nothing came: done if the offsets left were not records (e.g. markers).
                position = self.consumer.position([TopicPartition(self.topic, 0)])[0].offset
                if position >= end:
                    return
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"read {self.topic} only up to offset {position} of {end} "
                        f"in {self.timeout:g}s"
                    )
        finally:
            self.consumer.unassign()

    def fold(self, state: RegistryState | None = None, end: int | None = None) -> RegistryState:
        """Apply the records after ``state.end`` (up to ``end``) to ``state`` (or a new one)."""
        state = state if state is not None else RegistryState(topic=self.topic)
        for message in self.read(state.end, end):
            fold_message(state, message)
        return state


def fold_message(state: RegistryState, message: Message) -> ModelSummary | StageChange | None:
    """Apply one record to ``state``; an undecodable record is logged and skipped."""
    offset = message.offset()
    try:
        entry = decode_summary(message.value())
    except RecordFormatError as exc:
        state.end = max(state.end, offset + 1)
        logger.warning(
            "skipping undecodable registry record %s: %s", where(state.topic, offset), exc
        )
        return None
    state.apply(entry, offset)
    return entry


def fetch_entry(
    kafka: KafkaSettings, topic: str, offset: int, timeout: float = 30.0
) -> ModelRecord | StageChange:
    """The record at ``offset`` of ``topic[0]``, fully decoded (ONNX bytes included).

    A short-lived consumer of its own, so that a reader's position is left alone and nothing
    else is buffered.

    Raises:
        RegistryError: not read within ``timeout``.
        RecordFormatError: the record does not decode.
    """
    consumer = make_registry_consumer(kafka)
    try:
        consumer.assign([TopicPartition(topic, 0, offset)])
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            if message.offset() == offset:
                return decode_entry(message.value())
        raise RegistryError(f"cannot read {where(topic, offset)} within {timeout:g}s")
    finally:
        consumer.close()


def append(
    producer: Producer, topic: str, entry: ModelRecord | StageChange, timeout: float = 30.0
) -> int:
    """Produce ``entry`` to ``topic[0]``, wait until Kafka acknowledged it; return its offset.

    Raises:
        RegistryError: too large, refused by Kafka, or not acknowledged within ``timeout``.
    """
    value = encode_entry(entry)
    if len(value) > MAX_RECORD_BYTES:
        raise RegistryError(
            f"record for {entry.name} v{entry.version} is {len(value):,} bytes, "
            f"over the registry's {MAX_RECORD_BYTES:,}"
        )
    reports: list[tuple[ConfluentError | None, int]] = []

    def on_delivery(error: ConfluentError | None, message: Message) -> None:
        reports.append((error, message.offset()))

    stamp = entry.at if isinstance(entry, StageChange) else entry.created_at
    try:
        producer.produce(
            topic,
            value=value,
            key=entry.name.encode(),
            headers=headers_for(entry),
            partition=0,
            timestamp=stamp,
            on_delivery=on_delivery,
        )
    except (KafkaException, BufferError) as exc:
        raise RegistryError(f"cannot produce {entry.name} v{entry.version}: {exc}") from exc
    producer.flush(timeout)
    if not reports:
        raise RegistryError(
            f"Kafka did not acknowledge {entry.name} v{entry.version} within {timeout:g}s"
        )
    error, offset = reports[0]
    if error is not None:
        raise RegistryError(f"Kafka refused {entry.name} v{entry.version}: {error.str()}")
    return int(offset)
