"""The pipeline's topics and their defaults (see ARCHITECTURE.md), created idempotently."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from lakeless.config import KafkaSettings, TopicSettings
from lakeless.errors import KafkaError
from lakeless.kafka._clients import make_admin

logger = logging.getLogger(__name__)

#: Registry records carry ONNX bytes; allow them to be large.
MODELS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions, replication and topic-level configs."""

    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def pipeline_topics(topics: TopicSettings) -> list[TopicSpec]:
    """The topics every lakeless pipeline uses, with the defaults of ARCHITECTURE.md.

    Data topics (raw, clean, dead-letter) keep data long and tier old segments to the remote
    store; the model registry keeps every version on the broker (one partition, so versions
    are totally ordered; tiering off, since a registry is small and must never wait on it).
    """
    data_config = {"retention.ms": str(topics.retention_ms)}
    if topics.tiered_storage:
        data_config |= {
            "remote.storage.enable": "true",
            "local.retention.ms": str(topics.local_retention_ms),
        }
    rf, parts = topics.replication_factor, topics.partitions
    return [
        TopicSpec(topics.raw, parts, rf, dict(data_config)),
        TopicSpec(topics.clean, parts, rf, dict(data_config)),
        TopicSpec(topics.dlq, parts, rf, dict(data_config)),
        TopicSpec(
            topics.models,
            1,
            rf,
            {"retention.ms": "-1", "max.message.bytes": str(MODELS_MAX_MESSAGE_BYTES)},
        ),
        TopicSpec(topics.anomalies, parts, rf),
        TopicSpec(topics.scores, parts, rf),
    ]


def create_topics(
    settings: KafkaSettings, specs: list[TopicSpec], timeout: float = 30.0
) -> dict[str, bool]:
    """Create ``specs``; topics that exist already are left as they are.

    Returns:
        topic name -> ``True`` if created now, ``False`` if it existed.

    Raises:
        KafkaError: the broker refused a topic for another reason.
    """
    admin = make_admin(settings)
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=s.replication_factor,
                config=s.config,
            )
            for s in specs
        ],
        operation_timeout=timeout,
        request_timeout=timeout,
    )
    created: dict[str, bool] = {}
    for name, future in futures.items():
        try:
            future.result()
            created[name] = True
            logger.info("created topic %s", name)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != ConfluentError.TOPIC_ALREADY_EXISTS:
                raise KafkaError(f"cannot create topic {name}: {error.str()}") from exc
            created[name] = False
    _wait_for_leaders(admin, list(created), timeout)
    return created


def _wait_for_leaders(admin: AdminClient, names: list[str], timeout: float) -> None:
    """Block until every partition of ``names`` has a leader, so clients can use them at once."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        pending = [
            name
            for name in names
            if name not in topics
            or topics[name].error is not None
            or any(p.leader < 0 for p in topics[name].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise KafkaError(f"topics without a leader after {timeout:.0f}s: {pending}")
        time.sleep(0.1)


def list_topics(settings: KafkaSettings, timeout: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count, internal topics (``__*``) left out."""
    try:
        metadata = make_admin(settings).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise KafkaError(f"cannot list topics at {settings.bootstrap_servers}: {exc}") from exc
    return {
        name: len(topic.partitions)
        for name, topic in sorted(metadata.topics.items())
        if not name.startswith("__")
    }
