"""Kafka client helpers shared by every stage: clients from settings, topics, the batch loop."""

from lakeless.kafka._check import ClusterUnavailable, check_cluster, check_topics
from lakeless.kafka._clients import (
    KafkaAuthenticationError,
    KafkaAuthorizationError,
    make_admin,
    make_consumer,
    make_producer,
    principal,
    produce_waiting,
    wait_for_broker,
)
from lakeless.kafka._commit import commit_sync
from lakeless.kafka._consume import ConsumeErrors, next_offsets
from lakeless.kafka._log import LogReader, append_record
from lakeless.kafka._loop import BatchLoop, describe
from lakeless.kafka._stats import ProgressLog, StageMetrics, StageStats
from lakeless.kafka._step import BaseStep, BatchResult, LoopConfig, Output
from lakeless.kafka._topics import (
    TopicSpec,
    create_topics,
    end_offsets,
    list_topics,
    pipeline_topics,
    replication_for,
)

__all__ = [
    "BaseStep",
    "BatchLoop",
    "BatchResult",
    "ClusterUnavailable",
    "ConsumeErrors",
    "KafkaAuthenticationError",
    "KafkaAuthorizationError",
    "LogReader",
    "LoopConfig",
    "Output",
    "ProgressLog",
    "StageMetrics",
    "StageStats",
    "TopicSpec",
    "append_record",
    "check_cluster",
    "check_topics",
    "commit_sync",
    "create_topics",
    "describe",
    "end_offsets",
    "list_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "next_offsets",
    "pipeline_topics",
    "principal",
    "produce_waiting",
    "replication_for",
    "wait_for_broker",
]
