"""Reading and appending to the registry log: partition 0 of ``lakeless.models``, no group.

The registry never commits offsets: every reader assigns partition 0 itself and reads from the
beginning (a registry holds a few records per model, so a full read is cheap, and the summary
decoder skips the ONNX bytes). Records up to `MAX_RECORD_BYTES` travel: the producer and consumers
here raise librdkafka's size limits to match the topic's ``max.message.bytes``.
"""

from __future__ import annotations

import logging
import time

from confluent_kafka import Message, Producer, TopicPartition

from lakeless.config import KafkaSettings
from lakeless.kafka._log import (
    MAX_RECORD_BYTES,
    LogReader,
    append_record,
    make_log_consumer,
    make_log_producer,
    where,
)
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

__all__ = [
    "MAX_RECORD_BYTES",
    "LogReader",
    "append",
    "fetch_entry",
    "fold",
    "make_registry_producer",
]

logger = logging.getLogger(__name__)


def make_registry_producer(kafka: KafkaSettings) -> Producer:
    """An idempotent ``acks=all`` producer whose size limit matches the registry topic."""
    return make_log_producer(kafka)


def registry_reader(
    kafka: KafkaSettings, topic: str, timeout: float = 30.0, fetch_wait_max_ms: int = 10
) -> LogReader:
    """A `LogReader` of the model registry (its errors are `RegistryError`)."""
    return LogReader(kafka, topic, timeout, fetch_wait_max_ms, error_type=RegistryError)


def fold(
    reader: LogReader, state: RegistryState | None = None, end: int | None = None
) -> RegistryState:
    """Apply the records after ``state.end`` (up to ``end``) to ``state`` (or a new one)."""
    state = state if state is not None else RegistryState(topic=reader.topic)
    for message in reader.read(state.end, end):
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
    consumer = make_log_consumer(kafka)
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
    return append_record(
        producer,
        topic,
        entry.name.encode(),
        encode_entry(entry),
        what=f"{entry.name} v{entry.version}",
        headers=headers_for(entry),
        timestamp=entry.at if isinstance(entry, StageChange) else entry.created_at,
        timeout=timeout,
        error_type=RegistryError,
    )
