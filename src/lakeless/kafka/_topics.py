"""The pipeline's topics and their defaults (see ARCHITECTURE.md), created idempotently.

Replication follows the cluster unless the settings fix it: on three or more brokers every
pipeline topic and the registry get 3 replicas and ``min.insync.replicas=2`` (a write is
acknowledged by two brokers, so one may fail without losing it or stopping writes), on fewer
brokers as many replicas as there are brokers.

Example:
    >>> [(s.name, s.replication_factor, s.config["min.insync.replicas"])
    ...  for s in pipeline_topics(TopicSettings(), brokers=3)][:2]
    [('sensor-raw', 3, '2'), ('sensor-clean', 3, '2')]
    >>> pipeline_topics(TopicSettings(), brokers=1)[0].replication_factor
    1
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from confluent_kafka import KafkaError as ConfluentError
from confluent_kafka import KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic, OffsetSpec

from lakeless.config import KafkaSettings, TopicSettings
from lakeless.errors import KafkaError
from lakeless.kafka._clients import cluster_metadata, cluster_unavailable, make_admin

logger = logging.getLogger(__name__)

#: Registry records carry ONNX bytes; allow them to be large.
MODELS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
#: Replicas per partition, and in-sync replicas a write needs, once a cluster has 3+ brokers.
FULL_REPLICATION = 3
FULL_MIN_ISR = 2


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions, replication and topic-level configs.

    ``replication_factor=None`` lets `create_topics` decide from the cluster's broker count
    (with the matching ``min.insync.replicas`` unless ``config`` sets one).
    """

    name: str
    partitions: int
    replication_factor: int | None = None
    config: dict[str, str] = field(default_factory=dict)


def replication_for(brokers: int) -> tuple[int, int]:
    """``(replication factor, min.insync.replicas)`` for a cluster of ``brokers`` brokers.

    Example:
        >>> replication_for(1), replication_for(2), replication_for(3), replication_for(6)
        ((1, 1), (2, 1), (3, 2), (3, 2))
    """
    replicas = min(FULL_REPLICATION, max(1, brokers))
    return replicas, FULL_MIN_ISR if replicas >= FULL_REPLICATION else 1


def _resolve(spec: TopicSpec, brokers: int) -> TopicSpec:
    if spec.replication_factor is not None:
        return spec
    replicas, min_isr = replication_for(brokers)
    config = {"min.insync.replicas": str(min_isr), **spec.config}
    return TopicSpec(spec.name, spec.partitions, replicas, config)


def _common(topics: TopicSettings) -> dict[str, str]:
    if topics.min_insync_replicas is None:
        return {}
    return {"min.insync.replicas": str(topics.min_insync_replicas)}


def pipeline_topics(
    topics: TopicSettings,
    names: Sequence[str] | None = None,
    partitions: int | None = None,
    *,
    registries: bool = True,
    brokers: int | None = None,
) -> list[TopicSpec]:
    """A pipeline's topics (and the registries), with the defaults of ARCHITECTURE.md.

    Args:
        topics: the defaults (and the built-in pipeline's names); ``replication_factor`` and
            ``min_insync_replicas`` when set.
        names: raw, clean, dlq, anomalies, scores topic names (default: the built-in ones).
        partitions: partitions of the pipeline's topics (default: ``topics.partitions``).
        registries: also the model and schema registries.
        brokers: the cluster's broker count, to decide replication now; ``None`` leaves it to
            `create_topics` (which asks the cluster) unless the settings fix it.

    Data topics (raw, clean, dead-letter) keep data long and tier old segments to the remote
    store. Output topics (anomalies, scores) are stamped by the broker when written
    (``LogAppendTime``; the event time is in the payload), so outputs of historical data are
    retained like any others; anomalies are kept (and tiered) like the data, scores for
    ``scores_retention_ms``. The registries keep every version on the broker (one partition, so
    versions are totally ordered; tiering off, since a registry is small and must never wait
    on it).
    """
    raw, clean, dlq, anomalies, scores = names or (
        topics.raw,
        topics.clean,
        topics.dlq,
        topics.anomalies,
        topics.scores,
    )
    common = _common(topics)
    data_config = {"retention.ms": str(topics.retention_ms), **common}
    if topics.tiered_storage:
        data_config |= {
            "remote.storage.enable": "true",
            "local.retention.ms": str(topics.local_retention_ms),
        }
    output = {"message.timestamp.type": "LogAppendTime", **common}
    rf, parts = topics.replication_factor, partitions or topics.partitions
    specs = [
        TopicSpec(raw, parts, rf, dict(data_config)),
        TopicSpec(clean, parts, rf, dict(data_config)),
        TopicSpec(dlq, parts, rf, dict(data_config)),
        TopicSpec(anomalies, parts, rf, {**data_config, **output}),
        TopicSpec(scores, parts, rf, {**output, "retention.ms": str(topics.scores_retention_ms)}),
    ]
    if registries:
        specs += registry_topics(topics)
    return specs if brokers is None else [_resolve(spec, brokers) for spec in specs]


