"""Kafka client helpers shared by every stage: clients from settings, topics, headers."""

from lakeless.kafka._clients import make_admin, make_consumer, make_producer, wait_for_broker
from lakeless.kafka._consume import ConsumeErrors, commit_sync, next_offsets
from lakeless.kafka._topics import TopicSpec, create_topics, list_topics, pipeline_topics

__all__ = [
    "ConsumeErrors",
    "TopicSpec",
    "commit_sync",
    "create_topics",
    "list_topics",
    "make_admin",
    "make_consumer",
    "make_producer",
    "next_offsets",
    "pipeline_topics",
    "wait_for_broker",
]
