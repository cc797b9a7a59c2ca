"""Factories for confluent-kafka clients configured from `KafkaSettings`."""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError

logger = logging.getLogger(__name__)

#: Producer defaults for every stage: no loss, no reordering, no duplicates from retries.
SAFE_PRODUCER: dict[str, Any] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 5,
    "compression.type": "lz4",
}


def make_producer(settings: KafkaSettings, **overrides: Any) -> Producer:
    """An idempotent, ``acks=all`` producer; ``overrides`` use ``_`` for ``.``."""
    config = {**SAFE_PRODUCER, **settings.librdkafka(**overrides)}
    return Producer(config)


def make_consumer(settings: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """A consumer in ``group_id`` that commits only when told (``enable.auto.commit=false``)."""
    config = {
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        **settings.librdkafka(**overrides),
    }
    return Consumer(config)


def make_admin(settings: KafkaSettings) -> AdminClient:
    """An admin client."""
    return AdminClient(settings.librdkafka())


def wait_for_broker(settings: KafkaSettings, timeout: float = 60.0) -> int:
    """Block until the cluster answers a metadata request; return its broker count.

    Raises:
        KafkaError: no answer within ``timeout`` seconds.
    """
    admin = make_admin(settings)
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            metadata = admin.list_topics(timeout=min(5.0, max(0.5, deadline - time.monotonic())))
            if metadata.brokers:
                return len(metadata.brokers)
        except KafkaException as exc:
            last = exc
        time.sleep(0.2)
    raise KafkaError(
        f"Kafka at {settings.bootstrap_servers} did not answer within {timeout:.0f}s ({last})"
    )
