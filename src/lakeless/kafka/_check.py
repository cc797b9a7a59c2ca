"""Fast, clear answers before a command starts: is the cluster there, do the topics exist?

librdkafka retries a missing broker (or a missing topic) forever and only logs about it, so a
command against the wrong address would wait silently, or finish "idle" having done nothing.
`check_cluster` asks for metadata with a short timeout and fails with one line that names the
bootstrap servers; `check_topics` names the topics that do not exist and how to create them.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from confluent_kafka import KafkaException, TopicPartition

from lakeless.config import KafkaSettings
from lakeless.errors import KafkaError
from lakeless.kafka._clients import (
    ClusterUnavailable,
    cluster_metadata,
    make_consumer,
    principal,
)

__all__ = ["ClusterUnavailable", "check_cluster", "check_fresh_group", "check_topics"]

logger = logging.getLogger(__name__)


def check_cluster(settings: KafkaSettings, timeout: float = 10.0) -> set[str]:
    """The cluster's topic names, from a metadata request (`cluster_metadata`).

    Raises:
        KafkaAuthenticationError: the cluster refused the credentials.
        ClusterUnavailable: no answer within ``timeout`` seconds; the message names the
            bootstrap servers.
    """
    return set(cluster_metadata(settings, timeout).topics)


def check_topics(
    settings: KafkaSettings, topics: Iterable[str], *, hint: str, timeout: float = 10.0
) -> None:
    """Raise `KafkaError` naming every topic of ``topics`` that does not exist.

    Args:
        settings: the cluster.
        topics: the topics a command reads.
        hint: how to create them (e.g. ``lakeless topics create``).
        timeout: seconds the metadata request may take.
    """
    existing = check_cluster(settings, timeout)
    missing = [t for t in dict.fromkeys(topics) if t not in existing]
    if missing:
        many = len(missing) > 1
        hidden = ""
        if settings.sasl_username or settings.ssl_certificate_location:
            # A cluster with ACLs lists only the topics this principal may describe.
            hidden = (
                f", or {principal(settings)} may not see {'them' if many else 'it'} (no ACL "
                "allowing DESCRIBE or READ)"
            )
        raise KafkaError(
            f"topic{'s' if many else ''} {', '.join(missing)} {'do' if many else 'does'} not "
            f"exist on {settings.bootstrap_servers}{hidden}; create {'them' if many else 'it'} "
            f"with `{hint}`"
        )


def check_fresh_group(
    settings: KafkaSettings,
    group_id: str,
    inputs: Iterable[str],
    outputs: Iterable[str],
    timeout: float = 10.0,
) -> None:
    """Refuse to let a group that never committed rewrite its whole input into ``outputs``.

    A new ``group.id`` reads from the beginning (``auto.offset.reset=earliest``): right for
    the first run, but a typo or a new name makes a stage write every record again. When the
    group has no committed offset on any input partition and an output topic already holds
    records, this raises; ``--reprocess`` means it on purpose.

    Raises:
        KafkaError: the group would reprocess into non-empty outputs.
    """
    consumer = make_consumer(settings, group_id)
    try:
        metadata = consumer.list_topics(timeout=timeout).topics
        partitions = [
            TopicPartition(topic, p) for topic in inputs for p in metadata[topic].partitions
        ]
        if not partitions:
            return
        committed = consumer.committed(partitions, timeout=timeout)
        if any(tp.offset >= 0 for tp in committed):
            return
        waiting = sum(consumer.get_watermark_offsets(tp, timeout=timeout)[1] for tp in partitions)
        for topic in outputs:
            if topic not in metadata:
                continue
            held = sum(
                consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in metadata[topic].partitions
            )
            if held and waiting:
                raise KafkaError(
                    f"consumer group {group_id!r} has never committed on "
                    f"{', '.join(inputs)}: it would read all {waiting:,} records from the "
                    f"beginning and write them again into {topic}, which holds {held:,} "
                    "already. Use the group that processed them (the default group "
                    "continues where it stopped), or pass --reprocess to do it on purpose"
                )
    except KafkaException as exc:
        logger.warning("could not check consumer group %s: %s", group_id, exc)
    finally:
        consumer.close()