def registry_topics(topics: TopicSettings) -> list[TopicSpec]:
    """The model registry and the schema registry: one partition each, kept forever."""
    rf = topics.replication_factor
    common = _common(topics)
    return [
        TopicSpec(
            topics.models,
            1,
            rf,
            {"retention.ms": "-1", "max.message.bytes": str(MODELS_MAX_MESSAGE_BYTES), **common},
        ),
        TopicSpec(topics.schemas, 1, rf, {"retention.ms": "-1", **common}),
    ]


def create_topics(
    settings: KafkaSettings, specs: list[TopicSpec], timeout: float = 30.0
) -> dict[str, bool]:
    """Create ``specs``; topics that exist already are left as they are.

    Specs without a replication factor get one from the cluster's broker count (see
    `replication_for`); an existing topic with fewer replicas than that is reported in the log.

    Returns:
        topic name -> ``True`` if created now, ``False`` if it existed.

    Raises:
        KafkaError: the broker refused a topic for another reason.
    """
    admin = make_admin(settings)
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise cluster_unavailable(settings, timeout, exc) from None
    specs = [_resolve(spec, len(metadata.brokers)) for spec in specs]
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
    _warn_under_replicated(admin, [s for s in specs if not created[s.name]], timeout)
    _wait_for_leaders(admin, list(created), timeout)
    return created


def _warn_under_replicated(admin: AdminClient, specs: list[TopicSpec], timeout: float) -> None:
    """Log existing topics with fewer replicas than asked (Kafka cannot add them in place)."""
    if not specs:
        return
    topics = admin.list_topics(timeout=timeout).topics
    for spec in specs:
        found = topics.get(spec.name)
        if found is None or not found.partitions or spec.replication_factor is None:
            continue
        replicas = min(len(p.replicas) for p in found.partitions.values())
        if replicas < spec.replication_factor:
            logger.warning(
                "topic %s exists with %d replica(s), fewer than %d: it stays so "
                "(reassign its partitions to raise it)",
                spec.name,
                replicas,
                spec.replication_factor,
            )


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


#: Errors that a new leader (a fresh topic, a failed broker) clears within seconds; a new
#: leader answers OFFSET_NOT_AVAILABLE until its high watermark has caught up.
LEADERSHIP_ERRORS: Final = frozenset(
    {
        ConfluentError.NOT_LEADER_FOR_PARTITION,
        ConfluentError.LEADER_NOT_AVAILABLE,
        ConfluentError.OFFSET_NOT_AVAILABLE,
        ConfluentError.FENCED_LEADER_EPOCH,
        ConfluentError.UNKNOWN_LEADER_EPOCH,
        ConfluentError._TIMED_OUT,
    }
)


def list_topics(settings: KafkaSettings, timeout: float = 10.0) -> dict[str, int]:
    """Topic name -> partition count, internal topics (``__*``) left out."""
    metadata = cluster_metadata(settings, timeout)
    return {
        name: len(topic.partitions)
        for name, topic in sorted(metadata.topics.items())
        if not name.startswith("__")
    }


def end_offsets(settings: KafkaSettings, topic: str, timeout: float = 10.0) -> dict[int, int]:
    """Partition -> end offset (the high watermark: the offset the next record gets).

    A partition whose leader moved (a broker just failed, a topic just created) is asked again
    until ``timeout``: ListOffsets goes to the leader the metadata names, which may be stale.

    Raises:
        KafkaError: no such topic, or the cluster did not answer within ``timeout``.
    """
    admin = make_admin(settings, check=False)  # must outlive its futures
    deadline = time.monotonic() + timeout
    while True:
        try:
            left = max(0.1, deadline - time.monotonic())
            meta = admin.list_topics(topic, timeout=left).topics.get(topic)
            if meta is None or meta.error is not None:
                raise KafkaError(f"cannot read the end offsets of {topic}: {meta and meta.error}")
            futures = admin.list_offsets(
                {TopicPartition(topic, p): OffsetSpec.latest() for p in meta.partitions},
                request_timeout=left,
            )
            return {tp.partition: int(f.result().offset) for tp, f in sorted(futures.items())}
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            moved = isinstance(error, ConfluentError) and (
                error.retriable() or error.code() in LEADERSHIP_ERRORS
            )
            if not moved or time.monotonic() >= deadline:
                raise KafkaError(f"cannot read the end offsets of {topic}: {exc}") from exc
            time.sleep(0.1)
